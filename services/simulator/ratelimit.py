"""Kalshi's token-bucket rate limits: a read and a write bucket per user.

Each request costs tokens (10 by default; Kalshi publishes the exceptions);
a bucket refills at the tier's per-second budget up to its capacity. A
request that does not fit is refused whole with HTTP 429.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

Bucket = Literal["read", "write"]

DEFAULT_COST: Final = 10


@dataclass(frozen=True)
class Tier:
    read_rate: int
    read_capacity: int
    write_rate: int
    write_capacity: int


TIERS: Final[dict[str, Tier]] = {
    # Basic/Advanced read and all writes above Basic hold 2 s of budget; Basic write holds 1 s.
    "basic": Tier(200, 400, 100, 100),
    "advanced": Tier(300, 600, 300, 600),
    "expert": Tier(600, 600, 600, 1200),
    "premier": Tier(1000, 1000, 1000, 2000),
    "paragon": Tier(2000, 2000, 2000, 4000),
    "prime": Tier(4000, 4000, 4000, 8000),
    "prestige": Tier(10_000, 10_000, 8000, 16_000),
}

COSTS: Final[dict[str, int]] = {
    "v2_create": 10,
    "v2_cancel": 2,
    "v2_batch_create_each": 10,
    "v2_batch_cancel_each": 2,
    "get_order": 2,
    "legacy_create": 100,
    "legacy_amend": 100,
    "legacy_decrease": 100,
    "legacy_batch_create_each": 100,
    "legacy_cancel": 20,
}


@dataclass
class _TokenBucket:
    rate: float
    capacity: float
    tokens: float
    stamp: float

    def take(self, cost: int, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if cost > self.tokens:
            return False
        self.tokens -= cost
        return True


@dataclass
class RateLimiter:
    """Per-user buckets; ``tier=None`` switches limiting off."""

    tier: Tier | None = field(default_factory=lambda: TIERS["basic"])
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[tuple[str, Bucket], _TokenBucket] = field(default_factory=dict)

    def allow(self, user: str, bucket: Bucket, cost: int = DEFAULT_COST) -> bool:
        if self.tier is None:
            return True
        key = (user, bucket)
        found = self._buckets.get(key)
        now = self.clock()
        if found is None:
            rate, capacity = (
                (self.tier.read_rate, self.tier.read_capacity)
                if bucket == "read"
                else (self.tier.write_rate, self.tier.write_capacity)
            )
            found = self._buckets[key] = _TokenBucket(rate, capacity, capacity, now)
        return found.take(cost, now)

    def describe(self, tier_name: str) -> dict[str, object]:
        """The body of ``GET /account/limits``."""
        tier = self.tier or TIERS["prestige"]
        return {
            "usage_tier": tier_name,
            "read": {"refill_rate": tier.read_rate, "bucket_capacity": tier.read_capacity},
            "write": {"refill_rate": tier.write_rate, "bucket_capacity": tier.write_capacity},
            "grants": [],
        }
