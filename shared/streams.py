"""The streams of the bus: one schema each, who writes, how they are split.

Market data and signals are partitioned by event ticker into a fixed number of
shards, so every market of one event (an arbitrage spans an event) lands on one
shard and one strategy replica. Everything else is a single stream.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Final

from shared import messages as m


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """A stream: its base name, the one schema it carries, and how it is kept."""

    name: str
    schema: Any
    sharded: bool = False
    maxlen: int = 100_000
    """Approximate MAXLEN trim on publish; consumers must keep up within this."""


MARKET_DATA: Final = StreamSpec("md", m.MarketDataBatch, sharded=True, maxlen=200_000)
MARKETS: Final = StreamSpec("markets", m.MarketInfo, maxlen=50_000)
OBSERVATIONS: Final = StreamSpec("ext", m.Observation)
SIGNALS: Final = StreamSpec("signals", m.Signal, sharded=True)
INTENTS: Final = StreamSpec("intents", m.OrderIntent)
DECISIONS: Final = StreamSpec("decisions", m.RiskDecision)
ORDERS: Final = StreamSpec("orders", m.OrderEvent)
FILLS: Final = StreamSpec("fills", m.LedgerEntry, maxlen=1_000_000)
PORTFOLIO: Final = StreamSpec("portfolio", m.PortfolioState, maxlen=10_000)
HEARTBEATS: Final = StreamSpec("heartbeats", m.Heartbeat, maxlen=10_000)
CONTROL: Final = StreamSpec("control", m.ControlCommand, maxlen=10_000)
DEAD_LETTERS: Final = StreamSpec("dead", m.DeadLetter, maxlen=100_000)

ALL_STREAMS: Final = (
    MARKET_DATA,
    MARKETS,
    OBSERVATIONS,
    SIGNALS,
    INTENTS,
    DECISIONS,
    ORDERS,
    FILLS,
    PORTFOLIO,
    HEARTBEATS,
    CONTROL,
    DEAD_LETTERS,
)


def shard_of(event_ticker: str, shards: int) -> int:
    """The shard of an event: stable across processes and restarts (CRC-32, not hash())."""
    if shards < 1:
        raise ValueError("shards must be at least 1")
    return zlib.crc32(event_ticker.encode()) % shards


def stream_key(prefix: str, spec: StreamSpec, shard: int | None = None) -> str:
    """The Redis key of a stream (with its shard, if the stream is sharded)."""
    if spec.sharded:
        if shard is None:
            raise ValueError(f"stream {spec.name!r} is sharded: a shard is required")
        return f"{prefix}{spec.name}:{shard}"
    if shard is not None:
        raise ValueError(f"stream {spec.name!r} is not sharded")
    return f"{prefix}{spec.name}"
