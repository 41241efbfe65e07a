"""Client-side token buckets that mirror Kalshi's, so we wait instead of getting 429s.

Kalshi meters every request in tokens (10 by default, cheaper or dearer for
some endpoints) against two buckets per user, read and write, refilled at the
account tier's rate up to a capacity (``protocols.md`` 1.4). A 429 carries no
Retry-After, so the client must know the costs itself: :func:`cost_of` maps a
request to its bucket and cost, and :class:`RateLimiter` makes callers wait.

Waiting is by reservation: a caller takes its tokens at once, possibly
driving the bucket below zero, and sleeps until the refill covers the debt.
Callers are therefore served first come first served, with no lock and no
polling. A caller cancelled while waiting keeps its reservation (the bucket
stays conservative).

Two margins keep us under the exchange's own count despite network jitter
(requests sent evenly can arrive bunched): the usable capacity is lowered by
``headroom`` and the refill rate by ``rate_margin``. Processes that share one
API key share its buckets at the exchange: give each a ``share`` of the tier.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, Literal

Bucket = Literal["read", "write"]


@dataclass(frozen=True)
class TierLimits:
    """Refill rates (tokens per second) and capacities (tokens) of one tier."""

    read_rate: int
    read_capacity: int
    write_rate: int
    write_capacity: int


TIERS: Final[dict[str, TierLimits]] = {
    # Basic/Advanced read and every write bucket above Basic hold 2 s of budget; others 1 s.
    "basic": TierLimits(200, 400, 100, 100),
    "advanced": TierLimits(300, 600, 300, 600),
    "expert": TierLimits(600, 600, 600, 1200),
    "premier": TierLimits(1000, 1000, 1000, 2000),
    "paragon": TierLimits(2000, 2000, 2000, 4000),
    "prime": TierLimits(4000, 4000, 4000, 8000),
    "prestige": TierLimits(10_000, 10_000, 8000, 16_000),
}

DEFAULT_COST: Final = 10
V2_CREATE_COST: Final = 10
V2_CANCEL_COST: Final = 2
BATCH_CREATE_COST_EACH: Final = 10
BATCH_CANCEL_COST_EACH: Final = 2
GET_ORDER_COST: Final = 2
LEGACY_CREATE_COST: Final = 100
LEGACY_AMEND_COST: Final = 100
LEGACY_DECREASE_COST: Final = 100
LEGACY_BATCH_CREATE_COST_EACH: Final = 100
LEGACY_CANCEL_COST: Final = 20

_V2_ORDERS: Final = "/portfolio/events/orders"
_LEGACY_ORDERS: Final = "/portfolio/orders"


def _legacy_write_cost(method: str, rest: list[str], batch_size: int) -> int:
    if rest == ["batched"]:
        each = LEGACY_BATCH_CREATE_COST_EACH if method == "POST" else LEGACY_CANCEL_COST
        return each * batch_size
    if method == "DELETE":
        return LEGACY_CANCEL_COST
    if rest and rest[-1] == "amend":
        return LEGACY_AMEND_COST
    if rest and rest[-1] == "decrease":
        return LEGACY_DECREASE_COST
    return LEGACY_CREATE_COST


def _v2_write_cost(method: str, rest: list[str], batch_size: int) -> int:
    if rest == ["batched"]:
        each = BATCH_CREATE_COST_EACH if method == "POST" else BATCH_CANCEL_COST_EACH
        return each * batch_size
    if method == "DELETE":
        return V2_CANCEL_COST
    return V2_CREATE_COST if not rest else DEFAULT_COST  # amend and decrease: default


def cost_of(method: str, path: str, batch_size: int = 1) -> tuple[Bucket, int]:
    """The bucket and token cost of one request; ``path`` is relative to ``/trade-api/v2``."""
    method = method.upper()
    path = path.split("?", 1)[0].rstrip("/")
    if path.startswith(_V2_ORDERS):
        rest = [part for part in path[len(_V2_ORDERS) :].split("/") if part]
        return "write", _v2_write_cost(method, rest, batch_size)
    if path.startswith(_LEGACY_ORDERS):
        rest = [part for part in path[len(_LEGACY_ORDERS) :].split("/") if part]
        if method == "GET":
            single = len(rest) == 1 and rest[0] != "queue_positions"
            return "read", GET_ORDER_COST if single else DEFAULT_COST
        return "write", _legacy_write_cost(method, rest, batch_size)
    return "read", DEFAULT_COST


class RateLimitExceeded(ValueError):
    """A single request costs more than the bucket can ever hold."""


@dataclass
class TokenBucket:
    """One bucket; ``tokens`` may go negative: that is the debt of waiting callers."""

    rate: float
    capacity: float
    tokens: float
    stamp: float

    def reserve(self, cost: float, now: float) -> float:
        """Take ``cost`` tokens now; return the seconds to wait until they are really there."""
        if cost > self.capacity:
            raise RateLimitExceeded(f"cost {cost} exceeds bucket capacity {self.capacity}")
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= cost
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def drain(self, now: float) -> None:
        """Forget the refill: the exchange said 429, so its bucket is empty whatever we think."""
        self.tokens = min(0.0, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now


@dataclass
class RateLimiter:
    """Read and write buckets of one API key; ``await acquire(bucket, cost)`` before a request."""

    limits: TierLimits
    share: float = 1.0
    headroom: float = 0.1
    rate_margin: float = 0.05
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    waits: int = 0
    waited_s: float = 0.0
    _buckets: dict[Bucket, TokenBucket] = field(init=False)

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1 or not 0 <= self.headroom < 1 or not 0 <= self.rate_margin < 1:
            raise ValueError("share must be in (0, 1], headroom and rate_margin in [0, 1)")
        now = self.clock()
        self._buckets = {
            "read": self._bucket(self.limits.read_rate, self.limits.read_capacity, now),
            "write": self._bucket(self.limits.write_rate, self.limits.write_capacity, now),
        }

    @classmethod
    def for_tier(
        cls, tier: str, *, share: float = 1.0, headroom: float = 0.1, rate_margin: float = 0.05
    ) -> RateLimiter:
        if tier not in TIERS:
            raise ValueError(f"unknown Kalshi tier {tier!r}; known: {sorted(TIERS)}")
        return cls(TIERS[tier], share=share, headroom=headroom, rate_margin=rate_margin)

    def _bucket(self, rate: int, capacity: int, now: float) -> TokenBucket:
        usable = capacity * self.share * (1 - self.headroom)
        return TokenBucket(rate * self.share * (1 - self.rate_margin), usable, usable, now)

    def bucket(self, name: Bucket) -> TokenBucket:
        return self._buckets[name]

    def reserve(self, bucket: Bucket, cost: int = DEFAULT_COST) -> float:
        """Take the tokens; return how long the caller must wait before sending."""
        return self._buckets[bucket].reserve(cost, self.clock())

    async def acquire(self, bucket: Bucket, cost: int = DEFAULT_COST) -> float:
        """Wait until ``cost`` tokens of ``bucket`` are ours; return the seconds waited."""
        delay = self.reserve(bucket, cost)
        if delay > 0:
            self.waits += 1
            self.waited_s += delay
            await self.sleep(delay)
        return delay

    def penalize(self, bucket: Bucket) -> None:
        """The exchange refused us (429): empty our copy of its bucket."""
        self._buckets[bucket].drain(self.clock())
