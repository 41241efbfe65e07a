"""The book keeper: gaps, duplicates and bad deltas invalidate; nothing from an untrusted book."""

from hypothesis import given
from hypothesis import strategies as st

from services.ingest.books import BookKeeper, MarketRef
from shared.book import PriceGrid
from shared.marketbooks import MarketBooks
from shared.messages import (
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    Level,
    Side,
    TopOfBook,
)
from shared.money import cents


def keeper(*markets: str, event: str = "E") -> BookKeeper:
    k = BookKeeper()
    for market in markets:
        k.track(MarketRef(market, event, PriceGrid.cents()))
    return k


def statuses(messages) -> list[tuple[str, BookState]]:
    return [(m.market, m.state) for m in messages if isinstance(m, BookStatus)]


def snap(k: BookKeeper, sid: int, seq: int, market: str):
    return k.on_snapshot(sid, seq, market, [Level(cents(40), 100)], [Level(cents(50), 100)])


def test_snapshot_makes_a_book_valid_and_deltas_flow():
    k = keeper("A")
    out = snap(k, 1, 1, "A")
    assert statuses(out) == [("A", BookState.VALID)]
    assert [type(m) for m in out] == [BookStatus, BookSnapshot, TopOfBook]
    out = k.on_delta(1, 2, "A", Side.YES, cents(41), 10)
    assert [type(m) for m in out] == [BookDelta, TopOfBook]
    assert k.book("A").best_bid(Side.YES) == Level(cents(41), 10)  # type: ignore[union-attr]


def test_top_of_book_only_when_the_best_bid_moves():
    k = keeper("A")
    snap(k, 1, 1, "A")
    assert [type(m) for m in k.on_delta(1, 2, "A", Side.YES, cents(30), 5)] == [BookDelta]
    out = k.on_delta(1, 3, "A", Side.YES, cents(40), 7)  # size at the best changes
    assert out[-1] == TopOfBook(
        market="A", event="E", yes_bid=Level(cents(40), 107), no_bid=Level(cents(50), 100)
    )
    out = k.on_delta(1, 4, "A", Side.NO, cents(50), -100)  # the NO side empties
    assert isinstance(out[-1], TopOfBook) and out[-1].no_bid is None


def test_a_gap_invalidates_every_market_of_the_subscription_only():
    k = keeper("A", "B", "C")
    snap(k, 1, 1, "A")
    snap(k, 1, 2, "B")
    snap(k, 2, 1, "C")
    out = k.on_delta(1, 4, "A", Side.YES, cents(41), 10)
    assert sorted(statuses(out)) == [("A", BookState.INVALID), ("B", BookState.INVALID)]
    assert not any(isinstance(m, BookDelta) for m in out)
    assert k.is_valid("C")
    assert k.awaiting_snapshot() == {1: ["A", "B"]}
    # deltas of an invalid book are swallowed until its snapshot
    assert k.on_delta(1, 5, "B", Side.NO, cents(50), 5) == []
    out = snap(k, 1, 6, "A")
    assert statuses(out) == [("A", BookState.VALID)]


def test_duplicates_and_reorders_invalidate_too():
    k = keeper("A")
    snap(k, 1, 1, "A")
    k.on_delta(1, 2, "A", Side.YES, cents(41), 10)
    out = k.on_delta(1, 2, "A", Side.YES, cents(41), 10)
    assert statuses(out) == [("A", BookState.INVALID)]
    assert k.gaps == 1


def test_impossible_deltas_invalidate_the_market():
    k = keeper("A", "B")
    snap(k, 1, 1, "A")
    snap(k, 1, 2, "B")
    out = k.on_delta(1, 3, "A", Side.YES, cents(30), -5)  # no level there
    assert statuses(out) == [("A", BookState.INVALID)]
    assert k.is_valid("B")
    out = k.on_delta(1, 4, "B", Side.YES, cents(60), 5)  # crosses NO bid at 50
    assert statuses(out) == [("B", BookState.INVALID)]
    assert k.book("B") is None


def test_losing_the_connection_invalidates_all_and_resets_sequences():
    k = keeper("A", "B")
    snap(k, 1, 1, "A")
    snap(k, 1, 2, "B")
    out = k.on_connection_lost("socket closed")
    assert sorted(statuses(out)) == [("A", BookState.INVALID), ("B", BookState.INVALID)]
    # a new connection starts its own sid and seq from 1 without a false gap
    assert statuses(snap(k, 7, 1, "A")) == [("A", BookState.VALID)]


def test_untracked_markets_are_ignored_but_still_sequence_checked():
    k = keeper("A")
    snap(k, 1, 1, "A")
    assert k.on_delta(1, 2, "ZZZ", Side.YES, cents(41), 1) == []
    assert k.on_delta(1, 3, "A", Side.YES, cents(41), 1)


events = st.lists(
    st.tuples(
        st.sampled_from(["A", "B"]),
        st.sampled_from(["snap", "delta", "skip", "dup"]),
        st.sampled_from([Side.YES, Side.NO]),
        st.integers(1, 99),
        st.integers(-200, 200).filter(bool),
    ),
    max_size=200,
)


@given(events)
def test_never_publishes_from_a_book_it_does_not_trust(stream):
    """Whatever arrives, every published delta came from a valid, uncrossed book."""
    k = keeper("A", "B")
    seq = 0
    for market, kind, side, cent, delta in stream:
        seq += {"skip": 2, "dup": 0}.get(kind, 1)
        if kind == "snap":
            out = snap(k, 1, seq, market)
        else:
            was_valid = k.is_valid(market)
            out = k.on_delta(1, seq, market, side, cents(cent), delta)
            published = [m for m in out if isinstance(m, BookDelta)]
            if published:
                assert was_valid and kind == "delta"
                book = k.book(market)
                assert book is not None and not book.crossed()
        for m in out:
            if isinstance(m, BookSnapshot):
                assert k.is_valid(m.market)


def test_each_delta_names_the_seq_it_follows_in_its_market():
    k = keeper("A", "B")
    snap(k, 1, 1, "A")
    snap(k, 1, 2, "B")
    a1 = k.on_delta(1, 3, "A", Side.YES, cents(41), 10)[0]
    b1 = k.on_delta(1, 4, "B", Side.YES, cents(41), 10)[0]
    a2 = k.on_delta(1, 5, "A", Side.YES, cents(39), 10)[0]
    assert [(d.seq, d.prev_seq) for d in (a1, b1, a2)] == [(3, 1), (4, 2), (5, 3)]
    (republished,) = [s for s in k.snapshots() if s.market == "A"]
    a3 = k.on_delta(1, 6, "A", Side.YES, cents(38), 10)[0]
    assert a3.prev_seq == republished.seq


OPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from("AB"), st.sampled_from([Side.YES, Side.NO]), st.integers(0, 8)),
        st.just("republish"),
    ),
    min_size=1,
    max_size=40,
)


@given(OPS, st.integers(min_value=0))
def test_a_consumer_missing_any_entry_never_trusts_a_wrong_book(ops, drop):
    k = keeper("A", "B")
    published = snap(k, 1, 1, "A") + snap(k, 1, 2, "B")
    seq = 2
    for op in ops:
        if op == "republish":
            published += k.snapshots()
            continue
        market, side, step = op
        seq += 1
        price = cents(30 + step) if side is Side.YES else cents(50 + step)
        published += k.on_delta(1, seq, market, side, price, 5)
    # the loss shows at the market's next delta: one more each, never the one lost
    deltas = [i for i, m in enumerate(published) if isinstance(m, BookDelta)]
    published += k.on_delta(1, seq + 1, "A", Side.YES, cents(31), 1)
    published += k.on_delta(1, seq + 2, "B", Side.YES, cents(31), 1)
    whole, missing = MarketBooks(), MarketBooks()
    lost = deltas[drop % len(deltas)] if deltas else -1
    for i, item in enumerate(published):
        whole.apply(item)
        if i != lost:
            missing.apply(item)
    for market in "AB":
        truth = levels_of(k.book(market))
        assert levels_of(whole.book(market)) == truth
        assert levels_of(missing.book(market)) in (None, truth)


def levels_of(book) -> tuple | None:
    return None if book is None else (book.yes.levels(), book.no.levels())
