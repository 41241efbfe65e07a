"""Exponential backoff with jitter, the one used wherever something is retried."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable


class Backoff:
    """Delays base, 2 x base, 4 x base ... up to cap, each scaled by a jitter in [0.5, 1].

    ``next()`` counts a failure and returns the delay before the next attempt;
    ``reset()`` after a success. Half the ceiling is kept so a retry storm still
    spreads out, the other half is random so many clients do not retry in step.
    """

    def __init__(
        self,
        base_s: float = 0.05,
        cap_s: float = 5.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.base_s, self.cap_s, self.jitter = base_s, cap_s, jitter
        self.failures = 0

    def delay(self, attempt: int) -> float:
        """The delay before retry ``attempt`` (1, 2, ...)."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(attempt - 1, 30))
        return ceiling * (0.5 + 0.5 * self.jitter())

    def next(self) -> float:
        self.failures += 1
        return self.delay(self.failures)

    async def wait(self) -> None:
        await asyncio.sleep(self.next())

    def reset(self) -> None:
        self.failures = 0
