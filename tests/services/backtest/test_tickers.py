"""Market structure from tickers, and metadata files in Kalshi's REST shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.backtest.recording import RecordingError
from services.backtest.tickers import (
    PriceUnits,
    close_from_event,
    load_metadata,
    markets_from_tickers,
)
from shared.arbitrage import covers_every_outcome
from shared.book import PriceGrid
from shared.messages import MarketInfo, PriceRange

FALLBACK = 123_456_789
EVENTS_DIR = Path("/work/shared/data/kalshi-events")


def ns(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()) * 1_000_000_000


def shapes(markets: list[MarketInfo]) -> list[tuple[str, str, float | None, float | None, bool]]:
    return [
        (m.market, m.strike_type, m.floor_strike, m.cap_strike, m.mutually_exclusive)
        for m in markets
    ]


def test_a_weather_bracket_day_has_two_tails_and_is_mutually_exclusive():
    day = "KXHIGHNY-25DEC05"
    suffixes = ["T37", "B30.5", "B34.5", "T30", "B36.5", "B32.5"]
    markets = markets_from_tickers([f"{day}-{s}" for s in suffixes], fallback_close_ns=FALLBACK)
    assert shapes(markets) == [
        (f"{day}-B30.5", "between", 30.0, 31.0, True),
        (f"{day}-B32.5", "between", 32.0, 33.0, True),
        (f"{day}-B34.5", "between", 34.0, 35.0, True),
        (f"{day}-B36.5", "between", 36.0, 37.0, True),
        (f"{day}-T30", "less", None, 30.0, True),
        (f"{day}-T37", "greater", 37.0, None, True),
    ]
    assert covers_every_outcome(markets)
    first = markets[0]
    assert (first.event, first.series, first.status) == (day, "KXHIGHNY", "active")
    assert first.close_ts_ns == ns(2025, 12, 6)
    assert first.price_ranges == list(PriceGrid.cents().ranges)
    assert (first.fee_type, first.fee_multiplier) == ("quadratic", "1")


def test_one_tail_is_placed_by_the_brackets():
    markets = markets_from_tickers(["E-25DEC05-T30", "E-25DEC05-B30.5"], fallback_close_ns=0)
    assert shapes(markets) == [
        ("E-25DEC05-B30.5", "between", 30.0, 31.0, True),
        ("E-25DEC05-T30", "less", None, 30.0, True),
    ]


def test_a_tail_inside_the_brackets_is_unknown_and_the_event_not_exclusive():
    tickers = ["E-25DEC05-B30.5", "E-25DEC05-B34.5", "E-25DEC05-T32"]
    assert shapes(markets_from_tickers(tickers, fallback_close_ns=0)) == [
        ("E-25DEC05-B30.5", "between", 30.0, 31.0, False),
        ("E-25DEC05-B34.5", "between", 34.0, 35.0, False),
        ("E-25DEC05-T32", "", None, None, False),
    ]


def test_a_threshold_ladder_is_greater_and_not_exclusive():
    tickers = ["KXHIGHNYABV-25DEC05-T42", "KXHIGHNYABV-25DEC05-T40"]
    assert shapes(markets_from_tickers(tickers, fallback_close_ns=0)) == [
        ("KXHIGHNYABV-25DEC05-T40", "greater", 40.0, None, False),
        ("KXHIGHNYABV-25DEC05-T42", "greater", 42.0, None, False),
    ]


def test_fed_like_tickers():
    tickers = [
        "FED-23DEC-T3.00",
        "FED-23DEC-T3.25",
        "KXFEDDECISION-25DEC-H0",
        "KXFEDDECISION-25DEC-C25",
    ]
    markets = markets_from_tickers(tickers, fallback_close_ns=FALLBACK)
    assert shapes(markets) == [
        ("FED-23DEC-T3.00", "greater", 3.0, None, False),
        ("FED-23DEC-T3.25", "greater", 3.25, None, False),
        ("KXFEDDECISION-25DEC-C25", "", None, None, False),
        ("KXFEDDECISION-25DEC-H0", "", None, None, False),
    ]
    assert [m.close_ts_ns for m in markets] == [ns(2024, 1, 1)] * 2 + [ns(2026, 1, 1)] * 2
    assert [m.series for m in markets] == ["FED", "FED", "KXFEDDECISION", "KXFEDDECISION"]


def test_a_whole_bracket_is_one_value_and_an_odd_suffix_breaks_exclusivity():
    markets = markets_from_tickers(["X-26JAN-B32", "X-26JAN-OTHER"], fallback_close_ns=0)
    assert shapes(markets) == [
        ("X-26JAN-B32", "between", 32.0, 32.0, False),
        ("X-26JAN-OTHER", "", None, None, False),
    ]


@pytest.mark.parametrize(
    ("event", "close"),
    [
        ("S-25DEC05", ns(2025, 12, 6)),
        ("S-25DEC31", ns(2026, 1, 1)),
        ("S-24FEB28", ns(2024, 2, 29)),
        ("S-24FEB29", ns(2024, 3, 1)),
        ("S-26JAN", ns(2026, 2, 1)),
        ("S-25DEC", ns(2026, 1, 1)),
        ("S-25FEB30", None),
        ("S-25XYZ05", None),
        ("S-25DEC0517", None),
        ("S-35", None),
        ("S", None),
    ],
)
def test_close_from_the_date_code(event: str, close: int | None):
    assert close_from_event(event) == close


def test_no_date_code_takes_the_fallback_close():
    [market] = markets_from_tickers(["KXROBOTMARS-35-YES"], fallback_close_ns=FALLBACK)
    assert market.close_ts_ns == FALLBACK


def test_the_result_is_sorted_and_the_same_for_any_order():
    tickers = ["B-25DEC05-T3", "A-25DEC05-B1.5", "A-25DEC05-T1", "B-25DEC05-T1"]
    forward = markets_from_tickers(tickers, fallback_close_ns=0)
    backward = markets_from_tickers(reversed(tickers + tickers), fallback_close_ns=0)
    assert forward == backward
    assert [m.market for m in forward] == sorted(tickers)


@pytest.mark.parametrize("ticker", ["NODASH", "ABC-", "-ABC"])
def test_a_ticker_without_an_event_is_an_error(ticker: str):
    with pytest.raises(RecordingError, match=repr(ticker)):
        markets_from_tickers(["OK-25DEC05-T3", ticker], fallback_close_ns=0)


def test_price_units_widen_a_guessed_grid_only_when_prices_need_it():
    units = PriceUnits()
    units.note("A-1-T1", 455_000)
    units.note("A-1-T1", 460_000)
    units.note("A-1-T2", 450_000)
    markets = markets_from_tickers(["A-1-T1", "A-1-T2", "A-1-T3"], fallback_close_ns=0)
    fitted = units.fit(markets)
    assert fitted[0].price_ranges == [PriceRange(0, 1_000_000, 5_000)]
    assert fitted[1:] == markets[1:]


# --- metadata files -----------------------------------------------------------------------


def rest_market(ticker: str, event: str, **fields: object) -> dict[str, object]:
    return {"ticker": ticker, "event_ticker": event, "status": "active", **fields}


def write_json(path: Path, body: object) -> Path:
    path.write_text(json.dumps(body))
    return path


def test_events_with_nested_markets(tmp_path: Path):
    event = "KXHIGHNY-25DEC05"
    market = rest_market(
        f"{event}-B32.5",
        event,
        strike_type="between",
        floor_strike=32,
        cap_strike=33,
        close_time="2025-12-06T04:59:00Z",
        price_ranges=[{"start": "0.0000", "end": "1.0000", "step": "0.0010"}],
        title="32-33",
    )
    body = {
        "timestamp": "x",
        "events": [
            {"event_ticker": event, "series_ticker": "KXHIGHNY", "mutually_exclusive": True,
             "markets": [market]},
            {"event_ticker": "EMPTY-1", "series_ticker": "EMPTY"},
        ],
    }  # fmt: skip
    [info] = load_metadata(write_json(tmp_path / "events.json", body))
    assert info == MarketInfo(
        market=f"{event}-B32.5",
        event=event,
        series="KXHIGHNY",
        status="active",
        close_ts_ns=ns(2025, 12, 6, 4, 59),
        price_ranges=[PriceRange(0, 1_000_000, 1_000)],
        mutually_exclusive=True,
        strike_type="between",
        floor_strike=32.0,
        cap_strike=33.0,
        fee_type="quadratic",
        fee_multiplier="1",
        title="32-33",
    )


def test_bare_markets_take_the_series_from_the_event_ticker(tmp_path: Path):
    body = {"markets": [rest_market("S-1-T2", "S-1"), rest_market("R-1-T1", "R-1")]}
    infos = load_metadata(write_json(tmp_path / "markets.json", body))
    assert [(i.market, i.event, i.series, i.mutually_exclusive) for i in infos] == [
        ("R-1-T1", "R-1", "R", False),
        ("S-1-T2", "S-1", "S", False),
    ]
    assert infos[0].price_ranges == list(PriceGrid.cents().ranges)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "not Kalshi events or markets JSON"),
        ('{"markets": [{"ticker": "A-1-T1"}]}', "not Kalshi events or markets JSON"),
        ('{"other": []}', 'neither "events" nor "markets"'),
        ('{"events": [{"event_ticker": "E-1", "series_ticker": "E"}]}', "no markets in it"),
    ],
)
def test_bad_metadata_files(tmp_path: Path, content: str, why: str):
    path = tmp_path / "meta.json"
    path.write_text(content)
    with pytest.raises(RecordingError, match=why) as raised:
        load_metadata(path)
    assert str(raised.value).startswith(f"{path}: ")


def test_a_missing_metadata_file(tmp_path: Path):
    with pytest.raises(RecordingError, match=r"missing\.json"):
        load_metadata(tmp_path / "missing.json")


REAL_EVENTS = sorted(EVENTS_DIR.glob("*.json")) if EVENTS_DIR.is_dir() else []


@pytest.mark.skipif(not REAL_EVENTS, reason="no real GET /events dump on this machine")
def test_real_events_dumps_decode_but_carry_no_markets(tmp_path: Path):
    for path in REAL_EVENTS:
        with pytest.raises(RecordingError, match="no markets in it"):
            load_metadata(path)
    body = json.loads(REAL_EVENTS[0].read_text())
    exclusive = next(e for e in body["events"] if e["mutually_exclusive"])
    exclusive["markets"] = [
        rest_market(f"{exclusive['event_ticker']}-X", exclusive["event_ticker"])
    ]
    [info] = load_metadata(write_json(tmp_path / "nested.json", body))
    assert (info.event, info.series, info.mutually_exclusive) == (
        exclusive["event_ticker"],
        exclusive["series_ticker"],
        True,
    )
