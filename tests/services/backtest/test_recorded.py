"""The recorder's tables read back as ingest published them: batches, trust, trades, settlements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from services.backtest.recorded import read_recorded
from services.backtest.recording import RecordingError, Tick
from services.execution import service as execution_service
from shared.messages import BookDelta, BookSnapshot, BookState, BookStatus, Side, TopOfBook, Trade
from shared.money import cents, contracts

T0 = datetime(2027, 1, 15, 10, tzinfo=UTC)
MS = timedelta(milliseconds=1)
MARKET = "KXHIGHNY-27JAN15-B40.5"


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


async def migrated(database_url: str) -> None:
    pool = await execution_service.open_migrated(database_url)
    await pool.close()


def record(database_url: str) -> None:
    """A snapshot and a delta published together, a trade, a gap, a new snapshot, a settlement."""
    batch1, batch2, batch3 = ns(T0 + 2 * MS), ns(T0 + 10 * MS), ns(T0 + 30 * MS)
    level = [[cents(40), contracts(5)]]
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO markets (ticker, event, series, status, strike_type, floor_strike,"
            " cap_strike, close_time, mutually_exclusive, price_ranges) VALUES"
            " (%s, 'KXHIGHNY-27JAN15', 'KXHIGHNY', 'settled', 'between', 40, 41, %s, true, %s)",
            (MARKET, T0 + timedelta(days=1), Jsonb([[cents(1), cents(99), cents(1)]])),
        )
        conn.execute(
            "INSERT INTO market_snapshots (ts, market, seq, yes_bids, no_bids, batch)"
            " VALUES (%s, %s, 1, %s, %s, %s), (%s, %s, 9, %s, %s, %s)",
            (T0, MARKET, Jsonb(level), Jsonb(level), batch1,
             T0 + 25 * MS, MARKET, Jsonb(level), Jsonb([]), batch3),
        )  # fmt: skip
        conn.execute(
            "INSERT INTO book_deltas (ts, market, side, price_micros, delta_centi, seq, batch)"
            " VALUES (%s, %s, 'yes', %s, %s, 2, %s)",
            (T0 + 1 * MS, MARKET, cents(41), contracts(3), batch1),
        )
        conn.execute(
            "INSERT INTO market_trades (ts, market, trade_id, taker_side, yes_price_micros,"
            " count_centi, batch) VALUES (%s, %s, 't1', 'no', %s, %s, %s)",
            (T0 + 8 * MS, MARKET, cents(41), contracts(1), batch2),
        )
        conn.execute(
            "INSERT INTO book_status (ts, market, state, reason, batch) VALUES"
            " (%s, %s, 'invalid', 'sequence gap', %s), (%s, %s, 'valid', 'snapshot', %s)",
            (T0 + 20 * MS, MARKET, batch3, T0 + 25 * MS, MARKET, batch3),
        )
        conn.execute(
            "INSERT INTO settlements (market, result, settled_at) VALUES (%s, 'yes', %s)",
            (MARKET, T0 + timedelta(seconds=5)),
        )


async def ticks_of(database_url: str) -> tuple[list, list[Tick]]:
    recording = await read_recorded(database_url, T0 - MS, T0 + timedelta(minutes=1))
    ticks = [tick async for tick in recording.ticks]  # type: ignore[union-attr]
    return recording.markets, ticks


async def test_the_recorded_rows_come_back_as_the_published_batches(database_url):
    await migrated(database_url)
    record(database_url)
    markets, ticks = await ticks_of(database_url)
    assert [m.market for m in markets] == [MARKET]
    assert markets[0].status == "active" and markets[0].mutually_exclusive
    assert [t.ts_ns for t in ticks] == [
        ns(T0 + 2 * MS),
        ns(T0 + 10 * MS),
        ns(T0 + 30 * MS),
        ns(T0 + timedelta(seconds=5)),
    ]
    first = ticks[0].items
    assert [type(i) for i in first] == [BookStatus, BookSnapshot, TopOfBook, BookDelta, TopOfBook]
    assert first[0].state is BookState.VALID
    assert first[3].price == cents(41) and first[3].delta == contracts(3)
    assert first[4].yes_bid is not None and first[4].yes_bid.price == cents(41)
    [trade] = ticks[1].items
    assert isinstance(trade, Trade) and trade.taker_side is Side.NO and trade.trade_id == "t1"
    third = ticks[2].items
    assert isinstance(third[0], BookStatus) and third[0].state is BookState.INVALID
    assert "sequence gap" in third[0].reason
    assert isinstance(third[1], BookStatus) and third[1].state is BookState.VALID
    assert isinstance(third[2], BookSnapshot) and third[2].no_bids == []
    [settled] = ticks[3].settled
    assert settled.market == MARKET and settled.result is Side.YES


async def test_an_empty_window_or_database_is_a_clear_error(database_url):
    with pytest.raises(RecordingError, match="no markets table"):
        await read_recorded(database_url, T0, T0 + MS)
    await migrated(database_url)
    with pytest.raises(RecordingError, match="nothing recorded"):
        await read_recorded(database_url, T0, T0 + MS)
    with pytest.raises(RecordingError, match="before --until"):
        await read_recorded(database_url, T0, T0)
