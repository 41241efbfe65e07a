"""The portfolio view: open orders, marks, NAV history, the trading day and exposures."""

from __future__ import annotations

import pytest

from shared.ledger import Ledger, LedgerError
from shared.messages import (
    Action,
    Level,
    OrderEvent,
    OrderStatus,
    Position,
    Side,
    TopOfBook,
    TradingState,
)
from shared.money import ONE_DOLLAR, Count, Micros, cents, contracts, dollars
from shared.risk import PortfolioView, correlation_group, day_start_ns, mark_from_book
from shared.risk.portfolio import FED_GROUP, event_from_ticker, series_from_ticker
from tests.shared.risk.test_checks import (
    A1,
    A2,
    B1,
    C1,
    COUNT,
    EVENT_A,
    FED,
    HOUR,
    NOW,
    fill,
    hold,
    leg,
    make_ctx,
    market_info,
)

DAY = 24 * HOUR


def view() -> PortfolioView:
    portfolio = PortfolioView(Ledger(dollars(10_000)))
    for market in (A1, A2, B1, C1, FED):
        portfolio.on_market(market_info(market))
    return portfolio


def event(
    coid: str,
    status: OrderStatus,
    remaining: Count = 0,
    count: Count = COUNT,
    action: Action = Action.BUY,
) -> OrderEvent:
    return OrderEvent(
        client_order_id=coid,
        order_id="o",
        market=A1,
        status=status,
        leg=leg(A1, action=action, price=cents(40), count=count),
        remaining=remaining,
    )


# --- marks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yes_bid", "no_bid", "mark"),
    [
        (cents(40), cents(55), 425_000),  # mid of 0.40 and 0.45
        (400_100, 599_900, 400_100),
        (400_100, 599_800, 400_100),  # mid 0.40015 floors to the $0.0001 tick
        (cents(40), None, cents(40)),
        (None, cents(55), cents(45)),
        (None, None, None),
        (0, ONE_DOLLAR, 0),
    ],
)
def test_mark_from_book(yes_bid: Micros | None, no_bid: Micros | None, mark: Micros | None) -> None:
    assert mark_from_book(yes_bid, no_bid) == mark


def test_top_of_book_sets_and_clears_the_mark() -> None:
    portfolio = view()
    top = TopOfBook(market=A1, event=EVENT_A, yes_bid=Level(cents(40), 5), no_bid=None)
    portfolio.on_top_of_book(top)
    assert portfolio.marks[A1] == cents(40)
    portfolio.on_top_of_book(TopOfBook(market=A1, event=EVENT_A, yes_bid=None, no_bid=None))
    assert A1 not in portfolio.marks


# --- open orders ---------------------------------------------------------------------------


def test_order_lifecycle() -> None:
    portfolio = view()
    portfolio.on_order(event("c1", OrderStatus.SENT))
    assert portfolio.open_orders["c1"].count == contracts(10)
    portfolio.on_order(event("c1", OrderStatus.RESTING, remaining=contracts(10)))
    portfolio.on_order(event("c1", OrderStatus.PARTIAL, remaining=contracts(4)))
    assert portfolio.open_orders["c1"].count == contracts(4)
    portfolio.on_order(event("c1", OrderStatus.UNKNOWN))
    assert portfolio.open_orders["c1"].count == contracts(4)
    portfolio.on_order(event("c1", OrderStatus.FILLED))
    assert "c1" not in portfolio.open_orders
    portfolio.on_order(event("c1", OrderStatus.SENT))  # a late redelivery
    assert "c1" not in portfolio.open_orders


def test_resting_without_remaining_keeps_the_order_open() -> None:
    portfolio = view()
    portfolio.on_order(event("c1", OrderStatus.RESTING))
    assert portfolio.open_orders["c1"].count == contracts(10)
    portfolio.on_order(event("c1", OrderStatus.PARTIAL, remaining=contracts(3)))
    portfolio.on_order(event("c1", OrderStatus.PARTIAL))
    assert portfolio.open_orders["c1"].count == contracts(3)


def test_bad_marks_are_refused_at_the_door() -> None:
    portfolio = view()
    with pytest.raises(LedgerError):
        portfolio.set_mark(A1, 150)
    with pytest.raises(LedgerError):
        portfolio.set_mark(A1, ONE_DOLLAR + 100)
    assert A1 not in portfolio.marks


@pytest.mark.parametrize("status", [OrderStatus.CANCELED, OrderStatus.REJECTED])
def test_canceled_and_rejected_close(status: OrderStatus) -> None:
    portfolio = view()
    portfolio.on_order(event("c1", OrderStatus.UNKNOWN))
    assert len(portfolio.open_orders) == 1
    portfolio.on_order(event("c1", status))
    assert not portfolio.open_orders


def test_open_counts_by_market_side_and_action() -> None:
    portfolio = view()
    portfolio.on_order(event("b", OrderStatus.RESTING, remaining=contracts(3)))
    portfolio.on_order(event("s", OrderStatus.SENT, count=contracts(2), action=Action.SELL))
    assert portfolio.open_count(A1, Side.YES, Action.BUY) == contracts(3)
    assert portfolio.open_count(A1, Side.YES, Action.SELL) == contracts(2)
    assert portfolio.open_count(A1, Side.NO, Action.BUY) == 0
    assert len(portfolio.open_orders_in(A1)) == 2


# --- exposure ------------------------------------------------------------------------------


def test_exposure_is_cost_plus_open_buys() -> None:
    ctx = make_ctx()
    portfolio = ctx.portfolio
    hold(ctx, A1, Side.YES, cents(40), contracts(10))  # $4.00
    hold(ctx, A1, Side.NO, cents(30), contracts(10))  # $3.00
    hold(ctx, C1, Side.YES, cents(20), contracts(10))  # $2.00
    portfolio.on_order(event("b", OrderStatus.RESTING, remaining=contracts(5)))  # $2.00
    portfolio.on_order(event("s", OrderStatus.RESTING, remaining=contracts(5), action=Action.SELL))
    assert portfolio.market_exposure(A1) == dollars(9)
    assert portfolio.exposure_by_event() == {EVENT_A: dollars(9), "KXLOWTNYC-25DEC05": dollars(2)}
    assert portfolio.exposure_by_series() == {"KXHIGHNY": dollars(9), "KXLOWTNYC": dollars(2)}
    assert portfolio.exposure_by_group() == {"WX:KNYC": dollars(11)}


def test_unknown_markets_are_grouped_by_their_ticker() -> None:
    ctx = make_ctx()
    hold(ctx, "KXHIGHCHI-25DEC05-T40", Side.YES, cents(10), contracts(1))
    assert ctx.portfolio.exposure_by_event()["KXHIGHCHI-25DEC05"] == cents(10)
    assert ctx.portfolio.exposure_by_group() == {"WX:KMDW": cents(10)}
    assert event_from_ticker("KXHIGHNY-25DEC05-B32.5") == "KXHIGHNY-25DEC05"
    assert series_from_ticker("KXHIGHNY-25DEC05") == "KXHIGHNY"


@pytest.mark.parametrize(
    ("series", "group"),
    [
        ("KXHIGHNY", "WX:KNYC"),
        ("KXLOWTNYC", "WX:KNYC"),
        ("KXHIGHCHI", "WX:KMDW"),
        ("KXLOWTCHI", "WX:KMDW"),
        ("KXHIGHTATL", "WX:KATL"),
        ("KXLOWTATL", "WX:KATL"),
        ("KXFED", FED_GROUP),
        ("FED", FED_GROUP),
        ("KXFEDDECISION", FED_GROUP),
        ("KXBTC", "KXBTC"),
        ("KXLOWTXYZ", "KXLOWTXYZ"),
    ],
)
def test_correlation_group(series: str, group: str) -> None:
    assert correlation_group(series) == group


# --- NAV, peak, drawdown, the day ----------------------------------------------------------


def test_peak_and_drawdown() -> None:
    ctx = make_ctx()
    portfolio = ctx.portfolio
    hold(ctx, A1, Side.YES, cents(50), contracts(2_000))  # $1,000 at $0.50
    assert portfolio.nav() == portfolio.peak_nav == dollars(10_000)
    portfolio.set_mark(A1, cents(60))
    assert portfolio.peak_nav == dollars(10_200)
    assert portfolio.drawdown_ppm() == 0
    portfolio.set_mark(A1, cents(10))  # NAV 9,200: 9.8039...% below 10,200
    assert portfolio.peak_nav == dollars(10_200)
    assert portfolio.drawdown_ppm() == 98_040
    portfolio.set_mark(B1, cents(99))  # not held: NAV unchanged
    assert portfolio.nav() == dollars(9_200)


def test_peak_is_restored_not_lowered() -> None:
    portfolio = PortfolioView(Ledger(dollars(10_000)), peak_nav=dollars(12_000))
    assert portfolio.drawdown_ppm() == 166_667
    assert PortfolioView(Ledger(dollars(10_000)), peak_nav=1).peak_nav == dollars(10_000)


@pytest.mark.parametrize(
    ("now", "hour", "start"),
    [
        (NOW, 0, NOW - 16 * HOUR),  # 16:00Z
        (NOW, 16, NOW),
        (NOW - 1, 16, NOW - DAY),
        (NOW, 17, NOW - 23 * HOUR),
    ],
)
def test_day_start(now: int, hour: int, start: int) -> None:
    assert day_start_ns(now, hour) == start


def test_daily_pnl_resets_at_the_boundary() -> None:
    ctx = make_ctx()
    portfolio = ctx.portfolio
    portfolio.day_boundary_utc_hour = 16
    assert portfolio.roll_day(NOW - 1)
    hold(ctx, A1, Side.YES, cents(50), contracts(100))
    portfolio.set_mark(A1, cents(40))
    assert portfolio.daily_pnl() == -dollars(10)
    assert not portfolio.roll_day(NOW - 1)
    assert portfolio.roll_day(NOW)
    assert portfolio.day_start_ns == NOW
    assert portfolio.daily_pnl() == 0
    portfolio.set_mark(A1, cents(45))
    assert portfolio.daily_pnl() == dollars(5)


def test_restored_day_start() -> None:
    portfolio = PortfolioView(
        Ledger(dollars(10_000)), day_start_ns=NOW, day_start_nav=dollars(10_500)
    )
    assert not portfolio.roll_day(NOW + HOUR)
    assert portfolio.daily_pnl() == -dollars(500)


def test_settle_drops_the_mark() -> None:
    ctx = make_ctx()
    hold(ctx, A1, Side.YES, cents(40), contracts(10))
    settlement = ctx.portfolio.settle(A1, yes_won=True)
    assert settlement is not None
    assert settlement.payout == dollars(10)
    assert A1 not in ctx.portfolio.marks
    assert ctx.portfolio.nav() == dollars(10_006)
    assert ctx.portfolio.peak_nav == dollars(10_006)


def test_state_message() -> None:
    ctx = make_ctx()
    ctx.portfolio.on_fill(fill(A1, Side.YES, Action.BUY, cents(40), contracts(10)))
    # A1 was marked at $0.50 when the fill came: the peak was NAV $10,001
    ctx.portfolio.set_mark(A1, cents(30))
    state = ctx.portfolio.state(TradingState.REDUCING, True, {B1, A2}, NOW)
    assert state.cash == dollars(10_000) - dollars(4)
    assert state.nav == dollars(9_999)
    assert state.peak_nav == dollars(10_001)
    assert state.drawdown_ppm == 200  # 2 / 10,001 rounded up
    assert state.trading_state is TradingState.REDUCING
    assert state.recovery_mode
    assert state.positions == [
        Position(market=A1, yes=contracts(10), no=0, cost=dollars(4), mark=cents(30))
    ]
    assert state.halted_markets == [A2, B1]
    assert state.ts_ns == NOW
