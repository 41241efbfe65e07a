"""Books rebuilt from market data: trusted from a snapshot until ingest or a bad delta says no."""

from __future__ import annotations

from shared.marketbooks import MarketBooks
from shared.messages import (
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    Level,
    MarketInfo,
    PriceRange,
    Side,
    TopOfBook,
)
from shared.money import ONE_DOLLAR, cents, contracts

M, E = "KXA-1-T1", "KXA-1"


def snap(yes: int = 40, no: int = 55, seq: int = 1) -> BookSnapshot:
    return BookSnapshot(
        market=M,
        event=E,
        yes_bids=[Level(cents(yes), contracts(10))],
        no_bids=[Level(cents(no), contracts(10))],
        seq=seq,
    )


def delta(side: Side, price: int, change: int, seq: int) -> BookDelta:
    return BookDelta(market=M, event=E, side=side, price=price, delta=change, seq=seq)


def test_a_book_is_trusted_from_its_snapshot_and_follows_deltas():
    books = MarketBooks()
    assert books.book(M) is None and books.state(M) is None
    assert books.apply(snap()) == M
    assert books.apply(delta(Side.YES, cents(41), contracts(3), 2)) == M
    book = books.book(M)
    assert book is not None and book.best_bid(Side.YES) == Level(cents(41), contracts(3))
    assert books.seq(M) == 2 and books.state(M) is BookState.VALID and books.event_of(M) == E


def test_an_invalid_status_drops_the_book_until_the_next_snapshot():
    books = MarketBooks()
    books.apply(snap())
    status = BookStatus(market=M, event=E, state=BookState.INVALID, reason="gap")
    assert books.apply(status) == M
    assert books.book(M) is None and books.state(M) is BookState.INVALID
    assert books.reason(M) == "gap"
    assert books.apply(delta(Side.YES, cents(41), contracts(3), 5)) is None  # ignored
    assert books.apply(BookStatus(market=M, event=E, state=BookState.VALID)) is None
    assert books.book(M) is None  # trust comes with the snapshot, not the status
    books.apply(snap(seq=6))
    assert books.book(M) is not None


def test_a_delta_that_crosses_the_book_makes_it_untrusted():
    books = MarketBooks()
    books.apply(snap(yes=40, no=55))
    books.apply(delta(Side.YES, cents(50), contracts(1), 2))  # 50 + 55 >= 100
    assert books.book(M) is None and books.rejected == 1
    assert "crossed" in books.reason(M)


def test_a_price_off_the_markets_grid_is_rejected_and_the_grid_comes_from_the_catalog():
    books = MarketBooks()
    books.apply(snap())
    books.apply(delta(Side.YES, cents(41) + 500, contracts(1), 2))  # sub-penny on a cent grid
    assert books.book(M) is None
    fine = PriceRange(0, ONE_DOLLAR, 100)
    info = MarketInfo(
        market=M, event=E, series="KXA", status="active", close_ts_ns=0, price_ranges=[fine]
    )
    books.set_market(info)
    books.apply(snap(seq=3))
    books.apply(delta(Side.YES, cents(41) + 500, contracts(1), 4))
    book = books.book(M)
    assert book is not None and book.best_bid(Side.YES) == Level(cents(41) + 500, contracts(1))


def test_top_of_book_items_change_nothing():
    books = MarketBooks()
    top = TopOfBook(market=M, event=E, yes_bid=None, no_bid=None)
    assert books.apply(top) is None and books.markets() == []


def test_a_delta_that_does_not_follow_the_books_seq_means_an_entry_was_lost_on_the_bus():
    books = MarketBooks()
    books.apply(snap(seq=10))
    chained = BookDelta(
        market=M, event=E, side=Side.YES, price=cents(41), delta=contracts(3), seq=14, prev_seq=10
    )
    assert books.apply(chained) == M and books.book(M) is not None
    skipped = BookDelta(
        market=M, event=E, side=Side.YES, price=cents(42), delta=contracts(1), seq=20, prev_seq=17
    )
    assert books.apply(skipped) == M
    assert books.book(M) is None and books.state(M) is BookState.INVALID
    assert "lost on the bus" in books.reason(M) and "seq 14" in books.reason(M)
    books.apply(snap(seq=21))
    assert books.book(M) is not None


def test_a_delta_without_a_previous_seq_is_not_checked():
    books = MarketBooks()
    books.apply(snap(seq=10))
    books.apply(delta(Side.YES, cents(41), contracts(3), 99))  # recorded data: prev_seq -1
    assert books.book(M) is not None


def test_a_delta_published_twice_is_applied_once():
    books = MarketBooks()
    books.apply(snap(seq=10))
    once = BookDelta(
        market=M, event=E, side=Side.YES, price=cents(41), delta=contracts(3), seq=14, prev_seq=10
    )
    books.apply(once)
    assert books.apply(once) is None
    book = books.book(M)
    assert book is not None and book.best_bid(Side.YES) == Level(cents(41), contracts(3))
