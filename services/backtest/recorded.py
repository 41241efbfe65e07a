"""The recorder's Postgres tables as a :class:`Recording` (``--from-db``).

Ingest records what it published (``market_snapshots``, ``book_deltas``,
``market_trades``, ``book_status``), each row stamped with the time it was
received and with its batch (the time it was published). One query merges the
four: batch by batch, each batch one tick at its publish time (the services
read it live as one message), and within it by receive time, then condemned
books before snapshots before deltas (by sequence) before trades, the order
ingest emits them within one instant. Rows recorded without a batch are
grouped by receive time. Snapshots and deltas go through ingest's own
:class:`BookKeeper` (without sequence checks: ingest checked them before
recording), so the replay sees the very messages ingest published, top of
book and trust included. Settlements recorded by execution in the window
settle the replay's positions too.

The catalog is the ``markets`` table, for the markets with data in the window.
It holds a market's latest state, so every replayed market counts as open:
ingest only records markets it follows, and it follows open markets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from services.backtest.recording import Recording, RecordingError, Tick
from services.ingest.books import BookKeeper, MarketRef
from services.ingest.catalog import grid_of
from shared.messages import (
    Level,
    MarketData,
    MarketInfo,
    MarketSettled,
    PriceRange,
    Side,
    Trade,
)
from shared.store.pool import Pool, StoreUnavailable, open_pool

CONNECT_TIMEOUT_S: Final = 5.0
FETCH_ROWS: Final = 5000
STATUS, SNAPSHOT, DELTA, TRADE, SETTLED = range(5)

_WINDOW: Final = "ts >= %(since)s AND ts < %(until)s"
_NS: Final = "(extract(epoch FROM {}) * 1000000)::bigint * 1000"
_INSTANT: Final = f"CASE WHEN batch > 0 THEN batch ELSE {_NS.format('ts')} END"
DATA_QUERY: Final = f"""
SELECT ts, {STATUS} AS kind, 0::bigint AS seq, market, state AS a, reason AS b,
       NULL::bigint AS c, NULL::bigint AS d, NULL::bigint AS e, NULL::jsonb AS yes,
       NULL::jsonb AS no, {_INSTANT} AS instant
  FROM book_status WHERE {_WINDOW} AND state <> 'valid'
UNION ALL
SELECT ts, {SNAPSHOT}, seq, market, NULL, NULL, NULL, NULL, NULL, yes_bids, no_bids, {_INSTANT}
  FROM market_snapshots WHERE {_WINDOW}
UNION ALL
SELECT ts, {DELTA}, seq, market, side, NULL, price_micros, delta_centi, NULL, NULL, NULL,
       {_INSTANT}
  FROM book_deltas WHERE {_WINDOW}
UNION ALL
SELECT ts, {TRADE}, 0, market, trade_id, taker_side, yes_price_micros, count_centi,
       {_NS.format("exchange_ts")}, NULL, NULL, {_INSTANT}
  FROM market_trades WHERE {_WINDOW}
UNION ALL
SELECT settled_at, {SETTLED}, 0, market, result, NULL, NULL, NULL, NULL, NULL, NULL,
       {_NS.format("settled_at")}
  FROM settlements WHERE settled_at >= %(since)s AND settled_at < %(until)s
ORDER BY 12, 1, 2, 3, 4
"""
COUNT_QUERY: Final = f"""
SELECT count(DISTINCT instant) FROM (
    SELECT {_INSTANT} AS instant FROM market_snapshots WHERE {_WINDOW}
    UNION ALL SELECT {_INSTANT} FROM book_deltas WHERE {_WINDOW}
    UNION ALL SELECT {_INSTANT} FROM market_trades WHERE {_WINDOW}
) AS recorded
"""
MARKETS_QUERY: Final = f"""
SELECT ticker, event, series, title, strike_type, floor_strike, cap_strike, close_time,
       mutually_exclusive, fee_type, fee_multiplier, price_ranges
  FROM markets WHERE ticker IN (
    SELECT market FROM market_snapshots WHERE {_WINDOW}
    UNION SELECT market FROM book_deltas WHERE {_WINDOW}
  ) ORDER BY ticker
"""
TABLES: Final = ("markets", "market_snapshots", "book_deltas", "market_trades", "book_status")

Connection = AsyncConnection[TupleRow]


def ns_of(moment: datetime) -> int:
    micros = int(moment.timestamp()) * 1_000_000 + moment.microsecond
    return micros * 1000


def market_from_row(row: tuple[Any, ...]) -> MarketInfo:
    return MarketInfo(
        market=row[0],
        event=row[1],
        series=row[2],
        title=row[3],
        status="active",
        strike_type=row[4],
        floor_strike=row[5],
        cap_strike=row[6],
        close_ts_ns=ns_of(row[7]),
        mutually_exclusive=row[8],
        fee_type=row[9],
        fee_multiplier=row[10],
        price_ranges=[PriceRange(start, end, step) for start, end, step in row[11]],
    )


class RecordedData:
    """Turns the merged rows into the messages ingest published."""

    def __init__(self, markets: Iterable[MarketInfo]) -> None:
        self.keeper = BookKeeper(check_sequence=False)
        self.events: dict[str, str] = {}
        for info in markets:
            self.events[info.market] = info.event
            self.keeper.track(MarketRef(info.market, info.event, grid_of(info)))

    def items(self, row: tuple[Any, ...]) -> list[MarketData]:
        _, kind, seq, market = row[:4]
        if kind == STATUS:
            return self.keeper.condemn(market, f"recorded {row[4]}: {row[5]}")
        if kind == SNAPSHOT:
            return self.keeper.on_snapshot(0, seq, market, _levels(row[9]), _levels(row[10]))
        if kind == DELTA:
            return self.keeper.on_delta(0, seq, market, Side(row[4]), row[6], row[7])
        if kind == TRADE and market in self.events:
            return [_trade(row, self.events[market])]
        return []


def _levels(raw: list[list[int]]) -> list[Level]:
    return [Level(price, count) for price, count in raw]


def _trade(row: tuple[Any, ...], event: str) -> Trade:
    return Trade(
        market=row[3],
        event=event,
        trade_id=row[4],
        taker_side=Side(row[5]),
        yes_price=row[6],
        count=row[7],
        exchange_ts_ns=(row[8] or 0) * 1000,
    )


async def _ticks(
    conn: Connection, data: RecordedData, window: dict[str, datetime]
) -> AsyncIterator[Tick]:
    current: Tick | None = None
    async with conn.cursor(name="replay") as cursor:
        await cursor.execute(DATA_QUERY, window)
        while rows := await cursor.fetchmany(FETCH_ROWS):
            for row in rows:
                ts = row[11]
                if current is None or current.ts_ns != ts:
                    if current is not None:
                        yield current
                    current = Tick(ts, [])
                if row[1] == SETTLED:
                    current.settled.append(
                        MarketSettled(market=row[3], result=Side(row[4]), ts_ns=ts, paper=True)
                    )
                else:
                    current.items.extend(data.items(row))
    if current is not None:
        yield current


async def _check_tables(conn: Connection) -> None:
    for table in TABLES:
        found = await (await conn.execute("SELECT to_regclass(%s)", (table,))).fetchone()
        if found is None or found[0] is None:
            raise RecordingError(
                f"the database has no {table} table: nothing was recorded there "
                "(run ingest with ingest.record on, against this database)"
            )


async def read_recorded(url: str, since: datetime, until: datetime) -> Recording:
    """The recorder's data of ``[since, until)``; RecordingError if it cannot be read."""
    if since >= until:
        raise RecordingError("--since must be before --until")
    window = {"since": since, "until": until}
    try:
        pool = await open_pool(url, max_size=1, timeout_s=CONNECT_TIMEOUT_S, name="backtest")
    except StoreUnavailable as exc:
        raise RecordingError(str(exc)) from None
    try:
        async with pool.connection() as conn:
            await _check_tables(conn)
            markets = [
                market_from_row(r)
                for r in await (await conn.execute(MARKETS_QUERY, window)).fetchall()
            ]
            counted = await (await conn.execute(COUNT_QUERY, window)).fetchone()
    except psycopg.Error as exc:
        await pool.close()
        raise RecordingError(f"database error: {' '.join(str(exc).split())}") from None
    if not markets:
        await pool.close()
        raise RecordingError(f"nothing recorded from {since.isoformat()} to {until.isoformat()}")
    return Recording(
        name=f"db {since.isoformat()} .. {until.isoformat()}",
        markets=markets,
        ticks=_stream(pool, RecordedData(markets), window),
        size=counted[0] if counted else None,
    )


async def _stream(
    pool: Pool, data: RecordedData, window: dict[str, datetime]
) -> AsyncIterator[Tick]:
    try:
        async with pool.connection() as conn, conn.transaction():
            async for tick in _ticks(conn, data, window):
                yield tick
    except psycopg.Error as exc:
        raise RecordingError(f"database error: {' '.join(str(exc).split())}") from None
    finally:
        await pool.close()
