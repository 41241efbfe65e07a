"""The replay's simulated clock: the data's own time, timers on it, and optional pacing.

Live services run loops (risk's one-second clock, execution's fade loop) and
read the wall clock; in a replay the same work is done by timers on the
simulated clock, in time order, and every component reads :class:`SimClock`.
Timers due at the same instant run in the order they were set, so a replay is
the same every time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

NS_PER_S: Final = 1_000_000_000

Job = Callable[[], Awaitable[None]]


class SimClock:
    """The replay's now (ns since the epoch); callable, like ``time.time_ns``."""

    def __init__(self, start_ns: int = 0) -> None:
        self.now_ns = start_ns

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, to_ns: int) -> None:
        """Time never goes backwards: an earlier stamp means 'now'."""
        self.now_ns = max(self.now_ns, to_ns)


@dataclass(order=True, slots=True)
class _Timer:
    due_ns: int
    order: int
    job: Job = field(compare=False)


class Timers:
    """Jobs due at simulated times, run in (time, insertion) order."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self._heap: list[_Timer] = []
        self._order = itertools.count()

    def at(self, due_ns: int, job: Job) -> None:
        heapq.heappush(self._heap, _Timer(due_ns, next(self._order), job))

    def next_due(self) -> int | None:
        return self._heap[0].due_ns if self._heap else None

    async def run_until(self, until_ns: int) -> None:
        """Run every job due at or before ``until_ns``, the clock following each."""
        while self._heap and self._heap[0].due_ns <= until_ns:
            timer = heapq.heappop(self._heap)
            self.clock.advance(timer.due_ns)
            await timer.job()


class Pacer:
    """Real time x ``speed``: waits until the wall clock catches up with the replay.

    ``speed`` 0 (the default) replays as fast as possible.
    """

    def __init__(self, speed: float) -> None:
        if speed < 0:
            raise ValueError(f"speed {speed} must be 0 (as fast as possible) or positive")
        self.speed = speed
        self._origin: tuple[int, float] | None = None

    def delay(self, ts_ns: int, wall_s: float) -> float:
        """Seconds to wait at wall time ``wall_s`` before replaying data time ``ts_ns``."""
        if self.speed == 0:
            return 0.0
        if self._origin is None:
            self._origin = (ts_ns, wall_s)
            return 0.0
        data_start, wall_start = self._origin
        due = wall_start + (ts_ns - data_start) / NS_PER_S / self.speed
        return max(0.0, due - wall_s)

    async def wait_for(self, ts_ns: int) -> None:
        delay = self.delay(ts_ns, time.monotonic())
        if delay > 0:
            await asyncio.sleep(delay)
