"""Recorded Kalshi WebSocket lines: books through ingest's keeper, trades, settlements, junk."""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any, Literal

import pytest

from services.backtest.kalshi_ws import KalshiWsReader, read_kalshi_ws
from services.backtest.recording import Recording, RecordingError, Tick
from services.backtest.tickers import markets_from_tickers
from shared.messages import (
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    Level,
    MarketSettled,
    PriceRange,
    Side,
    TopOfBook,
    Trade,
)

M = "KXHIGHNY-25DEC05-B32.5"
N = "KXHIGHNY-25DEC05-T37"
EVENT = "KXHIGHNY-25DEC05"
MS = 1_764_851_236_000
"""A moment in ms since the epoch."""
NS = MS * 1_000_000


def snapshot(sid: int, seq: int, yes: list[list[str]], no: list[list[str]], market: str = M):
    msg: dict[str, Any] = {"market_ticker": market, "market_id": "id"}
    if yes:
        msg["yes_dollars_fp"] = yes
    if no:
        msg["no_dollars_fp"] = no
    return {"type": "orderbook_snapshot", "sid": sid, "seq": seq, "msg": msg}


def delta(sid: int, seq: int, side: str, price: str, change: str, ts_ms: int | None = None):
    msg: dict[str, Any] = {"market_ticker": M, "price_dollars": price, "delta_fp": change}
    msg["side"] = side
    if ts_ms is not None:
        msg["ts_ms"] = ts_ms
    return {"type": "orderbook_delta", "sid": sid, "seq": seq, "msg": msg}


def trade(trade_id: str, ts_ms: int, market: str = M) -> dict[str, Any]:
    msg = {
        "trade_id": trade_id,
        "market_ticker": market,
        "yes_price_dollars": "0.4500",
        "no_price_dollars": "0.5500",
        "count_fp": "12.50",
        "taker_side": "no",
        "ts_ms": ts_ms,
    }
    return {"type": "trade", "sid": 9, "msg": msg}


def lifecycle(event_type: str, market: str = M, **fields: Any) -> dict[str, Any]:
    msg = {"event_type": event_type, "market_ticker": market, **fields}
    return {"type": "market_lifecycle_v2", "sid": 7, "msg": msg}


def subscribed(sid: int, channel: str = "orderbook_delta") -> dict[str, Any]:
    return {"type": "subscribed", "id": 1, "msg": {"channel": channel, "sid": sid}}


def wrapped(ms: int, message: dict[str, Any]) -> dict[str, Any]:
    return {"ts_ms": ms, "msg": message}


def jsonl(path: Path, *lines: dict[str, Any] | str) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def ticks_of(recording: Recording) -> list[Tick]:
    ticks = recording.ticks
    assert isinstance(ticks, types.GeneratorType)  # read lazily, and not async
    return list(ticks)


def status(state: BookState, reason: str, market: str = M) -> BookStatus:
    return BookStatus(market=market, event=EVENT, state=state, reason=reason)


def top(yes: Level | None, no: Level | None, market: str = M) -> TopOfBook:
    return TopOfBook(market=market, event=EVENT, yes_bid=yes, no_bid=no)


# --- books --------------------------------------------------------------------------------


# The same NO bids written as NO-leg prices (Kalshi's default) and on the YES scale.
NO_PRICES = [("no", "0.5400", "0.5300"), ("yes", "0.4600", "0.4700")]


@pytest.mark.parametrize(("no_price", "no_level", "no_delta"), NO_PRICES)
def test_snapshot_and_delta_publish_what_ingest_does(
    tmp_path: Path, no_price: Literal["no", "yes"], no_level: str, no_delta: str
):
    yes_levels = [["0.4000", "10.00"], ["0.4500", "3.00"]]
    path = jsonl(
        tmp_path / "day.jsonl",
        wrapped(MS - 5, subscribed(1)),
        wrapped(MS, snapshot(1, 1, yes_levels, [[no_level, "7.50"]])),
        wrapped(MS + 1, delta(1, 2, "no", no_delta, "2.00", ts_ms=MS)),
        wrapped(MS + 2, delta(1, 3, "yes", "0.4000", "-4.00", ts_ms=MS + 1)),
    )
    recording = read_kalshi_ws([path], no_price=no_price)
    assert recording.name == "day"
    assert [m.market for m in recording.markets] == [M]
    first, second, third = ticks_of(recording)
    assert recording.size == 3
    yes = [Level(450_000, 300), Level(400_000, 1000)]
    assert first == Tick(
        NS,
        [
            status(BookState.VALID, "snapshot"),
            BookSnapshot(market=M, event=EVENT, yes_bids=yes, no_bids=[Level(540_000, 750)], seq=1),
            top(Level(450_000, 300), Level(540_000, 750)),
        ],
    )
    assert second == Tick(
        NS + 1_000_000,
        [
            BookDelta(market=M, event=EVENT, side=Side.NO, price=530_000, delta=200, seq=2,
                      exchange_ts_ns=NS, prev_seq=1),
        ],
    )  # fmt: skip
    assert third.items == [
        BookDelta(market=M, event=EVENT, side=Side.YES, price=400_000, delta=-400, seq=3,
                  exchange_ts_ns=NS + 1_000_000, prev_seq=2),
    ]  # fmt: skip


def test_a_sequence_gap_invalidates_until_the_next_snapshot(tmp_path: Path):
    path = jsonl(
        tmp_path / "d.jsonl",
        wrapped(MS, snapshot(1, 1, [["0.4000", "10.00"]], [])),
        wrapped(MS + 1, delta(1, 3, "yes", "0.4100", "1.00")),
        wrapped(MS + 2, delta(1, 4, "yes", "0.4200", "1.00")),
        wrapped(MS + 3, snapshot(1, 5, [["0.3900", "1.00"]], [])),
    )
    first, gap, back = ticks_of(read_kalshi_ws([path]))
    assert [type(i) for i in first.items] == [BookStatus, BookSnapshot, TopOfBook]
    assert gap == Tick(NS + 1_000_000, [status(BookState.INVALID, "sequence gap on sid 1: 1 -> 3")])
    assert back.ts_ns == NS + 3_000_000
    assert back.items[0] == status(BookState.VALID, "snapshot")
    assert back.items[2] == top(Level(390_000, 100), None)


def test_a_resubscribed_sid_is_a_new_connection(tmp_path: Path):
    path = jsonl(
        tmp_path / "d.jsonl",
        subscribed(1),
        wrapped(MS, snapshot(1, 1, [["0.4000", "10.00"]], [])),
        wrapped(MS + 1, delta(1, 2, "yes", "0.4000", "1.00")),
        wrapped(MS + 2, subscribed(1)),
        wrapped(MS + 3, snapshot(1, 1, [["0.4100", "10.00"]], [])),
    )
    ticks = ticks_of(read_kalshi_ws([path]))
    assert [t.ts_ns for t in ticks] == [NS, NS + 1_000_000, NS + 2_000_000, NS + 3_000_000]
    lost = "connection lost: sid 1 subscribed again"
    assert ticks[2].items == [status(BookState.INVALID, lost)]
    assert ticks[3].items[0] == status(BookState.VALID, "snapshot")


def test_sub_penny_prices_widen_the_guessed_grid(tmp_path: Path):
    path = jsonl(tmp_path / "d.jsonl", wrapped(MS, snapshot(1, 1, [["0.4550", "1.00"]], [])))
    recording = read_kalshi_ws([path])
    assert recording.markets[0].price_ranges == [PriceRange(0, 1_000_000, 5_000)]
    [tick] = ticks_of(recording)
    assert tick.items[2] == top(Level(455_000, 100), None)


# --- time -----------------------------------------------------------------------------------


def test_bare_lines_take_their_own_time_or_the_previous_one(tmp_path: Path):
    path = jsonl(
        tmp_path / "d.jsonl",
        subscribed(1),
        delta(2, 1, "yes", "0.1000", "1.00", ts_ms=MS),  # another market's sid, sets the time
        snapshot(1, 1, [["0.4000", "10.00"]], []),
        delta(1, 2, "yes", "0.4000", "1.00", ts_ms=MS + 7),
    )
    recording = read_kalshi_ws([path])
    assert [t.ts_ns for t in ticks_of(recording)] == [NS, NS + 7_000_000]


def test_a_book_message_before_any_time_is_an_error(tmp_path: Path):
    path = jsonl(tmp_path / "d.jsonl", subscribed(1), snapshot(1, 1, [["0.4000", "1.00"]], []))
    with pytest.raises(RecordingError, match=f"{path}:2: orderbook_snapshot before any time"):
        read_kalshi_ws([path])


def test_time_never_goes_backwards(tmp_path: Path):
    path = jsonl(
        tmp_path / "d.jsonl",
        wrapped(MS, snapshot(1, 1, [["0.4000", "10.00"]], [])),
        wrapped(MS - 50, delta(1, 2, "yes", "0.4100", "1.00")),
        wrapped(MS + 3, delta(1, 3, "yes", "0.4200", "1.00")),
    )
    reader = KalshiWsReader([path])
    ticks = ticks_of(reader.read())
    assert [t.ts_ns for t in ticks] == [NS, NS + 3_000_000]
    restamped = [BookStatus, BookSnapshot, TopOfBook, BookDelta, TopOfBook]
    assert [type(i) for i in ticks[0].items] == restamped
    assert reader.stats.restamped == 1


def test_two_files_merge_by_time(tmp_path: Path):
    one = jsonl(
        tmp_path / "one.jsonl",
        wrapped(MS, snapshot(1, 1, [["0.4000", "10.00"]], [])),
        wrapped(MS + 2, delta(1, 3, "yes", "0.4100", "1.00")),
    )
    two = jsonl(tmp_path / "two.jsonl", wrapped(MS + 1, delta(1, 2, "yes", "0.4000", "1.00")))
    recording = read_kalshi_ws([one, two])
    assert recording.name == "one+two"
    ticks = ticks_of(recording)
    assert [t.ts_ns for t in ticks] == [NS, NS + 1_000_000, NS + 2_000_000]
    assert [i.seq for t in ticks[1:] for i in t.items if isinstance(i, BookDelta)] == [2, 3]


# --- trades and lifecycle -----------------------------------------------------------------------


def test_trades_are_published_once(tmp_path: Path):
    path = jsonl(tmp_path / "d.jsonl", trade("t1", MS), trade("t1", MS + 1), trade("t2", MS + 2))
    recording = read_kalshi_ws([path])
    ticks = ticks_of(recording)
    assert recording.size == 3
    assert [t.ts_ns for t in ticks] == [NS, NS + 2_000_000]
    assert ticks[0].items == [
        Trade(market=M, event=EVENT, trade_id="t1", taker_side=Side.NO, yes_price=450_000,
              count=1250, exchange_ts_ns=NS),
    ]  # fmt: skip


def test_settlement_once_per_market(tmp_path: Path):
    path = jsonl(
        tmp_path / "d.jsonl",
        trade("t1", MS),
        lifecycle("determined", result="yes"),
        wrapped(MS + 5, lifecycle("settled", result="yes")),
        wrapped(MS + 6, lifecycle("settled", market=N, result="")),
        wrapped(MS + 7, lifecycle("settled", market=N, result="no")),
    )
    recording = read_kalshi_ws([path])
    first, second = ticks_of(recording)
    assert recording.size == 3  # an upper bound: the repeated settlement is counted
    assert [type(i) for i in first.items] == [Trade]
    assert first.settled == [MarketSettled(market=M, result=Side.YES, ts_ns=NS, paper=True)]
    late = NS + 7_000_000
    assert second == Tick(
        late, [], [MarketSettled(market=N, result=Side.NO, ts_ns=late, paper=True)]
    )


def test_lifecycle_metadata_completes_the_catalog(tmp_path: Path):
    extra = {"event_ticker": "KXHIGHNY-25DEC05", "strike_type": "greater", "floor_strike": 36,
             "title": "High above 36"}  # fmt: skip
    ranges = [{"start": "0.0000", "end": "1.0000", "step": "0.0010"}]
    path = jsonl(
        tmp_path / "d.jsonl",
        wrapped(MS, lifecycle("created", N, close_ts=1_765_000_000, additional_metadata=extra)),
        wrapped(MS, lifecycle("price_level_structure_updated", N, price_ranges=ranges)),
        wrapped(MS + 1, trade("t1", MS + 1, market=M)),
    )
    markets = {m.market: m for m in read_kalshi_ws([path]).markets}
    told = markets[N]
    assert (told.strike_type, told.floor_strike, told.cap_strike, told.title) == (
        "greater",
        36.0,
        None,
        "High above 36",
    )
    assert told.close_ts_ns == 1_765_000_000_000_000_000
    assert told.price_ranges == [PriceRange(0, 1_000_000, 1_000)]
    guessed = markets[M]
    assert (guessed.strike_type, guessed.floor_strike, guessed.cap_strike) == (
        "between",
        32.0,
        33.0,
    )


# --- skipped, junk, metadata ----------------------------------------------------------------------


def test_other_messages_are_skipped_and_counted(tmp_path: Path):
    path = jsonl(
        tmp_path / "d.jsonl",
        {"type": "ticker", "sid": 3, "msg": {"market_ticker": M, "ts_ms": MS}},
        {"type": "ok", "id": 2},
        subscribed(9, channel="trade"),
        {"type": "brand_new", "sid": 4, "msg": {}},
        "",
        trade("t1", MS),
    )
    reader = KalshiWsReader([path])
    assert len(ticks_of(reader.read())) == 1
    stats = reader.stats
    assert stats.skipped == {"ticker": 1, "ok": 1, "subscribed": 1, "brand_new": 1}
    assert (stats.lines, stats.used, stats.junk) == (5, 1, 0)


JUNK = [
    "not json at all",
    '{"type": "orderbook_delta", "sid": 1, "seq": 2, "msg": {"market_ticker": 5}}',
    json.dumps(wrapped(MS, delta(1, 2, "yes", "0.4x", "1.00"))),
    json.dumps(trade("t9", MS)).replace('"taker_side": "no"', '"taker_side": "up"'),
]


@pytest.mark.parametrize("junk", JUNK)
def test_junk_stops_a_strict_read_at_its_line(tmp_path: Path, junk: str):
    path = jsonl(tmp_path / "d.jsonl", trade("t1", MS), junk)
    with pytest.raises(RecordingError) as raised:
        read_kalshi_ws([path])
    assert str(raised.value).startswith(f"{path}:2: ")


def test_a_lenient_read_skips_and_counts_junk(tmp_path: Path):
    path = jsonl(
        tmp_path / "d.jsonl",
        wrapped(MS, snapshot(1, 1, [["0.4000", "10.00"]], [])),
        *JUNK,
        wrapped(MS + 1, delta(1, 2, "yes", "0.4000", "1.00")),
    )
    reader = KalshiWsReader([path], strict=False)
    ticks = ticks_of(reader.read())
    assert reader.stats.junk == len(JUNK)
    assert [t.ts_ns for t in ticks] == [NS, NS + 1_000_000]
    assert isinstance(ticks[1].items[0], BookDelta)


def test_with_metadata_other_markets_are_ignored_and_counted(tmp_path: Path):
    metadata = markets_from_tickers([M], fallback_close_ns=1)
    path = jsonl(
        tmp_path / "d.jsonl",
        wrapped(MS, snapshot(1, 1, [["0.4000", "10.00"]], [], market=N)),
        trade("t1", MS + 1, market=N),
        trade("t2", MS + 2, market=M),
        wrapped(MS + 3, lifecycle("settled", market=N, result="no")),
    )
    reader = KalshiWsReader([path], metadata=metadata)
    recording = reader.read()
    assert recording.markets == metadata
    ticks = ticks_of(recording)
    assert [(t.ts_ns, [type(i) for i in t.items], t.settled) for t in ticks] == [
        (NS + 2_000_000, [Trade], []),
    ]
    assert reader.stats.unfollowed == 3


def test_ticks_are_read_lazily_and_files_must_exist(tmp_path: Path):
    recording = read_kalshi_ws([jsonl(tmp_path / "d.jsonl", trade("t1", MS))])
    assert isinstance(recording.ticks, types.GeneratorType)
    with pytest.raises(RecordingError, match="nope\\.jsonl"):
        read_kalshi_ws([tmp_path / "nope.jsonl"])
    with pytest.raises(RecordingError, match="no input files"):
        read_kalshi_ws([])


def test_a_ticker_without_an_event_names_its_line(tmp_path: Path):
    path = jsonl(tmp_path / "d.jsonl", trade("t1", MS), trade("t2", MS, market="NODASH"))
    with pytest.raises(RecordingError, match=f"{path}:2: ticker 'NODASH'"):
        read_kalshi_ws([path])
