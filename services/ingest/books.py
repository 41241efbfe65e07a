"""Trusted books from Kalshi's orderbook channel: sequence checks, validation, status.

Pure logic, no I/O: fed with normalized snapshot and delta messages, it keeps one
book per market and returns the bus messages to publish. A market's book is
VALID only between a snapshot that applied cleanly and the first sign of
trouble: a sequence gap or duplicate on its subscription (which condemns every
market of that subscription, since ``seq`` counts across them), a delta that
cannot apply, or a book that would cross. Nothing is published from a book in
any other state, and the markets waiting for a fresh snapshot are listed for
the caller to ask for.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.book import BookError, OrderBook, PriceGrid
from shared.messages import (
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    Level,
    MarketData,
    Side,
    TopOfBook,
)
from shared.money import Count, Micros


@dataclass(frozen=True, slots=True)
class MarketRef:
    """What ingest must know of a market to keep its book."""

    market: str
    event: str
    grid: PriceGrid


@dataclass(slots=True)
class Tracked:
    ref: MarketRef
    book: OrderBook
    sid: int | None = None
    valid: bool = False
    invalid_since: float = field(default_factory=time.monotonic)
    published_seq: int = -1
    """Seq of the last snapshot or delta of this market handed to the bus."""


class BookKeeper:
    """All books of one ingest process, and whether each can be trusted."""

    def __init__(self, *, check_sequence: bool = True) -> None:
        """``check_sequence=False`` trusts the order given (a replay of what was recorded
        after ingest had checked it); sequence numbers are then only carried along."""
        self.check_sequence = check_sequence
        self._markets: dict[str, Tracked] = {}
        self._last_seq: dict[int, int] = {}
        self.gaps = 0
        self.rejected = 0

    # --- which markets ------------------------------------------------------------------

    def track(self, ref: MarketRef) -> None:
        if ref.market not in self._markets:
            self._markets[ref.market] = Tracked(ref, OrderBook(ref.market, ref.grid))

    def forget(self, market: str) -> None:
        self._markets.pop(market, None)

    def markets(self) -> list[str]:
        return list(self._markets)

    def is_valid(self, market: str) -> bool:
        tracked = self._markets.get(market)
        return tracked is not None and tracked.valid

    def book(self, market: str) -> OrderBook | None:
        """The book of a market, only while it can be trusted."""
        tracked = self._markets.get(market)
        return tracked.book if tracked is not None and tracked.valid else None

    def awaiting_snapshot(self) -> dict[int | None, list[str]]:
        """Invalid markets by subscription (None: not subscribed yet)."""
        waiting: dict[int | None, list[str]] = {}
        for market, tracked in self._markets.items():
            if not tracked.valid:
                waiting.setdefault(tracked.sid, []).append(market)
        return waiting

    def invalid_for(self, market: str) -> float:
        """Seconds a market has waited for a trustworthy snapshot (0 if valid)."""
        tracked = self._markets.get(market)
        if tracked is None or tracked.valid:
            return 0.0
        return time.monotonic() - tracked.invalid_since

    # --- the orderbook channel ----------------------------------------------------------

    def on_snapshot(
        self,
        sid: int,
        seq: int,
        market: str,
        yes: Iterable[Level],
        no: Iterable[Level],
        exchange_ts_ns: int = 0,
    ) -> list[MarketData]:
        out = self._check_sequence(sid, seq)
        tracked = self._markets.get(market)
        if tracked is None:
            return out
        tracked.sid = sid
        yes_levels, no_levels = list(yes), list(no)
        try:
            tracked.book.apply_snapshot(yes_levels, no_levels)
            if tracked.book.crossed():
                raise BookError("snapshot is crossed")
        except BookError as exc:
            return out + self._invalidate(tracked, f"bad snapshot: {exc}")
        if not tracked.valid:
            tracked.valid = True
            out.append(self._status(tracked, BookState.VALID, "snapshot"))
        tracked.published_seq = seq
        out.append(
            BookSnapshot(
                market=market,
                event=tracked.ref.event,
                yes_bids=tracked.book.yes.levels(),
                no_bids=tracked.book.no.levels(),
                seq=seq,
                exchange_ts_ns=exchange_ts_ns,
            )
        )
        out.append(self._top(tracked))
        return out

    def on_delta(
        self,
        sid: int,
        seq: int,
        market: str,
        side: Side,
        price: Micros,
        delta: Count,
        exchange_ts_ns: int = 0,
    ) -> list[MarketData]:
        out = self._check_sequence(sid, seq)
        tracked = self._markets.get(market)
        if tracked is None or not tracked.valid:
            return out
        bids = tracked.book.bids(side)
        best_before = bids.best
        count_before = bids.counts[best_before] if best_before >= 0 else 0
        try:
            tracked.book.apply_delta(side, price, delta)
            if tracked.book.crossed():
                raise BookError("book crossed")
        except BookError as exc:
            self.rejected += 1
            return out + self._invalidate(tracked, str(exc))
        out.append(
            BookDelta(
                market=market,
                event=tracked.ref.event,
                side=side,
                price=price,
                delta=delta,
                seq=seq,
                exchange_ts_ns=exchange_ts_ns,
                prev_seq=tracked.published_seq,
            )
        )
        tracked.published_seq = seq
        best = bids.best
        if best != best_before or (best >= 0 and bids.counts[best] != count_before):
            out.append(self._top(tracked))
        return out

    def on_connection_lost(self, reason: str) -> list[MarketData]:
        """Every book is unknown once the connection is gone; sids start afresh."""
        self._last_seq.clear()
        out: list[MarketData] = []
        for tracked in self._markets.values():
            tracked.sid = None
            out += self._invalidate(tracked, reason)
        return out

    def on_resubscribed(self, market: str) -> list[MarketData]:
        """A market moved to a new subscription: unknown until its snapshot."""
        return self.condemn(market, "resubscribed")

    def condemn(self, market: str, reason: str) -> list[MarketData]:
        """The market's book is not to be trusted until its next snapshot."""
        tracked = self._markets.get(market)
        return [] if tracked is None else self._invalidate(tracked, reason)

    def snapshots(self) -> list[BookSnapshot]:
        """Full books of every valid market, for late consumers."""
        out = []
        for tracked in self._markets.values():
            if tracked.valid:
                tracked.published_seq = self._last_seq.get(tracked.sid or -1, 0)
                out.append(
                    BookSnapshot(
                        market=tracked.ref.market,
                        event=tracked.ref.event,
                        yes_bids=tracked.book.yes.levels(),
                        no_bids=tracked.book.no.levels(),
                        seq=tracked.published_seq,
                    )
                )
        return out

    # --- internals ----------------------------------------------------------------------

    def _check_sequence(self, sid: int, seq: int) -> list[MarketData]:
        if not self.check_sequence:
            return []
        last = self._last_seq.get(sid)
        if last is None or seq == last + 1:
            self._last_seq[sid] = seq
            return []
        self.gaps += 1
        if seq > last:
            self._last_seq[sid] = seq
            reason = f"sequence gap on sid {sid}: {last} -> {seq}"
        else:
            reason = f"duplicate or reordered seq {seq} on sid {sid} (last {last})"
        out: list[MarketData] = []
        for tracked in self._markets.values():
            if tracked.sid == sid:
                out += self._invalidate(tracked, reason)
        return out

    def _invalidate(self, tracked: Tracked, reason: str) -> list[MarketData]:
        if not tracked.valid:
            return []
        tracked.valid = False
        tracked.invalid_since = time.monotonic()
        return [self._status(tracked, BookState.INVALID, reason)]

    @staticmethod
    def _top(tracked: Tracked) -> TopOfBook:
        book = tracked.book
        return TopOfBook(
            market=tracked.ref.market,
            event=tracked.ref.event,
            yes_bid=book.best_bid(Side.YES),
            no_bid=book.best_bid(Side.NO),
        )

    @staticmethod
    def _status(tracked: Tracked, state: BookState, reason: str) -> BookStatus:
        return BookStatus(
            market=tracked.ref.market, event=tracked.ref.event, state=state, reason=reason
        )
