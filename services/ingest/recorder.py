"""Recording every snapshot and delta ingest publishes, so any day can be replayed.

Rows go to Postgres through COPY batch writers: recording never waits for the
database, a database outage keeps the rows buffered and retried, and a retried
batch is not doubled (the tables' keys include market, time and seq).
"""

from __future__ import annotations

from collections.abc import Iterable

from psycopg.types.json import Jsonb

from shared.messages import BookDelta, BookSnapshot, Level, MarketData
from shared.store.pool import Pool
from shared.store.writer import BatchWriter, ts_from_ns

DELTA_COLUMNS = ("ts", "market", "side", "price_micros", "delta_centi", "seq")
SNAPSHOT_COLUMNS = ("ts", "market", "seq", "yes_bids", "no_bids")


def _levels(levels: list[Level]) -> Jsonb:
    return Jsonb([[level.price, level.count] for level in levels])


class Recorder:
    """Buffers market data for Postgres; ``record`` never awaits."""

    def __init__(self, pool: Pool, *, max_rows: int = 5000, max_delay_s: float = 0.5) -> None:
        self.deltas = BatchWriter(
            pool,
            "book_deltas",
            DELTA_COLUMNS,
            conflict_key=("market", "ts", "seq", "side", "price_micros"),
            max_rows=max_rows,
            max_delay_s=max_delay_s,
        )
        self.snapshots = BatchWriter(
            pool,
            "market_snapshots",
            SNAPSHOT_COLUMNS,
            conflict_key=("market", "ts", "seq"),
            max_rows=max_rows,
            max_delay_s=max_delay_s,
        )

    def record(self, messages: Iterable[MarketData], received_ns: int) -> None:
        ts = ts_from_ns(received_ns)
        for message in messages:
            if isinstance(message, BookDelta):
                self.deltas.add(
                    (
                        ts,
                        message.market,
                        message.side.value,
                        message.price,
                        message.delta,
                        message.seq,
                    )
                )
            elif isinstance(message, BookSnapshot):
                self.snapshots.add(
                    (
                        ts,
                        message.market,
                        message.seq,
                        _levels(message.yes_bids),
                        _levels(message.no_bids),
                    )
                )

    def start(self) -> None:
        self.deltas.start()
        self.snapshots.start()

    async def flush(self) -> None:
        await self.deltas.flush()
        await self.snapshots.flush()

    async def aclose(self) -> None:
        await self.deltas.aclose()
        await self.snapshots.aclose()
