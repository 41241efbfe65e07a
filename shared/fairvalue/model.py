"""The result every fair-value model returns, and the freshness rule they share."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

NS_PER_S: Final = 1_000_000_000


@dataclass(frozen=True, slots=True)
class FairValue:
    """A model's probability that ``market`` settles YES, and how far to trust it.

    ``confidence`` is in [0, 1] and multiplies into the strategy's score;
    ``inputs`` is a short human-readable account of what the value came from.
    """

    market: str
    p_yes: float
    confidence: float
    model: str
    inputs: str

    def __post_init__(self) -> None:
        if not (0.0 <= self.p_yes <= 1.0 and math.isfinite(self.p_yes)):
            raise ValueError(f"{self.market}: p_yes {self.p_yes!r} is not a probability")
        if not (0.0 <= self.confidence <= 1.0 and math.isfinite(self.confidence)):
            raise ValueError(f"{self.market}: confidence {self.confidence!r} is not in [0, 1]")

    @property
    def p_no(self) -> float:
        return 1.0 - self.p_yes


def clamp_probability(p: float) -> float:
    """Float noise can put a difference of CDFs a hair outside [0, 1]."""
    return min(1.0, max(0.0, p))


def age_s(now_ns: int, then_ns: int) -> float:
    """Seconds since ``then_ns``; a timestamp slightly in the future (clock skew) counts as 0."""
    return max(0, now_ns - then_ns) / NS_PER_S


def freshness(age: float, full_until_s: float, stale_after_s: float) -> float | None:
    """1 while ``age`` <= ``full_until_s``, falling linearly to 0 at ``stale_after_s``.

    None from ``stale_after_s`` on: a model must give no value from stale inputs.
    """
    if age >= stale_after_s:
        return None
    if age <= full_until_s:
        return 1.0
    return (stale_after_s - age) / (stale_after_s - full_until_s)
