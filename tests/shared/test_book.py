import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.book import BookError, OrderBook, PriceGrid
from shared.messages import Level, PriceRange, Side
from shared.money import cents, parse_dollars

TAPERED = PriceGrid.from_ranges(
    [
        PriceRange(0, parse_dollars("0.10"), parse_dollars("0.001")),
        PriceRange(parse_dollars("0.10"), parse_dollars("0.90"), parse_dollars("0.01")),
        PriceRange(parse_dollars("0.90"), parse_dollars("1"), parse_dollars("0.001")),
    ]
)


def test_grids_know_their_ticks():
    assert PriceGrid.cents().unit == cents(1)
    assert PriceGrid.cents().size == 101
    assert TAPERED.unit == parse_dollars("0.001")
    assert TAPERED.on_grid(parse_dollars("0.005"))
    assert not TAPERED.on_grid(parse_dollars("0.505"))
    assert TAPERED.on_grid(parse_dollars("0.50"))
    with pytest.raises(BookError):
        PriceGrid.cents().index(parse_dollars("0.005"))


def test_snapshot_then_deltas_keep_best_bids_and_implied_asks():
    book = OrderBook("M")
    book.apply_snapshot(
        yes=[Level(cents(41), 1000), Level(cents(42), 1300)],
        no=[Level(cents(45), 2000), Level(cents(56), 1700)],
    )
    assert book.best_bid(Side.YES) == Level(cents(42), 1300)
    assert book.best_ask(Side.YES) == Level(cents(44), 1700)  # 1 - best NO bid 0.56
    assert book.best_ask(Side.NO) == Level(cents(58), 1300)
    book.apply_delta(Side.YES, cents(42), -1300)
    assert book.best_bid(Side.YES) == Level(cents(41), 1000)
    book.apply_delta(Side.YES, cents(43), 500)
    assert book.best_bid(Side.YES) == Level(cents(43), 500)
    assert book.asks(Side.YES) == [Level(cents(44), 1700), Level(cents(55), 2000)]
    assert not book.crossed()


def test_impossible_changes_are_refused():
    book = OrderBook("M")
    book.apply_snapshot(yes=[Level(cents(40), 100)], no=[])
    with pytest.raises(BookError, match="negative"):
        book.apply_delta(Side.YES, cents(40), -101)
    with pytest.raises(BookError, match="no level"):
        book.apply_delta(Side.NO, cents(30), -1)
    with pytest.raises(BookError, match="off the grid"):
        book.apply_delta(Side.YES, parse_dollars("0.405"), 1)
    with pytest.raises(BookError):
        book.apply_snapshot(yes=[Level(cents(40), 0)], no=[])
    assert book.empty()


def test_crossed_book_is_detected():
    book = OrderBook("M")
    book.apply_snapshot(yes=[Level(cents(60), 1)], no=[Level(cents(40), 1)])
    assert book.crossed()


def test_sub_penny_markets():
    book = OrderBook("M", TAPERED)
    book.apply_snapshot(
        yes=[Level(parse_dollars("0.051"), 5)], no=[Level(parse_dollars("0.93"), 7)]
    )
    assert book.best_ask(Side.YES) == Level(parse_dollars("0.07"), 7)
    book.apply_delta(Side.YES, parse_dollars("0.052"), 3)
    assert book.best_bid(Side.YES) == Level(parse_dollars("0.052"), 3)


deltas = st.lists(
    st.tuples(st.sampled_from([Side.YES, Side.NO]), st.integers(1, 99), st.integers(-500, 500)),
    max_size=300,
)


@given(deltas)
def test_book_matches_a_plain_model_of_levels(changes):
    book = OrderBook("M")
    model: dict[tuple[Side, int], int] = {}
    for side, cent, delta in changes:
        old = model.get((side, cent), 0)
        if delta == 0:
            continue
        if old + delta < 0 or (old == 0 and delta < 0):
            with pytest.raises(BookError):
                book.apply_delta(side, cents(cent), delta)
            continue
        book.apply_delta(side, cents(cent), delta)
        model[(side, cent)] = old + delta
    for side in (Side.YES, Side.NO):
        expected = sorted(((c, n) for (s, c), n in model.items() if s is side and n), reverse=True)
        assert [(lvl.price // cents(1), lvl.count) for lvl in book.bids(side).levels()] == expected
        best = book.best_bid(side)
        assert (best.price // cents(1), best.count) == expected[0] if expected else best is None


@given(deltas)
def test_a_change_and_its_inverse_leave_the_book_as_it_was(changes):
    book = OrderBook("M")
    book.apply_snapshot(yes=[Level(cents(c), 50) for c in range(1, 50)], no=[])
    before = book.levels()
    applied = []
    for side, cent, delta in changes:
        if delta <= 0:
            continue
        book.apply_delta(side, cents(cent), delta)
        applied.append((side, cent, delta))
    for side, cent, delta in reversed(applied):
        book.apply_delta(side, cents(cent), -delta)
    assert book.levels() == before
