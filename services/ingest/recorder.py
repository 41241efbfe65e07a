"""Recording the market data ingest publishes, so any day can be replayed.

Snapshots, deltas, the exchange's public trades and every change of a book's
trust (``book_status``) are written; a replay (``python -m services.backtest
--from-db``) reads them back in the order ingest published them.

Rows go to Postgres through COPY batch writers: recording never waits for the
database, a database outage keeps the rows buffered and retried, and a retried
batch is not doubled (the tables' keys include market, time and seq).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import structlog
from psycopg.types.json import Jsonb

from shared.messages import BookDelta, BookSnapshot, BookStatus, Level, MarketData, Trade
from shared.store.pool import Pool
from shared.store.writer import BatchWriter, BufferFull, WriterFailed, ts_from_ns

log = structlog.get_logger("ingest")

RECEIVED_HOP = "ingest.rx"
WARN_EVERY_S = 10.0
DELTA_COLUMNS = ("ts", "market", "side", "price_micros", "delta_centi", "seq", "batch")
SNAPSHOT_COLUMNS = ("ts", "market", "seq", "yes_bids", "no_bids", "batch")
TRADE_COLUMNS = (
    "ts",
    "market",
    "trade_id",
    "taker_side",
    "yes_price_micros",
    "count_centi",
    "exchange_ts",
    "batch",
)
STATUS_COLUMNS = ("ts", "market", "state", "reason", "batch")


def _received(message: MarketData, default_ns: int) -> int:
    return next((h.ts_ns for h in message.hops if h.name == RECEIVED_HOP), default_ns)


def _levels(levels: list[Level]) -> Jsonb:
    return Jsonb([[level.price, level.count] for level in levels])


class Recorder:
    """Buffers market data for Postgres; ``record`` never awaits."""

    def __init__(self, pool: Pool, *, max_rows: int = 5000, max_delay_s: float = 0.5) -> None:
        def writer(table: str, columns: tuple[str, ...], key: tuple[str, ...]) -> BatchWriter:
            return BatchWriter(
                pool, table, columns, conflict_key=key, max_rows=max_rows, max_delay_s=max_delay_s
            )

        self.deltas = writer(
            "book_deltas", DELTA_COLUMNS, ("market", "ts", "seq", "side", "price_micros")
        )
        self.snapshots = writer("market_snapshots", SNAPSHOT_COLUMNS, ("market", "ts", "seq"))
        self.trades = writer("market_trades", TRADE_COLUMNS, ("market", "ts", "trade_id"))
        self.statuses = writer("book_status", STATUS_COLUMNS, ("market", "ts", "state"))
        self.dropped = 0
        """Batches not recorded because the writers could take no more."""
        self._warned_at = -WARN_EVERY_S

    @property
    def writers(self) -> tuple[BatchWriter, ...]:
        return (self.deltas, self.snapshots, self.trades, self.statuses)

    def record(self, messages: Iterable[MarketData], batch_ns: int) -> None:
        """One published batch: each row stamped with its message's receive time and
        with the batch (the time it was published).

        Recording never stops the feed: when Postgres has been away so long that the
        writers' buffers are full (or a writer failed for good), the rows are dropped,
        counted and logged, and market data keeps flowing to the services.
        """
        try:
            self._record(messages, batch_ns)
        except (BufferFull, WriterFailed) as exc:
            self.dropped += 1
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY_S:
                self._warned_at = now
                log.error("market data not recorded", batches_dropped=self.dropped, error=str(exc))

    def _record(self, messages: Iterable[MarketData], batch_ns: int) -> None:
        for message in messages:
            ts = ts_from_ns(_received(message, batch_ns))
            if isinstance(message, BookDelta):
                self.deltas.add(
                    (
                        ts,
                        message.market,
                        message.side.value,
                        message.price,
                        message.delta,
                        message.seq,
                        batch_ns,
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
                        batch_ns,
                    )
                )
            elif isinstance(message, Trade):
                self.trades.add(
                    (
                        ts,
                        message.market,
                        message.trade_id,
                        message.taker_side.value,
                        message.yes_price,
                        message.count,
                        ts_from_ns(message.exchange_ts_ns) if message.exchange_ts_ns else None,
                        batch_ns,
                    )
                )
            elif isinstance(message, BookStatus):
                self.statuses.add(
                    (ts, message.market, message.state.value, message.reason, batch_ns)
                )

    def start(self) -> None:
        for writer in self.writers:
            writer.start()

    async def flush(self) -> None:
        for writer in self.writers:
            await writer.flush()

    async def aclose(self) -> None:
        for writer in self.writers:
            await writer.aclose()
