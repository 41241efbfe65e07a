"""What every outside feed shares: freshness on the bus, retry delays, running until stopped.

A feed calls :meth:`FeedWatch.beat` whenever its source proves alive (a good
poll, a WebSocket message). The watch publishes ``FeedStatus(fresh=True)`` on
the first beat, on recovery, and then at most every ``heartbeat_s`` as the
feed's heartbeat; once the feed has been silent past ``stale_after_s`` (or the
feed reports a failure that leaves its data unusable, such as a dropped
connection) it publishes ``FeedStatus(fresh=False)`` once, until the next beat.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from shared.bus.publisher import Publisher
from shared.messages import FeedStatus
from shared.streams import OBSERVATIONS

log = structlog.get_logger("ingest.feeds")

NS_PER_S = 1_000_000_000
ClockNs = Callable[[], int]


@dataclass
class FeedState:
    """The freshness state machine of one feed (pure: the caller passes the time)."""

    feed: str
    stale_after_ns: int
    heartbeat_ns: int
    started_ns: int
    last_message_ns: int = 0
    fresh: bool | None = None
    """None until the feed has either beaten or gone silent past its limit."""
    last_status_ns: int = 0

    def on_message(self, now_ns: int) -> FeedStatus | None:
        self.last_message_ns = now_ns
        if self.fresh is not True or now_ns - self.last_status_ns >= self.heartbeat_ns:
            return self._status(True, now_ns, "")
        return None

    def on_tick(self, now_ns: int) -> FeedStatus | None:
        silent_ns = now_ns - (self.last_message_ns or self.started_ns)
        if self.fresh is not False and silent_ns > self.stale_after_ns:
            return self._status(False, now_ns, f"silent for {silent_ns / NS_PER_S:.1f} s")
        return None

    def on_failure(self, now_ns: int, reason: str) -> FeedStatus | None:
        if self.fresh is False:
            return None
        return self._status(False, now_ns, reason)

    def _status(self, fresh: bool, now_ns: int, reason: str) -> FeedStatus:
        self.fresh, self.last_status_ns = fresh, now_ns
        return FeedStatus(
            feed=self.feed, fresh=fresh, last_message_ns=self.last_message_ns, reason=reason
        )


class FeedWatch:
    """A feed's freshness, published to the OBSERVATIONS stream."""

    def __init__(
        self,
        publisher: Publisher,
        feed: str,
        *,
        stale_after_s: float,
        heartbeat_s: float,
        clock_ns: ClockNs = time.time_ns,
    ) -> None:
        self.publisher = publisher
        self.clock_ns = clock_ns
        self.state = FeedState(
            feed=feed,
            stale_after_ns=int(stale_after_s * NS_PER_S),
            heartbeat_ns=int(heartbeat_s * NS_PER_S),
            started_ns=clock_ns(),
        )
        self.check_every_s = min(1.0, stale_after_s / 4)

    @property
    def feed(self) -> str:
        return self.state.feed

    @property
    def fresh(self) -> bool | None:
        return self.state.fresh

    @property
    def label(self) -> str:
        """``fresh``, ``stale`` or ``starting``: for a service heartbeat's ``info``."""
        return {True: "fresh", False: "stale", None: "starting"}[self.state.fresh]

    async def beat(self) -> None:
        await self._publish(self.state.on_message(self.clock_ns()))

    async def fail(self, reason: str) -> None:
        await self._publish(self.state.on_failure(self.clock_ns(), reason))

    async def check(self) -> None:
        await self._publish(self.state.on_tick(self.clock_ns()))

    async def watch(self) -> None:
        """Check for silence forever (run it as a task next to the feed)."""
        while True:
            await asyncio.sleep(self.check_every_s)
            await self.check()

    async def _publish(self, status: FeedStatus | None) -> None:
        if status is None:
            return
        if not status.fresh:
            log.warning("feed stale", feed=status.feed, reason=status.reason)
        await self.publisher.publish(OBSERVATIONS, status)
