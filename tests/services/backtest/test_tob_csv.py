"""Top-of-book CSV polls: exact prices, what each row publishes, merging, every error."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from services.backtest.inputs import DAY_NS, parse_timestamp
from services.backtest.recording import Recording, RecordingError, Tick
from services.backtest.tickers import markets_from_tickers
from services.backtest.tob_csv import micros_of_cents, read_tob_csv
from shared.messages import BookSnapshot, BookState, BookStatus, Level, PriceRange, TopOfBook

HEADER = "timestamp,market_ticker,best_yes_bid,best_no_bid"
A, B = "KXHIGHNY-25DEC05-B32.5", "KXHIGHNY-25DEC05-T37"
T0 = 1_764_851_236_000_000_000
"""2025-12-04T12:27:16Z in ns."""


def csv_file(path: Path, *rows: str, header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def ticks_of(recording: Recording) -> list[Tick]:
    ticks = recording.ticks
    assert isinstance(ticks, types.GeneratorType)  # read lazily, and not async
    return list(ticks)


def book(market: str, yes: Level | None, no: Level | None, seq: int) -> list[object]:
    """What one row publishes after the first: the snapshot and the top of book."""
    event = "KXHIGHNY-25DEC05"
    return [
        BookSnapshot(
            market=market,
            event=event,
            yes_bids=[yes] if yes else [],
            no_bids=[no] if no else [],
            seq=seq,
        ),
        TopOfBook(market=market, event=event, yes_bid=yes, no_bid=no),
    ]


def valid(market: str) -> BookStatus:
    return BookStatus(
        market=market, event="KXHIGHNY-25DEC05", state=BookState.VALID, reason="snapshot"
    )


# --- timestamps -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-12-04T12:27:16", T0),
        ("2025-12-04 12:27:16Z", T0),
        ("2025-12-04T13:27:16+01:00", T0),
        ("2025-12-04T12:27:16.079996", T0 + 79_996_000),
        ("2025-12-04T12:27:16.123456789Z", T0 + 123_456_789),
        ("1764851236", T0),
        ("1764851236.5", T0 + 500_000_000),
        ("1764851236079", T0 + 79_000_000),
        ("1764851236079996", T0 + 79_996_000),
        ("1764851236079996123", T0 + 79_996_123),
    ],
)
def test_timestamps(text: str, expected: int):
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2025-13-01", "12.5.2025", "-5"])
def test_bad_timestamps(text: str):
    with pytest.raises(ValueError):
        parse_timestamp(text)


# --- prices ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cents", "micros"), [("45", 450_000), ("45.5", 455_000), ("0.0001", 1), ("99.99", 999_900)]
)
def test_cents_are_exact_micros(cents: str, micros: int):
    assert micros_of_cents(cents) == micros


def test_cents_finer_than_a_micro_dollar_are_refused():
    with pytest.raises(ValueError, match="finer than a micro-dollar"):
        micros_of_cents("45.00001")


# --- what rows become -------------------------------------------------------------------------


def test_rows_of_one_instant_make_one_tick_of_status_snapshot_and_top(tmp_path: Path):
    path = csv_file(
        tmp_path / "day.csv",
        f"2025-12-04T12:27:16,{A},45,54",
        f"2025-12-04T12:27:16,{B},1,96",
        f"2025-12-04T12:27:17,{A},46,53",
    )
    recording = read_tob_csv([path])
    assert recording.name == "day"
    assert [m.market for m in recording.markets] == [A, B]
    assert recording.size == 2
    first, second = ticks_of(recording)
    depth = 10_000
    assert first.ts_ns == T0
    assert first.items == [
        valid(A),
        *book(A, Level(450_000, depth), Level(540_000, depth), 1),
        valid(B),
        *book(B, Level(10_000, depth), Level(960_000, depth), 1),
    ]
    assert first.settled == []
    assert second.ts_ns == T0 + 1_000_000_000
    assert second.items == book(A, Level(460_000, depth), Level(530_000, depth), 2)


def test_ticks_are_read_lazily(tmp_path: Path):
    recording = read_tob_csv([csv_file(tmp_path / "d.csv", f"1764851236,{A},45,54")])
    assert isinstance(recording.ticks, types.GeneratorType)


def test_half_cents_are_exact_and_the_guessed_grid_follows(tmp_path: Path):
    path = csv_file(tmp_path / "d.csv", f"1764851236,{A},45.5,54")
    recording = read_tob_csv([path])
    [market] = recording.markets
    assert market.price_ranges == [PriceRange(0, 1_000_000, 5_000)]
    [tick] = ticks_of(recording)
    assert tick.items == [valid(A), *book(A, Level(455_000, 10_000), Level(540_000, 10_000), 1)]


def test_size_columns_and_depth(tmp_path: Path):
    path = csv_file(
        tmp_path / "d.csv",
        f"{A},45,2.5,1764851236,54,7,extra",
        f"{A},45,,1764851237,54,7,extra",
        header="market_ticker,best_yes_bid,best_yes_bid_size,timestamp,best_no_bid,"
        "best_no_bid_size,note",
    )
    first, second = ticks_of(read_tob_csv([path], depth=300))
    assert first.items[1:] == book(A, Level(450_000, 250), Level(540_000, 700), 1)
    assert second.items == book(A, Level(450_000, 300), Level(540_000, 700), 2)


def test_an_empty_or_zero_bid_is_no_bid(tmp_path: Path):
    path = csv_file(tmp_path / "d.csv", f"1764851236,{A},,54", f"1764851237,{A},0,55")
    first, second = ticks_of(read_tob_csv([path]))
    assert first.items[1:] == book(A, None, Level(540_000, 10_000), 1)
    assert second.items == book(A, None, Level(550_000, 10_000), 2)


def test_a_row_equal_to_the_previous_is_skipped(tmp_path: Path):
    path = csv_file(
        tmp_path / "d.csv",
        f"1764851236,{A},45,54",
        f"1764851237,{B},1,96",
        f"1764851238,{A},45,54",
        f"1764851239,{A},45,53",
    )
    recording = read_tob_csv([path])
    ticks = ticks_of(recording)
    assert recording.size == len(ticks) == 3
    assert [tick.ts_ns for tick in ticks] == [T0, T0 + 1_000_000_000, T0 + 3_000_000_000]
    assert ticks[2].items == book(A, Level(450_000, 10_000), Level(530_000, 10_000), 2)


def test_a_locked_row_invalidates_the_book_until_a_clean_one(tmp_path: Path):
    path = csv_file(
        tmp_path / "d.csv",
        f"1764851236,{A},45,54",
        f"1764851237,{A},46,54",
        f"1764851238,{A},45,54",
    )
    first, locked, clean = ticks_of(read_tob_csv([path]))
    assert first.items[0] == valid(A)
    [status] = locked.items
    assert isinstance(status, BookStatus)
    assert (status.market, status.state) == (A, BookState.INVALID)
    assert "crossed" in status.reason
    assert clean.items == [valid(A), *book(A, Level(450_000, 10_000), Level(540_000, 10_000), 3)]


def test_two_files_merge_by_time_the_first_file_first_at_equal_times(tmp_path: Path):
    one = csv_file(tmp_path / "one.csv", f"1764851236,{A},45,54", f"1764851238,{A},47,50")
    two = csv_file(tmp_path / "two.csv", f"1764851236,{B},1,96", f"1764851237,{B},2,96")
    recording = read_tob_csv([two, one])
    assert recording.name == "two+one"
    ticks = ticks_of(recording)
    assert [tick.ts_ns for tick in ticks] == [T0, T0 + 1_000_000_000, T0 + 2_000_000_000]
    assert [(type(i).__name__, i.market) for i in ticks[0].items] == [
        ("BookStatus", B),
        ("BookSnapshot", B),
        ("TopOfBook", B),
        ("BookStatus", A),
        ("BookSnapshot", A),
        ("TopOfBook", A),
    ]
    assert [i.market for i in ticks[1].items] == [B, B]
    assert [i.market for i in ticks[2].items] == [A, A]


def test_markets_from_metadata(tmp_path: Path):
    metadata = markets_from_tickers([B, A, "OTHER-1-T1"], fallback_close_ns=5)
    recording = read_tob_csv(
        [csv_file(tmp_path / "d.csv", f"1764851236,{A},45,54")], metadata=metadata
    )
    assert recording.markets == metadata
    assert len(ticks_of(recording)) == 1


def test_without_a_date_code_markets_close_a_day_after_the_last_row(tmp_path: Path):
    path = csv_file(tmp_path / "d.csv", "1764851236,S-X-T1,45,54", "1764851300,S-X-T1,46,54")
    [market] = read_tob_csv([path]).markets
    assert market.close_ts_ns == T0 + 64_000_000_000 + DAY_NS


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "line", "why"),
    [
        ([f"1764851236,{A},55,46"], 2, "crossed"),
        ([f"1764851236,{A},100,"], 2, r"not in \(0, 100\)"),
        ([f"1764851236,{A},-1,"], 2, r"not in \(0, 100\)"),
        ([f"1764851236,{A},4x,50"], 2, "not a decimal number"),
        ([f"1764851236,{A},45.123456,50"], 2, "finer than a micro-dollar"),
        ([f"1764851236,{A},45.1234567,50"], 2, "more than 6 decimals"),
        ([f"whenever,{A},45,50"], 2, "neither ISO 8601 nor epoch"),
        ([f"1764851236,{A},45,50", f"1764851235,{A},46,50"], 3, "time goes backwards"),
        ([f"1764851236,{A},45"], 2, "too few"),
        (["1764851236,,45,50"], 2, "no market_ticker"),
        (["1764851236,NODASH,45,50"], 2, "NODASH"),
        (["", f"1764851236,{A},45,50", f"1764851237,{A},45,50,x", "bad,row,,"], 5, "neither"),
    ],
)
def test_bad_rows_name_their_line(tmp_path: Path, rows: list[str], line: int, why: str):
    path = csv_file(tmp_path / "d.csv", *rows)
    with pytest.raises(RecordingError, match=why) as raised:
        read_tob_csv([path])
    assert str(raised.value).startswith(f"{path}:{line}: ")


def test_bad_sizes(tmp_path: Path):
    header = HEADER + ",best_yes_bid_size"
    for size, why in [("0", "not positive"), ("1.005", "decimals")]:
        path = csv_file(tmp_path / "d.csv", f"1764851236,{A},45,50,{size}", header=header)
        with pytest.raises(RecordingError, match=why) as raised:
            read_tob_csv([path])
        assert str(raised.value).startswith(f"{path}:2: ")


def test_missing_columns_and_empty_files(tmp_path: Path):
    path = csv_file(tmp_path / "d.csv", f"1764851236,{A},45", header="timestamp,market_ticker,x")
    with pytest.raises(
        RecordingError, match=f"{path}:1: missing column.*best_yes_bid, best_no_bid"
    ):
        read_tob_csv([path])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(RecordingError, match=f"{empty}:1: empty file"):
        read_tob_csv([empty])


def test_missing_file_and_no_files(tmp_path: Path):
    with pytest.raises(RecordingError, match=r"nope\.csv"):
        read_tob_csv([tmp_path / "nope.csv"])
    with pytest.raises(RecordingError, match="no input files"):
        read_tob_csv([])


def test_metadata_errors_name_the_line(tmp_path: Path):
    metadata = markets_from_tickers([A], fallback_close_ns=5)
    path = csv_file(tmp_path / "d.csv", f"1764851236,{A},45,54", f"1764851237,{B},1,96")
    with pytest.raises(RecordingError, match=f"{path}:3: market {B} is not in the metadata"):
        read_tob_csv([path], metadata=metadata)
    path = csv_file(tmp_path / "d.csv", f"1764851236,{A},45.5,54")
    with pytest.raises(RecordingError, match=f"{path}:2: price 455000 is off"):
        read_tob_csv([path], metadata=metadata)
