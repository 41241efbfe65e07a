"""Publisher and consumer over real Redis: ack after effect, DLQ, retries, reclaim."""

import asyncio

import pytest

from shared.bus.codec import PAYLOAD_FIELD, Codec
from shared.bus.consumer import Consumer, Delivery, RetryLater
from shared.bus.publisher import ObserverPublisher, Publisher
from shared.messages import BookState, BookStatus, DeadLetter, Heartbeat, MarketDataBatch
from shared.streams import DEAD_LETTERS, HEARTBEATS, MARKET_DATA, stream_key


def beat(i: int) -> Heartbeat:
    return Heartbeat(service="t", instance=str(i), version="0", role="x", ts_ns=i)


def make_consumer(aredis, prefix, handler, spec=HEARTBEATS, name="c1", **kw):
    options = {
        "batch": 50,
        "block_ms": 50,
        "claim_idle_ms": 200,
        "claim_every_ms": 100,
        "max_failures": 3,
    }
    options.update(kw)
    return Consumer(aredis, prefix, spec, group="g", name=name, handler=handler, **options)


async def drain(consumer: Consumer, rounds: int = 20) -> None:
    for _ in range(rounds):
        await consumer.poll_once()


async def dead_letters(aredis, prefix) -> list[DeadLetter]:
    entries = await aredis.xrange(stream_key(prefix, DEAD_LETTERS))
    codec = Codec(DEAD_LETTERS)
    return [codec.decode_entry(fields) for _, fields in entries]  # type: ignore[misc]


async def test_messages_are_handled_in_order_and_acked(aredis, key_prefix):
    seen: list[int] = []

    async def handler(batch: list[Delivery]) -> None:
        seen.extend(d.message.ts_ns for d in batch)  # type: ignore[attr-defined]

    publisher = Publisher(aredis, key_prefix, shards=4, hop="test")
    await publisher.publish_many(HEARTBEATS, [beat(i) for i in range(120)])
    consumer = make_consumer(aredis, key_prefix, handler)
    await drain(consumer, 6)
    assert seen == list(range(120))
    assert await consumer.pending() == 0


async def test_hops_are_stamped_on_publish(aredis, key_prefix):
    got: list[Heartbeat] = []

    async def handler(batch: list[Delivery]) -> None:
        got.extend(d.message for d in batch)  # type: ignore[misc]

    await Publisher(aredis, key_prefix, shards=1, hop="ingest").publish(HEARTBEATS, beat(1))
    await drain(make_consumer(aredis, key_prefix, handler), 3)
    assert [hop.name for hop in got[0].hops] == ["ingest"]
    assert got[0].hops[0].ts_ns > 0


async def test_malformed_payload_goes_to_dead_letters_and_consumer_goes_on(aredis, key_prefix):
    handled: list[int] = []

    async def handler(batch: list[Delivery]) -> None:
        handled.extend(d.message.ts_ns for d in batch)  # type: ignore[attr-defined]

    key = stream_key(key_prefix, HEARTBEATS)
    publisher = Publisher(aredis, key_prefix, shards=1)
    await publisher.publish(HEARTBEATS, beat(1))
    await aredis.xadd(key, {PAYLOAD_FIELD: b"\x93garbage"})
    await aredis.xadd(key, {b"wrong": b"field"})
    await publisher.publish(HEARTBEATS, beat(2))
    consumer = make_consumer(aredis, key_prefix, handler)
    await drain(consumer, 4)
    assert handled == [1, 2]
    letters = await dead_letters(aredis, key_prefix)
    assert len(letters) == 2
    assert all(letter.stream == key and letter.reason for letter in letters)
    assert letters[0].payload == b"\x93garbage"
    assert await consumer.pending() == 0


async def test_poison_message_is_dead_lettered_after_max_failures(aredis, key_prefix):
    attempts: dict[int, int] = {}
    done: list[int] = []

    async def handler(batch: list[Delivery]) -> None:
        for d in batch:
            n = d.message.ts_ns  # type: ignore[attr-defined]
            attempts[n] = attempts.get(n, 0) + 1
            if n == 3:
                raise ValueError("cannot handle 3")
        done.extend(d.message.ts_ns for d in batch)  # type: ignore[attr-defined]

    await Publisher(aredis, key_prefix, shards=1).publish_many(
        HEARTBEATS, [beat(i) for i in range(6)]
    )
    consumer = make_consumer(aredis, key_prefix, handler, max_failures=3, claim_idle_ms=60_000)
    await drain(consumer, 12)
    assert sorted(set(done)) == [0, 1, 2, 4, 5]
    assert attempts[3] == 1 + 3  # once in the failing batch, then 3 times alone
    letters = await dead_letters(aredis, key_prefix)
    assert [letter.failures for letter in letters] == [3]
    assert "3 times" in letters[0].reason
    assert await consumer.pending() == 0


async def test_transient_errors_retry_without_counting_failures(aredis, key_prefix):
    calls = 0

    async def flaky(batch: list[Delivery]) -> None:
        nonlocal calls
        calls += 1
        if calls <= 5:
            raise RetryLater("database down")

    await Publisher(aredis, key_prefix, shards=1).publish(HEARTBEATS, beat(1))
    consumer = make_consumer(aredis, key_prefix, flaky, max_failures=2)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    for _ in range(200):
        if consumer.handled:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    assert consumer.handled == 1
    assert consumer.dead_lettered == 0
    assert calls == 6


async def test_dead_consumer_entries_are_reclaimed(aredis, key_prefix):
    async def crash_before_ack(batch: list[Delivery]) -> None:
        raise asyncio.CancelledError  # the process "dies" mid-handler

    handled: list[int] = []

    async def survivor_handler(batch: list[Delivery]) -> None:
        handled.extend(d.message.ts_ns for d in batch)  # type: ignore[attr-defined]

    await Publisher(aredis, key_prefix, shards=1).publish_many(
        HEARTBEATS, [beat(i) for i in range(10)]
    )
    doomed = make_consumer(aredis, key_prefix, crash_before_ack, name="doomed")
    with pytest.raises(asyncio.CancelledError):
        await drain(doomed, 3)
    assert await doomed.pending() == 10
    survivor = make_consumer(aredis, key_prefix, survivor_handler, name="survivor")
    await survivor.poll_once()  # nothing new to read and too early to claim
    assert handled == []
    await asyncio.sleep(0.25)
    await drain(survivor, 3)
    assert sorted(handled) == list(range(10))
    assert await survivor.pending() == 0


async def test_sharded_consumer_reads_only_its_shards(aredis, key_prefix):
    got: list[str] = []

    async def handler(batch: list[Delivery]) -> None:
        got.extend(item.event for d in batch for item in d.message.items)  # type: ignore[attr-defined]

    publisher = Publisher(aredis, key_prefix, shards=4)
    events = [f"EV-{i}" for i in range(40)]
    await publisher.publish_many(
        MARKET_DATA,
        [
            MarketDataBatch(items=[BookStatus(market=e + "-M", event=e, state=BookState.VALID)])
            for e in events
        ],
        events=events,
    )
    from shared.streams import shard_of

    consumer = make_consumer(aredis, key_prefix, handler, spec=MARKET_DATA, shards=[1, 2])
    await drain(consumer, 4)
    assert sorted(got) == sorted(e for e in events if shard_of(e, 4) in {1, 2})


async def test_observer_publisher_never_blocks_and_drops_oldest(aredis, key_prefix):
    publisher = Publisher(aredis, key_prefix, shards=1)
    observer = ObserverPublisher(publisher, capacity=5)
    for i in range(8):
        observer.offer(HEARTBEATS, beat(i))  # no event loop turn needed: never awaits
    assert observer.dropped == 3
    observer.start()
    for _ in range(100):
        if await aredis.xlen(stream_key(key_prefix, HEARTBEATS)) == 5:
            break
        await asyncio.sleep(0.01)
    await observer.aclose()
    assert await aredis.xlen(stream_key(key_prefix, HEARTBEATS)) == 5
