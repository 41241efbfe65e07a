"""Token buckets with an injected clock: bursts, waits, fairness, costs, tiers."""

from __future__ import annotations

import asyncio

import pytest

from shared.kalshi.ratelimit import (
    TIERS,
    RateLimiter,
    RateLimitExceeded,
    TierLimits,
    cost_of,
)


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def limiter(fake: FakeTime) -> RateLimiter:
    # read: 100 tokens/s, capacity 200; write: 50 tokens/s, capacity 50; no margins
    return RateLimiter(
        TierLimits(100, 200, 50, 50),
        headroom=0.0,
        rate_margin=0.0,
        clock=fake.clock,
        sleep=fake.sleep,
    )


async def test_a_full_bucket_serves_a_burst_without_waiting() -> None:
    fake = FakeTime()
    rl = limiter(fake)
    for _ in range(20):
        assert await rl.acquire("read", 10) == 0
    assert rl.waits == 0
    assert rl.waited_s == 0


async def test_an_empty_bucket_waits_for_exactly_the_refill() -> None:
    fake = FakeTime()
    rl = limiter(fake)
    for _ in range(5):
        await rl.acquire("write", 10)
    waited = await rl.acquire("write", 10)
    assert waited == pytest.approx(0.2)  # 10 tokens at 50 tokens/s
    assert rl.waits == 1
    assert rl.waited_s == pytest.approx(0.2)
    assert fake.sleeps == [pytest.approx(0.2)]


async def test_buckets_are_independent() -> None:
    fake = FakeTime()
    rl = limiter(fake)
    for _ in range(5):
        await rl.acquire("write", 10)
    assert await rl.acquire("read", 10) == 0


async def test_time_refills_up_to_capacity_only() -> None:
    fake = FakeTime()
    rl = limiter(fake)
    fake.now += 3600
    for _ in range(20):
        assert await rl.acquire("read", 10) == 0
    assert await rl.acquire("read", 10) == pytest.approx(0.1)


def test_concurrent_callers_queue_first_come_first_served() -> None:
    fake = FakeTime()
    rl = limiter(fake)
    delays = [rl.reserve("write", 10) for _ in range(8)]
    assert delays == pytest.approx([0, 0, 0, 0, 0, 0.2, 0.4, 0.6])


async def test_real_sleeps_space_concurrent_callers() -> None:
    rl = RateLimiter(TierLimits(1000, 10, 1000, 10), headroom=0.0, rate_margin=0.0)
    started = asyncio.get_running_loop().time()
    await asyncio.gather(*(rl.acquire("read", 10) for _ in range(4)))
    elapsed = asyncio.get_running_loop().time() - started
    assert elapsed >= 0.029  # 3 x 10 tokens at 1000/s after the first
    assert rl.waits == 3


def test_a_cost_above_capacity_can_never_be_served() -> None:
    fake = FakeTime()
    rl = limiter(fake)
    with pytest.raises(RateLimitExceeded):
        rl.reserve("write", 60)


def test_penalize_empties_our_copy_of_the_bucket() -> None:
    fake = FakeTime()
    rl = limiter(fake)
    rl.penalize("read")
    assert rl.reserve("read", 10) == pytest.approx(0.1)


def test_margins_and_share_shrink_the_bucket() -> None:
    fake = FakeTime()
    rl = RateLimiter(
        TierLimits(200, 400, 100, 100),
        share=0.5,
        headroom=0.1,
        rate_margin=0.05,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    bucket = rl.bucket("read")
    assert bucket.capacity == pytest.approx(180)  # 400 x 0.5 x 0.9
    assert bucket.rate == pytest.approx(95)  # 200 x 0.5 x 0.95


def test_tiers_follow_the_published_table() -> None:
    assert TIERS["basic"] == TierLimits(200, 400, 100, 100)
    assert TIERS["advanced"] == TierLimits(300, 600, 300, 600)
    assert TIERS["premier"] == TierLimits(1000, 1000, 1000, 2000)
    assert TIERS["prestige"] == TierLimits(10_000, 10_000, 8000, 16_000)
    assert RateLimiter.for_tier("expert").limits == TIERS["expert"]
    with pytest.raises(ValueError, match="unknown Kalshi tier"):
        RateLimiter.for_tier("gold")


@pytest.mark.parametrize(
    ("method", "path", "batch", "expected"),
    [
        ("GET", "/markets", 1, ("read", 10)),
        ("GET", "/markets/X/orderbook?depth=3", 1, ("read", 10)),
        ("GET", "/portfolio/orders", 1, ("read", 10)),
        ("GET", "/portfolio/orders/abc", 1, ("read", 2)),
        ("GET", "/portfolio/orders/queue_positions", 1, ("read", 10)),
        ("POST", "/portfolio/events/orders", 1, ("write", 10)),
        ("DELETE", "/portfolio/events/orders/abc", 1, ("write", 2)),
        ("POST", "/portfolio/events/orders/abc/amend", 1, ("write", 10)),
        ("POST", "/portfolio/events/orders/abc/decrease", 1, ("write", 10)),
        ("POST", "/portfolio/events/orders/batched", 7, ("write", 70)),
        ("DELETE", "/portfolio/events/orders/batched", 7, ("write", 14)),
        ("POST", "/portfolio/orders", 1, ("write", 100)),
        ("DELETE", "/portfolio/orders/abc", 1, ("write", 20)),
        ("POST", "/portfolio/orders/abc/amend", 1, ("write", 100)),
        ("POST", "/portfolio/orders/abc/decrease", 1, ("write", 100)),
        ("POST", "/portfolio/orders/batched", 3, ("write", 300)),
    ],
)
def test_endpoint_costs(method: str, path: str, batch: int, expected: tuple[str, int]) -> None:
    assert cost_of(method, path, batch) == expected
