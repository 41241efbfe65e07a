"""Leases: exclusive, renewable, lost on expiry; a standby takes over from a dead leader."""

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from shared.bus.lease import Lease, run_as_leader
from shared.bus.shards import ShardOwnership, assign


async def test_only_one_owner_at_a_time(aredis, key_prefix):
    a = Lease(aredis, f"{key_prefix}lease", "a", ttl_ms=500)
    b = Lease(aredis, f"{key_prefix}lease", "b", ttl_ms=500)
    assert await a.try_acquire()
    assert not await b.try_acquire()
    assert a.held and not b.held
    assert await a.try_acquire()  # renewing one's own lease
    assert await a.holder() == "a"


async def test_expired_lease_passes_on_with_a_higher_fencing_token(aredis, key_prefix):
    a = Lease(aredis, f"{key_prefix}lease", "a", ttl_ms=300)
    b = Lease(aredis, f"{key_prefix}lease", "b", ttl_ms=300)
    assert await a.try_acquire()
    await asyncio.sleep(0.35)
    assert not a.held
    assert await b.try_acquire()
    assert b.token > a.token
    assert not await a.renew()


async def test_release_only_releases_own_lease(aredis, key_prefix):
    a = Lease(aredis, f"{key_prefix}lease", "a", ttl_ms=5000)
    b = Lease(aredis, f"{key_prefix}lease", "b", ttl_ms=5000)
    assert await a.try_acquire()
    await b.release()
    assert await a.holder() == "a"
    await a.release()
    assert await b.try_acquire()


async def test_standby_takes_over_when_leader_dies(aredis, key_prefix):
    active: list[str] = []

    def body(name: str):
        async def run() -> None:
            active.append(name)
            try:
                await asyncio.Event().wait()
            finally:
                active.remove(name)

        return run

    key = f"{key_prefix}lease:risk"
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    a = asyncio.create_task(run_as_leader(Lease(aredis, key, "a", 600), stop_a, body("a")))
    await asyncio.sleep(0.1)
    b = asyncio.create_task(run_as_leader(Lease(aredis, key, "b", 600), stop_b, body("b")))
    seen: set[tuple[str, ...]] = set()
    for _ in range(10):
        seen.add(tuple(active))
        await asyncio.sleep(0.05)
    assert seen == {("a",)}
    a.cancel()  # the leader dies without releasing its lease
    async with asyncio.timeout(5):
        await asyncio.gather(a, return_exceptions=True)
    assert a.cancelled(), "the leader must honour its cancellation"

    for _ in range(40):
        if active == ["b"]:
            break
        await asyncio.sleep(0.05)
    assert active == ["b"]
    stop_b.set()
    async with asyncio.timeout(5):
        await b


@given(st.integers(1, 64), st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=10))
def test_assignment_partitions_the_shards(shards, members):
    owned = [assign(shards, members, m) for m in set(members)]
    union: set[int] = set().union(*owned)
    assert union == set(range(shards))
    assert sum(len(o) for o in owned) == shards


async def test_replicas_split_shards_and_rebalance(aredis, key_prefix):
    r1 = ShardOwnership(aredis, key_prefix, service="strategy", member="r1", shards=6, ttl_ms=400)
    r2 = ShardOwnership(aredis, key_prefix, service="strategy", member="r2", shards=6, ttl_ms=400)
    assert await r1.refresh() == set(range(6))
    await r2.refresh()  # r2 announces itself; r1 still holds everything
    assert await r1.refresh() == {0, 2, 4}  # r1 lets go of r2's share
    assert await r2.refresh() == {1, 3, 5}
    assert not r1.owned() & r2.owned()
    await r2.leave()
    assert await r1.refresh() == set(range(6))
