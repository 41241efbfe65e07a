"""Books at once for a service that has none.

Strategy, risk and execution build their books from ingest's snapshots; the
deltas in between are useless to a process that holds no book. A restarted
instance, a standby that took over, or a strategy replica that gained shards
would otherwise trade nothing until ingest's periodic republish
(``ingest.snapshot_interval_s``). Ingest follows the heartbeats instead and
republishes its books as soon as such a newcomer shows up (:class:`Newcomers`
decides, :func:`republish_for_newcomers` acts, coalescing a burst of them).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final

from shared.messages import Heartbeat, Message

BOOK_CONSUMERS: Final = frozenset({"strategy", "risk", "execution"})
FRESH_UPTIME_S: Final = 10
"""An instance first seen active this young has just started (else: ingest restarted)."""
FORGET_AFTER_NS: Final = 60 * 1_000_000_000
SETTLE_S: Final = 0.5
"""Wait this long after a newcomer shows up: it may still be joining its consumer group,
and more may follow (a whole stack starting) for one republish."""


@dataclass(frozen=True, slots=True)
class Seen:
    role: str
    uptime_s: int
    shards: str
    ts_ns: int


def _uptime(beat: Heartbeat) -> int:
    try:
        return int(beat.info.get("uptime_s", "0"))
    except ValueError:
        return 0


class Newcomers:
    """Tells, from heartbeats, when a book consumer has just become able to trade."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], Seen] = {}

    def arrived(self, messages: Iterable[Message]) -> list[str]:
        """The ``service/instance`` names of newcomers among these heartbeats."""
        names = []
        for beat in messages:
            if not isinstance(beat, Heartbeat) or beat.service not in BOOK_CONSUMERS:
                continue
            key = (beat.service, beat.instance)
            now = Seen(beat.role, _uptime(beat), beat.info.get("shards", ""), beat.ts_ns)
            if now.role == "active" and self._is_new(self._seen.get(key), now):
                names.append(f"{beat.service}/{beat.instance}")
            self._seen[key] = now
            self._forget_older_than(now.ts_ns - FORGET_AFTER_NS)
        return names

    @staticmethod
    def _is_new(before: Seen | None, now: Seen) -> bool:
        if before is None:
            return now.uptime_s <= FRESH_UPTIME_S
        return (
            before.role != "active" or now.uptime_s < before.uptime_s or now.shards != before.shards
        )

    def _forget_older_than(self, ts_ns: int) -> None:
        for key in [k for k, seen in self._seen.items() if seen.ts_ns < ts_ns]:
            del self._seen[key]


async def republish_for_newcomers(
    wanted: asyncio.Event, stop: asyncio.Event, republish: Callable[[], Awaitable[None]]
) -> None:
    """Each time ``wanted`` is set: settle a moment, then republish once for all of them."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await wanted.wait()
        if not wanted.is_set():
            continue
        await asyncio.sleep(SETTLE_S)
        wanted.clear()
        await republish()
