"""Paper matching: hand-worked takes and maker queues, and properties."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.book import OrderBook
from shared.fees import maker_rate, taker_rate
from shared.kelly import AskLadder
from shared.matching import MakerQueue, TakenLiquidity, take, take_sell
from shared.messages import Action, BookDelta, BookSnapshot, Level, Side, Trade
from shared.money import ONE_DOLLAR, cents, contracts

TAKER = taker_rate("quadratic", "1")
NO_MAKER_FEE = maker_rate("quadratic", "1")
MAKER = maker_rate("quadratic_with_maker_fees", "1")


def cents_up(exact_dollars: Fraction) -> int:
    """Kalshi's rounding: up to the next whole cent, in micro-dollars."""
    return cents(math.ceil(exact_dollars * 100))


def quadratic(rate: Fraction, fills: list[tuple[int, int]]) -> Fraction:
    """The published formula summed over (price in cents, whole contracts), in dollars."""
    return sum(
        (rate * n * Fraction(p, 100) * (1 - Fraction(p, 100)) for p, n in fills), Fraction(0)
    )


def book_with(yes: list[Level], no: list[Level]) -> OrderBook:
    book = OrderBook("M")
    book.apply_snapshot(yes=yes, no=no)
    return book


def asks_book() -> OrderBook:
    """YES asks 3 @ $0.40 and 10 @ $0.45 (NO bids at $0.60 and $0.55)."""
    return book_with(
        yes=[Level(cents(30), contracts(4))],
        no=[Level(cents(60), contracts(3)), Level(cents(55), contracts(10))],
    )


# --- takers ---------------------------------------------------------------------------


def test_taker_walks_two_levels_with_the_fee_rounded_once() -> None:
    result = take(asks_book(), Side.YES, cents(45), contracts(5), TAKER, fill_or_kill=False)

    assert result.fills == (Level(cents(40), contracts(3)), Level(cents(45), contracts(2)))
    assert result.notional == cents(3 * 40 + 2 * 45)
    # 0.07 x (3 x 0.4 x 0.6 + 2 x 0.45 x 0.55) = $0.08505 -> 9 cents for the order;
    # rounding each level on its own would charge 6 + 4 = 10 cents
    exact = quadratic(Fraction(7, 100), [(40, 3), (45, 2)])
    assert exact == Fraction("0.08505")
    assert result.fee == cents_up(exact) == cents(9)
    assert cents_up(quadratic(Fraction(7, 100), [(40, 3)])) + cents_up(
        quadratic(Fraction(7, 100), [(45, 2)])
    ) == cents(10)
    assert (result.filled, result.remaining) == (contracts(5), 0)
    assert result.action is Action.BUY
    assert result.book_side is Side.NO
    assert result.consumed() == (Level(cents(60), contracts(3)), Level(cents(55), contracts(2)))
    assert result.cash_change == -(cents(210) + cents(9))


def test_taker_respects_the_limit_price() -> None:
    result = take(asks_book(), Side.YES, cents(44), contracts(5), TAKER, fill_or_kill=False)
    assert result.fills == (Level(cents(40), contracts(3)),)
    assert (result.filled, result.remaining) == (contracts(3), contracts(2))
    nothing = take(asks_book(), Side.YES, cents(39), contracts(5), TAKER, fill_or_kill=False)
    assert nothing.fills == () and nothing.fee == 0 and nothing.remaining == contracts(5)


def test_fill_or_kill_is_all_or_nothing() -> None:
    book = asks_book()
    too_much = take(book, Side.YES, cents(45), contracts(14), TAKER, fill_or_kill=True)
    assert too_much.fills == ()
    assert (too_much.filled, too_much.remaining, too_much.notional, too_much.fee) == (
        0,
        contracts(14),
        0,
        0,
    )
    exactly = take(book, Side.YES, cents(45), contracts(13), TAKER, fill_or_kill=True)
    assert exactly.filled == contracts(13)
    ioc = take(book, Side.YES, cents(45), contracts(14), TAKER, fill_or_kill=False)
    assert (ioc.filled, ioc.remaining) == (contracts(13), contracts(1))


def test_buying_no_takes_the_yes_bids() -> None:
    result = take(asks_book(), Side.NO, cents(70), contracts(1), TAKER, fill_or_kill=False)
    assert result.fills == (Level(cents(70), contracts(1)),)
    assert result.consumed() == (Level(cents(30), contracts(1)),)
    # 0.07 x 0.7 x 0.3 = $0.0147 -> 2 cents
    assert result.fee == cents_up(quadratic(Fraction(7, 100), [(70, 1)])) == cents(2)


def test_sell_hits_own_side_bids_at_or_above_the_limit() -> None:
    book = book_with(
        yes=[Level(cents(50), contracts(2)), Level(cents(48), contracts(5)), Level(cents(47), 100)],
        no=[],
    )
    result = take_sell(book, Side.YES, cents(48), contracts(10), TAKER, fill_or_kill=False)
    assert result.fills == (Level(cents(50), contracts(2)), Level(cents(48), contracts(5)))
    assert result.remaining == contracts(3)
    exact = quadratic(Fraction(7, 100), [(50, 2), (48, 5)])  # 0.035 + 0.08736 = 0.12236
    assert result.fee == cents_up(exact) == cents(13)
    assert result.cash_change == cents(100 + 240) - cents(13)
    assert result.book_side is Side.YES
    fok = take_sell(book, Side.YES, cents(48), contracts(10), TAKER, fill_or_kill=True)
    assert fok.filled == 0


def test_fractional_counts_are_taken_exactly() -> None:
    book = book_with(yes=[], no=[Level(cents(60), 150)])
    result = take(book, Side.YES, cents(40), 75, TAKER, fill_or_kill=False)
    assert result.fills == (Level(cents(40), 75),)
    assert result.notional == 300_000  # 0.75 x $0.40
    assert result.fee == cents_up(Fraction(7, 100) * Fraction(3, 4) * Fraction(24, 100))


def test_take_leaves_the_book_alone() -> None:
    book = asks_book()
    before = book.levels()
    take(book, Side.YES, cents(45), contracts(13), TAKER, fill_or_kill=False)
    take_sell(book, Side.YES, cents(1), contracts(4), TAKER, fill_or_kill=False)
    assert book.levels() == before


def test_bad_orders_are_refused() -> None:
    with pytest.raises(ValueError):
        take(asks_book(), Side.YES, ONE_DOLLAR + 1, 100, TAKER, fill_or_kill=False)
    with pytest.raises(ValueError):
        take(asks_book(), Side.YES, cents(50), -1, TAKER, fill_or_kill=False)


# --- liquidity we already took ----------------------------------------------------------


def test_taken_liquidity_reduces_depth_until_the_level_changes() -> None:
    book = asks_book()
    taken = TakenLiquidity()
    first = take(book, Side.YES, cents(45), contracts(5), TAKER, fill_or_kill=False, taken=taken)
    taken.record(first)
    assert taken.taken("M", Side.NO, cents(60)) == contracts(3)
    assert taken.taken("M", Side.NO, cents(55)) == contracts(2)

    second = take(book, Side.YES, cents(45), contracts(5), TAKER, fill_or_kill=False, taken=taken)
    assert second.fills == (Level(cents(45), contracts(5)),)  # the $0.40 level is ours already
    fok = take(book, Side.YES, cents(45), contracts(9), TAKER, fill_or_kill=True, taken=taken)
    assert fok.filled == 0  # only 8 left at $0.45

    delta = BookDelta(market="M", event="E", side=Side.NO, price=cents(60), delta=100, seq=2)
    book.apply_delta(delta.side, delta.price, delta.delta)
    taken.on_market_data(delta)
    assert taken.taken("M", Side.NO, cents(60)) == 0
    assert taken.taken("M", Side.NO, cents(55)) == contracts(2)
    third = take(book, Side.YES, cents(40), contracts(9), TAKER, fill_or_kill=False, taken=taken)
    assert third.fills == (Level(cents(40), contracts(4)),)  # the exchange's new size

    snapshot = BookSnapshot(market="M", event="E", yes_bids=[], no_bids=[], seq=3)
    taken.on_market_data(snapshot)
    assert len(taken) == 0


def test_taken_liquidity_is_per_market_and_ignores_other_data() -> None:
    taken = TakenLiquidity()
    result = take(asks_book(), Side.YES, cents(40), contracts(1), TAKER, fill_or_kill=False)
    taken.record(result)
    taken.on_market_data(BookSnapshot(market="X", event="E", yes_bids=[], no_bids=[], seq=1))
    taken.on_market_data(trade(Side.YES, cents(40), 100))
    assert taken.taken("M", Side.NO, cents(60)) == contracts(1)
    assert taken.available("M", Side.NO, cents(60), contracts(3)) == contracts(2)
    assert taken.available("M", Side.NO, cents(60), 50) == 0


# --- makers ----------------------------------------------------------------------------


def trade(taker_side: Side, yes_price: int, count: int, market: str = "M") -> Trade:
    return Trade(
        market=market,
        event="E",
        trade_id="t",
        taker_side=taker_side,
        yes_price=yes_price,
        count=count,
    )


def yes_bid_queue(ahead: int = contracts(10), count: int = contracts(5)) -> MakerQueue:
    book = book_with(yes=[Level(cents(50), ahead)] if ahead else [], no=[])
    return MakerQueue.join(book, Side.YES, cents(50), count, NO_MAKER_FEE)


def test_maker_fills_only_after_the_queue_ahead_then_partly_then_fully() -> None:
    queue = yes_bid_queue()
    assert (queue.queue_ahead, queue.queue_behind) == (contracts(10), 0)
    # a NO taker hits YES bids at yes_price
    assert queue.on_trade(trade(Side.NO, cents(50), contracts(6))) == 0
    assert queue.queue_ahead == contracts(4)
    assert queue.on_trade(trade(Side.NO, cents(50), contracts(6))) == contracts(2)
    assert (queue.queue_ahead, queue.filled, queue.remaining) == (0, contracts(2), contracts(3))
    assert queue.on_trade(trade(Side.NO, cents(50), contracts(6))) == contracts(3)
    assert queue.done
    assert queue.on_trade(trade(Side.NO, cents(50), contracts(6))) == 0
    assert queue.fees == 0  # plain quadratic: makers pay nothing


def test_trades_elsewhere_do_not_fill() -> None:
    queue = yes_bid_queue()
    assert queue.on_trade(trade(Side.YES, cents(50), contracts(20))) == 0  # lifts NO bids
    assert queue.on_trade(trade(Side.NO, cents(51), contracts(20))) == 0  # a better bid
    assert queue.on_trade(trade(Side.NO, cents(49), contracts(1), market="X")) == 0
    assert queue.queue_ahead == contracts(10)


def test_trade_through_our_price_fills_everything() -> None:
    queue = yes_bid_queue()
    # someone sold YES at $0.49 while we bid $0.50: our level was swept first
    assert queue.on_trade(trade(Side.NO, cents(49), contracts(1))) == contracts(5)
    assert queue.done and queue.queue_ahead == 0


def test_no_bid_maker_is_filled_by_yes_takers() -> None:
    book = book_with(yes=[], no=[Level(cents(45), contracts(1))])
    queue = MakerQueue.join(book, Side.NO, cents(45), contracts(2), NO_MAKER_FEE)
    # a YES taker at $0.55 lifts NO bids at $0.45
    assert queue.on_trade(trade(Side.YES, cents(55), contracts(2))) == contracts(1)
    # YES at $0.56 lifts NO bids at $0.44: below ours, so through our level
    assert queue.on_trade(trade(Side.YES, cents(56), 1)) == contracts(1)
    assert queue.done


def test_cancels_reduce_the_queue_ahead_by_its_share() -> None:
    queue = yes_bid_queue()
    queue.on_delta(contracts(5))  # joins behind us
    assert (queue.queue_ahead, queue.queue_behind) == (contracts(10), contracts(5))
    queue.on_delta(-contracts(3))  # 3 x 10/15 = 2 ahead, 1 behind
    assert (queue.queue_ahead, queue.queue_behind) == (contracts(8), contracts(4))
    queue.on_delta(-100)  # 100 x 800/1200 = 66.7 -> 66 ahead (rounded down), 34 behind
    assert (queue.queue_ahead, queue.queue_behind) == (800 - 66, 400 - 34)
    queue.on_delta(-contracts(100))  # more than the level: everything goes, never below 0
    assert (queue.queue_ahead, queue.queue_behind) == (0, 0)
    assert queue.on_trade(trade(Side.NO, cents(50), contracts(1))) == contracts(1)


def test_a_decrease_explained_by_a_trade_is_not_a_cancel() -> None:
    queue = yes_bid_queue()
    queue.on_delta(contracts(10))  # 10 ahead, 10 behind
    queue.on_trade(trade(Side.NO, cents(50), contracts(4)))
    assert (queue.queue_ahead, queue.unexplained_trades) == (contracts(6), contracts(4))
    queue.on_delta(-contracts(4))  # the trade's own decrease
    assert (queue.queue_ahead, queue.queue_behind) == (contracts(6), contracts(10))
    queue.on_delta(-contracts(4))  # now a cancel: 4 x 6/16 = 1.5 -> 1.5 contracts ahead
    assert (queue.queue_ahead, queue.queue_behind) == (contracts(6) - 150, contracts(10) - 250)


def test_resync_never_moves_us_back() -> None:
    queue = yes_bid_queue()
    queue.resync(contracts(4))
    assert (queue.queue_ahead, queue.queue_behind) == (contracts(4), 0)
    queue.resync(contracts(7))
    assert (queue.queue_ahead, queue.queue_behind) == (contracts(4), contracts(3))


def test_maker_fee_zero_on_plain_quadratic_and_per_fill_with_maker_fees() -> None:
    plain = yes_bid_queue(ahead=0)
    assert plain.on_trade(trade(Side.NO, cents(50), contracts(5))) == contracts(5)
    assert plain.fees == 0

    book = book_with(yes=[], no=[])
    queue = MakerQueue.join(book, Side.YES, cents(50), contracts(3), MAKER)
    for _ in range(3):
        assert queue.on_trade(trade(Side.NO, cents(50), contracts(1))) == contracts(1)
    # each fill: 0.0175 x 1 x 0.5 x 0.5 = $0.004375 -> 1 cent, three times
    one_fill = cents_up(quadratic(Fraction(175, 10_000), [(50, 1)]))
    assert one_fill == cents(1)
    assert queue.fees == 3 * one_fill
    # more than the 1 cent one order would pay: the conservative choice
    assert cents_up(quadratic(Fraction(175, 10_000), [(50, 3)])) == cents(2)
    assert queue.fee_of(contracts(100)) == cents_up(Fraction(175, 10_000) * 100 / 4)


def test_bad_maker_orders_are_refused() -> None:
    with pytest.raises(ValueError):
        MakerQueue("M", Side.YES, cents(50), 0, 0, MAKER)
    with pytest.raises(ValueError):
        MakerQueue("M", Side.YES, 0, 100, 0, MAKER)


# --- properties ------------------------------------------------------------------------

prices = st.integers(min_value=1, max_value=99).map(cents)
levels = st.lists(
    st.builds(Level, prices, st.integers(min_value=1, max_value=5_000)),
    max_size=8,
    unique_by=lambda level: level.price,
)


@settings(max_examples=200, deadline=None)
@given(
    yes=levels,
    no=levels,
    side=st.sampled_from(Side),
    limit=st.integers(min_value=0, max_value=100).map(cents),
    count=st.integers(min_value=0, max_value=20_000),
    fok=st.booleans(),
)
def test_take_properties(yes, no, side, limit, count, fok) -> None:
    book = book_with(yes, no)
    result = take(book, side, limit, count, TAKER, fill_or_kill=fok)
    within = [ask for ask in book.asks(side) if ask.price <= limit]
    depth = sum(ask.count for ask in within)

    assert all(fill.price <= limit for fill in result.fills)
    assert result.filled == sum(fill.count for fill in result.fills)
    assert result.filled + result.remaining == count
    assert result.filled <= min(count, depth)
    if fok:
        assert result.filled in (0, count)
        assert (result.filled == count) == (depth >= count)
    else:
        assert result.filled == min(count, depth)
    assert result.notional + result.fee == AskLadder(within, TAKER).cost(result.filled)
    assert result == take(book, side, limit, count, TAKER, fill_or_kill=fok)


@settings(max_examples=200, deadline=None)
@given(
    yes=levels,
    side=st.sampled_from(Side),
    limit=st.integers(min_value=0, max_value=100).map(cents),
    count=st.integers(min_value=0, max_value=20_000),
    fok=st.booleans(),
)
def test_take_sell_properties(yes, side, limit, count, fok) -> None:
    book = book_with(yes, yes)
    result = take_sell(book, side, limit, count, TAKER, fill_or_kill=fok)
    depth = sum(bid.count for bid in book.bids(side).levels() if bid.price >= limit)

    assert all(fill.price >= limit for fill in result.fills)
    assert result.filled + result.remaining == count
    assert result.filled <= min(count, depth)
    if fok:
        assert result.filled in (0, count)
    else:
        assert result.filled == min(count, depth)


@settings(max_examples=100, deadline=None)
@given(
    no=levels,
    orders=st.lists(
        st.tuples(st.integers(min_value=1, max_value=100).map(cents), st.integers(1, 5_000)),
        max_size=6,
    ),
)
def test_repeated_takes_never_exceed_the_book(no, orders) -> None:
    book = book_with([], no)
    taken = TakenLiquidity()
    total = 0
    for limit, count in orders:
        result = take(book, Side.YES, limit, count, TAKER, fill_or_kill=False, taken=taken)
        taken.record(result)
        total += result.filled
    assert total <= sum(level.count for level in no)
    for level in no:
        assert taken.taken("M", Side.NO, level.price) <= level.count


events = st.one_of(
    st.tuples(
        st.just("trade"),
        st.sampled_from(Side),
        st.integers(min_value=45, max_value=55).map(cents),
        st.integers(min_value=1, max_value=3_000),
    ),
    st.tuples(st.just("delta"), st.integers(min_value=-3_000, max_value=3_000)),
)


@settings(max_examples=200, deadline=None)
@given(
    ahead=st.integers(min_value=0, max_value=5_000),
    count=st.integers(min_value=1, max_value=5_000),
    script=st.lists(events, max_size=30),
)
def test_maker_never_fills_more_than_the_order(ahead, count, script) -> None:
    queue = MakerQueue("M", Side.YES, cents(50), count, ahead, MAKER)
    total = 0
    for event in script:
        if event[0] == "trade":
            _, taker_side, yes_price, size = event
            filled = queue.on_trade(trade(taker_side, yes_price, size))
            assert 0 <= filled <= size or yes_price < cents(50)
            total += filled
        else:
            queue.on_delta(event[1])
        assert queue.queue_ahead >= 0 and queue.queue_behind >= 0
        assert queue.queue_ahead <= ahead
    assert total == queue.filled <= count
    assert queue.fees >= 0
    assert (queue.fees == 0) == (total == 0)
