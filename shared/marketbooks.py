"""Order books rebuilt from the market-data stream, trusted only while ingest vouches for them.

Every consumer of ``md`` (strategy, risk, the paper venue, replay) keeps its
own copy of the books by applying the same messages in the same order. A book
is trusted from a ``BookSnapshot`` until ingest says otherwise (a
``BookStatus`` INVALID or STALE) or a delta does not fit (a crossed book, a
price off the grid): then it is dropped until the next snapshot, never
guessed at. Deltas for a market without a trusted book are ignored, which is
why ingest republishes full snapshots for late consumers.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.book import BookError, OrderBook, PriceGrid
from shared.messages import (
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    MarketData,
    MarketInfo,
)


@dataclass(slots=True)
class _Entry:
    event: str
    book: OrderBook
    seq: int = 0
    trusted: bool = False
    state: BookState = BookState.INVALID
    reason: str = "no snapshot yet"


class MarketBooks:
    """The books of many markets, fed by ``MarketData`` items in stream order."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._grids: dict[str, PriceGrid] = {}
        self.rejected = 0
        """Deltas or snapshots that did not fit and made a book untrusted."""

    def set_market(self, info: MarketInfo) -> None:
        """Learn a market's price grid (sub-penny markets); cents are assumed until then."""
        try:
            grid = PriceGrid.from_ranges(info.price_ranges)
        except ValueError:
            grid = PriceGrid.cents()
        if self._grids.get(info.market) != grid:
            self._grids[info.market] = grid
            entry = self._entries.get(info.market)
            if entry is not None:
                self._distrust(entry, "price grid changed")

    def apply(self, item: MarketData) -> str | None:
        """Apply one item; returns the market whose trusted book changed or was dropped."""
        if isinstance(item, BookSnapshot):
            return self._snapshot(item)
        if isinstance(item, BookDelta):
            return self._delta(item)
        if isinstance(item, BookStatus):
            return self._status(item)
        return None

    def book(self, market: str) -> OrderBook | None:
        """The market's book if it can be trusted now, else None."""
        entry = self._entries.get(market)
        return entry.book if entry is not None and entry.trusted else None

    def seq(self, market: str) -> int:
        entry = self._entries.get(market)
        return 0 if entry is None else entry.seq

    def state(self, market: str) -> BookState | None:
        """VALID only while trusted; None for a market never seen."""
        entry = self._entries.get(market)
        if entry is None:
            return None
        return BookState.VALID if entry.trusted else entry.state

    def reason(self, market: str) -> str:
        entry = self._entries.get(market)
        return "never seen" if entry is None else entry.reason

    def event_of(self, market: str) -> str | None:
        entry = self._entries.get(market)
        return None if entry is None else entry.event

    def markets(self) -> list[str]:
        return list(self._entries)

    def trusted(self) -> dict[str, OrderBook]:
        return {market: e.book for market, e in self._entries.items() if e.trusted}

    def forget(self, market: str) -> None:
        self._entries.pop(market, None)

    # --- internals ----------------------------------------------------------------------

    def _entry(self, market: str, event: str) -> _Entry:
        entry = self._entries.get(market)
        grid = self._grids.get(market) or PriceGrid.cents()
        if entry is None or entry.book.grid != grid:
            entry = _Entry(event, OrderBook(market, grid))
            self._entries[market] = entry
        return entry

    def _snapshot(self, item: BookSnapshot) -> str:
        entry = self._entry(item.market, item.event)
        entry.seq = item.seq
        try:
            entry.book.apply_snapshot(item.yes_bids, item.no_bids)
            if entry.book.crossed():
                raise BookError("snapshot is crossed")
        except BookError as exc:
            self._distrust(entry, f"bad snapshot: {exc}")
            return item.market
        entry.trusted, entry.state, entry.reason = True, BookState.VALID, "snapshot"
        return item.market

    def _delta(self, item: BookDelta) -> str | None:
        entry = self._entries.get(item.market)
        if entry is None or not entry.trusted:
            return None
        if item.prev_seq >= 0 and item.seq <= entry.seq:
            return None  # an entry published twice (at-least-once): applied already
        if item.prev_seq >= 0 and item.prev_seq != entry.seq:
            self._distrust(
                entry,
                f"market data lost on the bus: book at seq {entry.seq},"
                f" delta follows seq {item.prev_seq}",
            )
            return item.market
        entry.seq = item.seq
        try:
            entry.book.apply_delta(item.side, item.price, item.delta)
            if entry.book.crossed():
                raise BookError("book crossed")
        except BookError as exc:
            self._distrust(entry, str(exc))
        return item.market

    def _status(self, item: BookStatus) -> str | None:
        if item.state is BookState.VALID:
            return None  # a snapshot follows; trust comes with it
        entry = self._entry(item.market, item.event)
        was_trusted = entry.trusted
        entry.trusted, entry.state, entry.reason = False, item.state, item.reason
        return item.market if was_trusted else None

    def _distrust(self, entry: _Entry, reason: str) -> None:
        self.rejected += 1
        entry.trusted, entry.state, entry.reason = False, BookState.INVALID, reason
        entry.book.yes.clear()
        entry.book.no.clear()
