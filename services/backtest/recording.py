"""What a replay reads: a market catalog and time-ordered market data (any input format).

Every input format (the recorder's Postgres tables, Kalshi WebSocket JSON
lines, top-of-book CSV) becomes one :class:`Recording`: the markets, then
:class:`Tick` after tick of the very messages ingest would have published, each
stamped with the data's own clock. The replay never knows which format it read.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass, field

from shared.messages import MarketData, MarketInfo, MarketSettled


class RecordingError(ValueError):
    """The input cannot be replayed; the message says where and why, in one line."""


@dataclass(frozen=True, slots=True)
class Tick:
    """What arrived at one instant (ns since the epoch, the data's own clock)."""

    ts_ns: int
    items: list[MarketData]
    settled: list[MarketSettled] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Recording:
    """A replayable day: the catalog up front, then ticks in time order.

    ``ticks`` may be a generator, sync or async (read lazily, once). ``size`` is how many
    ticks there are, or an upper bound, when known cheaply: it is the length
    of the progress bar.
    """

    name: str
    markets: list[MarketInfo]
    ticks: Iterable[Tick] | AsyncIterable[Tick]
    size: int | None = None
