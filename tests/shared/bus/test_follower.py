"""Following a whole stream without a group, over real Redis."""

from __future__ import annotations

import asyncio

from shared.bus.follower import LAST, NOW, Follower
from shared.bus.publisher import Publisher
from shared.messages import Command, ControlCommand, Message
from shared.streams import CONTROL, stream_key


def command(n: int) -> ControlCommand:
    return ControlCommand(command_id=f"c{n}", command=Command.HALT, actor="test")


async def follow(aredis, prefix: str, start: str, until: int) -> list[str]:
    seen: list[str] = []
    enough = asyncio.Event()

    def handler(messages: list[Message]) -> None:
        seen.extend(m.command_id for m in messages if isinstance(m, ControlCommand))
        if len(seen) >= until:
            enough.set()

    follower = Follower(aredis, prefix, CONTROL, handler, start=start, block_ms=50)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    async with asyncio.timeout(10):
        await enough.wait()
    stop.set()
    await task
    return seen


async def test_from_the_start_every_replica_sees_every_entry_in_order(aredis, key_prefix):
    publisher = Publisher(aredis, key_prefix, shards=1)
    for n in range(5):
        await publisher.publish(CONTROL, command(n))
    first, second = await asyncio.gather(
        follow(aredis, key_prefix, "0", 5), follow(aredis, key_prefix, "0", 5)
    )
    assert first == second == [f"c{n}" for n in range(5)]
    groups = await aredis.xinfo_groups(stream_key(key_prefix, CONTROL))
    assert groups == []  # nothing pending, nothing to ack


async def test_from_the_last_entry_only_the_current_value_and_what_follows(aredis, key_prefix):
    publisher = Publisher(aredis, key_prefix, shards=1)
    for n in range(3):
        await publisher.publish(CONTROL, command(n))

    async def later() -> None:
        await asyncio.sleep(0.2)
        await publisher.publish(CONTROL, command(3))

    seen, _ = await asyncio.gather(follow(aredis, key_prefix, LAST, 2), later())
    assert seen == ["c2", "c3"]


async def test_a_malformed_entry_is_skipped_and_counted(aredis, key_prefix):
    key = stream_key(key_prefix, CONTROL)
    await aredis.xadd(key, {b"m": b"\xc1 not msgpack"})
    await Publisher(aredis, key_prefix, shards=1).publish(CONTROL, command(1))
    seen: list[Message] = []
    follower = Follower(aredis, key_prefix, CONTROL, seen.extend)
    await follower.poll_once()
    assert follower.malformed == 1 and len(seen) == 1 and follower.caught_up.is_set() is False
    await follower.poll_once()
    assert follower.caught_up.is_set()


async def test_from_now_nothing_that_comes_between_two_reads_is_missed(aredis, key_prefix):
    publisher = Publisher(aredis, key_prefix, shards=1)
    await publisher.publish(CONTROL, command(0))  # before the start: not ours
    seen: list[Message] = []
    follower = Follower(aredis, key_prefix, CONTROL, seen.extend, start=NOW, block_ms=10)
    await follower.poll_once()
    for n in range(1, 4):  # while nobody reads
        await publisher.publish(CONTROL, command(n))
    await follower.poll_once()
    assert [m.command_id for m in seen if isinstance(m, ControlCommand)] == ["c1", "c2", "c3"]
