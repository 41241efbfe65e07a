"""Top-of-book CSV polls as a :class:`~services.backtest.recording.Recording`.

The files have a header (columns in any order, others ignored):

* ``timestamp``: ISO 8601 (UTC when it has no offset) or epoch s/ms/us/ns;
* ``market_ticker``;
* ``best_yes_bid``, ``best_no_bid``: in cents, whole or exact decimals
  (``45.5`` is 455_000 micro-dollars); empty or 0 means no bid on that side
  (Kalshi's polls say 0 when a side is empty);
* optional ``best_yes_bid_size``, ``best_no_bid_size``: contracts (two decimals
  at most); without them (or empty) every bid is ``depth`` deep.

Each row is a full book of one level per side, put through ingest's own
:class:`~services.ingest.books.BookKeeper` as a snapshot (one sequence per
market, numbered from 1), so the items are what ingest publishes: a market's
first row gives ``BookStatus`` VALID, then every row a ``BookSnapshot`` and a
``TopOfBook``; a locked row (bids summing to exactly $1) makes the book
INVALID until the next clean row, as a crossed snapshot would live. A row
equal to its market's previous one is no news and skipped; the rows of one
instant make one tick. Files are merged by time.

A row that cannot be true stops the read with ``RecordingError("path:line:
why")``: bids summing to more than $1, a price outside (0, 100) cents, a value
that does not parse, time going backwards within a file, a ticker the metadata
does not know, a price off the market's grid. The files are read twice: once
up front to check them and learn the markets and tick count, then lazily as
the replay consumes the ticks.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from services.backtest.inputs import (
    DAY_NS,
    Stamped,
    count_instants,
    group_ticks,
    merge_by_time,
    parse_timestamp,
    recording_name,
)
from services.backtest.recording import Recording, RecordingError, Tick
from services.backtest.tickers import PriceUnits, markets_from_tickers, split_ticker
from services.ingest.books import BookKeeper, MarketRef
from services.ingest.catalog import grid_of
from shared.messages import Level, MarketInfo
from shared.money import COUNT_PER_CONTRACT, ONE_DOLLAR, Count, Micros, parse_count, parse_dollars

REQUIRED: Final = ("timestamp", "market_ticker", "best_yes_bid", "best_no_bid")
OPTIONAL: Final = ("best_yes_bid_size", "best_no_bid_size")
DEFAULT_DEPTH: Final[Count] = 100 * COUNT_PER_CONTRACT


@dataclass(frozen=True, slots=True)
class Row:
    """One poll of one market's top of book."""

    ts_ns: int
    market: str
    yes: Level | None
    no: Level | None
    where: str
    """``path:line``, for errors."""


def read_tob_csv(
    paths: Sequence[Path], *, depth: Count = DEFAULT_DEPTH, metadata: list[MarketInfo] | None = None
) -> Recording:
    """Top-of-book CSV files as one recording; RecordingError if a file cannot be replayed."""
    if depth <= 0:
        raise ValueError(f"depth must be positive, not {depth}")
    paths = list(paths)
    name = recording_name(paths)
    survey = _survey(_news(_merged_rows(paths, depth)), metadata)
    if metadata is None:
        fallback_close_ns = (survey.last_ns or 0) + DAY_NS
        markets = survey.units.fit(
            markets_from_tickers(survey.tickers, fallback_close_ns=fallback_close_ns)
        )
    else:
        markets = sorted(metadata, key=lambda info: info.market)
    return Recording(name, markets, _ticks(paths, depth, markets), size=survey.ticks)


# --- reading rows -------------------------------------------------------------------------


def _merged_rows(paths: list[Path], depth: Count) -> Iterator[Row]:
    return merge_by_time((_file_rows(path, depth) for path in paths), lambda row: row.ts_ns)


def _news(rows: Iterable[Row]) -> Iterator[Row]:
    """The rows that change their market's top of book."""
    last: dict[str, tuple[Level | None, Level | None]] = {}
    for row in rows:
        quote = (row.yes, row.no)
        if row.market in last and last[row.market] == quote:
            continue
        last[row.market] = quote
        yield row


def _file_rows(path: Path, depth: Count) -> Iterator[Row]:
    line = 1
    try:
        with path.open(newline="") as file:
            reader = csv.reader(file)
            columns = _columns(next(reader, None), path)
            last_ns: int | None = None
            for record in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in record):
                    continue
                row = _row(record, columns, depth, f"{path}:{line}")
                if last_ns is not None and row.ts_ns < last_ns:
                    raise RecordingError(f"{row.where}: time goes backwards")
                last_ns = row.ts_ns
                yield row
    except OSError as exc:
        raise RecordingError(f"{path}: {exc.strerror or exc}") from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise RecordingError(f"{path}:{line}: {exc}") from exc


def _columns(header: list[str] | None, path: Path) -> dict[str, int]:
    if header is None:
        raise RecordingError(f"{path}:1: empty file, no header")
    names = [name.strip().lower() for name in header]
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise RecordingError(f"{path}:1: missing column(s) {', '.join(missing)}")
    return {name: names.index(name) for name in REQUIRED + OPTIONAL if name in names}


def _row(record: list[str], columns: dict[str, int], depth: Count, where: str) -> Row:
    if len(record) <= max(columns.values()):
        raise RecordingError(f"{where}: {len(record)} cells, too few for the header")

    def cell(name: str) -> str:
        index = columns.get(name)
        return "" if index is None else record[index].strip()

    try:
        ts_ns = parse_timestamp(cell("timestamp"))
        yes = _level(cell("best_yes_bid"), cell("best_yes_bid_size"), depth)
        no = _level(cell("best_no_bid"), cell("best_no_bid_size"), depth)
    except ValueError as exc:
        raise RecordingError(f"{where}: {exc}") from None
    market = cell("market_ticker")
    if not market:
        raise RecordingError(f"{where}: no market_ticker")
    if yes is not None and no is not None and yes.price + no.price > ONE_DOLLAR:
        raise RecordingError(f"{where}: crossed: yes bid + no bid is more than 100 cents")
    return Row(ts_ns, market, yes, no, where)


def _level(price_text: str, size_text: str, depth: Count) -> Level | None:
    price = micros_of_cents(price_text) if price_text else 0
    if price == 0:
        return None
    if not 0 < price < ONE_DOLLAR:
        raise ValueError(f"bid {price_text} cents is not in (0, 100)")
    size = parse_count(size_text) if size_text else depth
    if size <= 0:
        raise ValueError(f"size {size_text} is not positive")
    return Level(price, size)


def micros_of_cents(text: str) -> Micros:
    """``"45.5"`` cents -> 455_000 micro-dollars, exactly (ValueError past four decimals)."""
    # The text read as dollars is exact to six decimals and 100 times the amount.
    hundredfold, rest = divmod(parse_dollars(text), 100)
    if rest:
        raise ValueError(f"price {text!r} cents is finer than a micro-dollar")
    return hundredfold


# --- first pass: the markets and the tick count -------------------------------------------


@dataclass(slots=True)
class _Survey:
    tickers: set[str] = field(default_factory=set)
    units: PriceUnits = field(default_factory=PriceUnits)
    last_ns: int | None = None
    ticks: int = 0


def _survey(rows: Iterable[Row], metadata: list[MarketInfo] | None) -> _Survey:
    survey = _Survey()
    known = None if metadata is None else {info.market: info for info in metadata}

    def times() -> Iterator[int]:
        for row in rows:
            if known is not None:
                _check_known(row, known)
            elif row.market not in survey.tickers:
                _check_ticker(row)
            survey.tickers.add(row.market)
            for level in (row.yes, row.no):
                if level is not None:
                    survey.units.note(row.market, level.price)
            survey.last_ns = row.ts_ns
            yield row.ts_ns

    survey.ticks = count_instants(times())
    return survey


def _check_ticker(row: Row) -> None:
    try:
        split_ticker(row.market)
    except RecordingError as exc:
        raise RecordingError(f"{row.where}: {exc}") from None


def _check_known(row: Row, known: dict[str, MarketInfo]) -> None:
    info = known.get(row.market)
    if info is None:
        raise RecordingError(f"{row.where}: market {row.market} is not in the metadata")
    grid = grid_of(info)
    for level in (row.yes, row.no):
        if level is not None and not grid.on_grid(level.price):
            raise RecordingError(f"{row.where}: price {level.price} is off {row.market}'s grid")


# --- second pass: the ticks ---------------------------------------------------------------


def _ticks(paths: list[Path], depth: Count, markets: list[MarketInfo]) -> Iterator[Tick]:
    books = _TopBooks(markets)
    yield from group_ticks(books.apply(row) for row in _news(_merged_rows(paths, depth)))


class _TopBooks:
    """Each row as a snapshot through ingest's book keeper: one subscription per market."""

    def __init__(self, markets: list[MarketInfo]) -> None:
        self.keeper = BookKeeper()
        self.sids: dict[str, int] = {}
        self.seqs: dict[str, int] = {}
        for sid, info in enumerate(markets, start=1):
            self.keeper.track(MarketRef(info.market, info.event, grid_of(info)))
            self.sids[info.market] = sid

    def apply(self, row: Row) -> Stamped:
        seq = self.seqs[row.market] = self.seqs.get(row.market, 0) + 1
        yes = [] if row.yes is None else [row.yes]
        no = [] if row.no is None else [row.no]
        items = self.keeper.on_snapshot(self.sids[row.market], seq, row.market, yes, no)
        return row.ts_ns, items, []
