"""Each pre-trade check at its boundary: exactly at the limit passes, one unit over fails."""

from __future__ import annotations

import itertools

import pytest

from shared.ledger import Ledger
from shared.messages import (
    Action,
    BookState,
    Fill,
    Leg,
    MarketInfo,
    OrderEvent,
    OrderStatus,
    PriceRange,
    Side,
    Signal,
)
from shared.money import ONE_DOLLAR, Count, Micros, cents, contracts, dollars
from shared.risk import (
    CHECK_ORDER,
    DEFAULT_LIMITS,
    CheckContext,
    PortfolioView,
    Reason,
    RiskLimits,
    check,
    crosses,
    usd,
)

NOW = 1_764_950_400 * 10**9  # 2025-12-05T16:00:00Z
SECOND = 10**9
HOUR = 3_600 * SECOND

EVENT_A = "KXHIGHNY-25DEC05"
EVENT_B = "KXHIGHNY-25DEC06"
EVENT_C = "KXLOWTNYC-25DEC05"
A1, A2, A3, A4 = (f"{EVENT_A}-T{k}" for k in (37, 38, 39, 40))
B1, B2 = f"{EVENT_B}-T37", f"{EVENT_B}-T38"
C1, C2 = f"{EVENT_C}-T30", f"{EVENT_C}-T31"
FED = "KXFED-26JAN-T4.00"
BTC = "KXBTC-25DEC05-T100000"
MARKETS = (A1, A2, A3, A4, B1, B2, C1, C2, FED, BTC)
_ids = itertools.count()
PRICE: Micros = cents(40)
COUNT: Count = contracts(10)
EDGE: Micros = cents(2)


def market_info(market: str, status: str = "active", close_ts_ns: int = NOW + HOUR) -> MarketInfo:
    event = market.rsplit("-", 1)[0]
    return MarketInfo(
        market=market,
        event=event,
        series=event.split("-", 1)[0],
        status=status,
        close_ts_ns=close_ts_ns,
        price_ranges=[PriceRange(0, ONE_DOLLAR, 100)],
    )


def leg(
    market: str = A1,
    side: Side = Side.YES,
    action: Action = Action.BUY,
    price: Micros = PRICE,
    count: Count = COUNT,
) -> Leg:
    return Leg(market=market, side=side, action=action, price=price, count=count)


def signal(
    *legs: Leg,
    signal_id: str | None = None,
    edge: Micros = EDGE,
    kelly: float = 0.05,
    expires_ns: int = NOW + SECOND,
) -> Signal:
    return Signal(
        signal_id=signal_id or f"sig{next(_ids)}",
        strategy="test",
        kind="edge",
        event=legs[0].market.rsplit("-", 1)[0] if legs else "",
        legs=list(legs),
        edge=edge,
        model_p=0.5,
        kelly_fraction=kelly,
        confidence=1.0,
        ev=cents(1),
        aroc=1.0,
        expires_ns=expires_ns,
    )


def make_ctx(limits: RiskLimits = DEFAULT_LIMITS, now_ns: int = NOW) -> CheckContext:
    """Every market open, VALID, marked at $0.50, the feed fresh, nothing held."""
    portfolio = PortfolioView(Ledger(limits.bankroll))
    ctx = CheckContext.create(portfolio, limits, now_ns)
    for market in MARKETS:
        portfolio.on_market(market_info(market))
        portfolio.set_mark(market, cents(50))
        ctx.books[market] = BookState.VALID
    ctx.feed_fresh = True
    return ctx


def fill(
    market: str, side: Side, action: Action, price: Micros, count: Count, fee: Micros = 0
) -> Fill:
    return Fill(
        trade_id=f"t{next(_ids)}",
        order_id="o",
        client_order_id="c",
        market=market,
        side=side,
        action=action,
        price=price,
        count=count,
        fee=fee,
        is_taker=True,
        ts_ns=NOW,
    )


def hold(ctx: CheckContext, market: str, side: Side, price: Micros, count: Count) -> None:
    """Buy without fees and mark at the price paid, so NAV stays where it was."""
    ctx.portfolio.on_fill(fill(market, side, Action.BUY, price, count))
    ctx.portfolio.set_mark(market, price if side is Side.YES else ONE_DOLLAR - price)


def rest(ctx: CheckContext, order: Leg, status: OrderStatus = OrderStatus.RESTING) -> str:
    coid = f"c{next(_ids)}"
    ctx.portfolio.on_order(
        OrderEvent(
            client_order_id=coid,
            order_id="o",
            market=order.market,
            status=status,
            leg=order,
            remaining=order.count,
        )
    )
    return coid


def reason(ctx: CheckContext, *legs: Leg, **kwargs: object) -> Reason:
    return check(signal(*legs, **kwargs), ctx).reason  # type: ignore[arg-type]


# --- the whole ---------------------------------------------------------------------------


def test_a_plain_signal_is_approved() -> None:
    ctx = make_ctx()
    verdict = check(signal(leg()), ctx)
    assert verdict.approved
    assert verdict.reason is Reason.APPROVED
    assert not verdict.quiet


def test_the_order_is_fixed_and_covers_every_reason() -> None:
    assert CHECK_ORDER == (
        Reason.MALFORMED,
        Reason.DUPLICATE,
        Reason.EXPIRED,
        Reason.HALTED,
        Reason.REDUCING_ONLY,
        Reason.MARKET_HALTED,
        Reason.UNKNOWN_MARKET,
        Reason.MARKET_CLOSED,
        Reason.BOOK_NOT_VALID,
        Reason.FEED_STALE,
        Reason.NO_MARK,
        Reason.NO_NAV,
        Reason.KELLY_NOT_POSITIVE,
        Reason.EDGE_NOT_POSITIVE,
        Reason.PRICE_SANITY,
        Reason.ORDER_NOTIONAL,
        Reason.OPEN_ORDERS,
        Reason.MARKET_POSITION,
        Reason.EXCHANGE_POSITION_LIMIT,
        Reason.EVENT_EXPOSURE,
        Reason.SERIES_EXPOSURE,
        Reason.CORRELATED_EXPOSURE,
        Reason.SELF_TRADE,
        Reason.SUBMIT_RATE,
    )
    assert set(CHECK_ORDER) == set(Reason) - {Reason.APPROVED}


def test_the_first_failing_check_decides() -> None:
    ctx = make_ctx()
    ctx.trading.kill("op", NOW)
    ctx.feed_fresh = False
    assert reason(ctx, leg("NOPE-1-X", price=dollars(1)), edge=0) is Reason.HALTED
    assert reason(ctx, leg(count=0)) is Reason.MALFORMED


def test_a_fresh_context_fails_closed() -> None:
    portfolio = PortfolioView(Ledger(DEFAULT_LIMITS.bankroll))
    ctx = CheckContext.create(portfolio, DEFAULT_LIMITS, NOW)
    portfolio.on_market(market_info(A1))
    assert reason(ctx, leg()) is Reason.BOOK_NOT_VALID
    ctx.books[A1] = BookState.VALID
    assert reason(ctx, leg()) is Reason.FEED_STALE
    ctx.feed_fresh = True
    assert reason(ctx, leg()) is Reason.NO_MARK
    portfolio.set_mark(A1, cents(40))
    assert reason(ctx, leg()) is Reason.APPROVED


def test_verdict_as_decision() -> None:
    ctx = make_ctx()
    sig = signal(leg(), edge=0)
    decision = check(sig, ctx).decision(sig.signal_id)
    assert (decision.signal_id, decision.approved, decision.reason) == (
        sig.signal_id,
        False,
        "edge_not_positive",
    )
    assert decision.detail == "edge $0.00"


# --- one check at a time -------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        leg(count=0),
        leg(count=-1),
        leg(price=-100),
        leg(price=ONE_DOLLAR + 100),
        leg(price=cents(40) + 1),
    ],
)
def test_malformed_legs(bad: Leg) -> None:
    ctx = make_ctx()
    assert reason(ctx, leg(A2), bad) is Reason.MALFORMED


def test_malformed_without_legs() -> None:
    assert reason(make_ctx()) is Reason.MALFORMED


def test_price_range_ends_are_not_malformed() -> None:
    ctx = make_ctx()
    assert reason(ctx, leg(price=ONE_DOLLAR)) is Reason.PRICE_SANITY
    assert reason(ctx, leg(price=0, count=1)) is Reason.APPROVED


def test_duplicate_is_quiet_and_check_does_not_record() -> None:
    ctx = make_ctx()
    sig = signal(leg(), signal_id="same")
    assert check(sig, ctx).approved
    assert not ctx.seen
    ctx.record(sig)
    verdict = check(sig, ctx)
    assert (verdict.approved, verdict.reason, verdict.quiet) == (False, Reason.DUPLICATE, True)
    assert ctx.seen == {"same": sig.expires_ns}


def test_forget_expired() -> None:
    ctx = make_ctx()
    ctx.record(signal(leg(), signal_id="old", expires_ns=NOW))
    ctx.record(signal(leg(), signal_id="new", expires_ns=NOW + 1))
    assert ctx.forget_expired(NOW) == 1
    assert set(ctx.seen) == {"new"}


def test_expired_at_its_instant() -> None:
    ctx = make_ctx()
    assert reason(ctx, leg(), expires_ns=NOW + 1) is Reason.APPROVED
    assert reason(ctx, leg(), expires_ns=NOW) is Reason.EXPIRED


def test_halted() -> None:
    ctx = make_ctx()
    hold(ctx, A1, Side.YES, cents(40), contracts(5))
    ctx.trading.halt("op", NOW, "lunch")
    assert reason(ctx, leg(action=Action.SELL, count=contracts(1))) is Reason.HALTED
    ctx.trading.resume("op", NOW)
    assert reason(ctx, leg()) is Reason.APPROVED


def test_reducing_lets_only_sells_of_what_is_held() -> None:
    ctx = make_ctx()
    hold(ctx, A1, Side.YES, cents(40), contracts(10))
    rest(ctx, leg(A1, Side.YES, Action.SELL, cents(60), contracts(4)))
    ctx.trading.reduce("op", NOW)
    sell = Action.SELL
    assert reason(ctx, leg(A1, Side.YES, sell, cents(45), contracts(6))) is Reason.APPROVED
    over = leg(A1, Side.YES, sell, cents(45), contracts(6) + 1)
    assert reason(ctx, over) is Reason.REDUCING_ONLY
    assert reason(ctx, leg(A1, Side.NO, sell, cents(45), 1)) is Reason.REDUCING_ONLY
    assert reason(ctx, leg(A2, count=1)) is Reason.REDUCING_ONLY
    halves = [leg(A1, Side.YES, sell, cents(45), contracts(3))] * 2
    assert reason(ctx, *halves) is Reason.APPROVED
    assert reason(ctx, *halves, leg(A1, Side.YES, sell, cents(46), 1)) is Reason.REDUCING_ONLY


def test_market_halted() -> None:
    ctx = make_ctx()
    ctx.trading.on_book_status(A2, BookState.INVALID, NOW, "seq gap")
    assert reason(ctx, leg(A1)) is Reason.APPROVED
    verdict = check(signal(leg(A1), leg(A2)), ctx)
    assert verdict.reason is Reason.MARKET_HALTED
    assert "seq gap" in verdict.detail


def test_unknown_market() -> None:
    ctx = make_ctx()
    assert reason(ctx, leg("KXHIGHNY-25DEC05-T99")) is Reason.UNKNOWN_MARKET


def test_market_closed_by_status_and_by_time() -> None:
    ctx = make_ctx()
    ctx.portfolio.on_market(market_info(A1, status="closed"))
    assert reason(ctx, leg(A1)) is Reason.MARKET_CLOSED
    ctx.portfolio.on_market(market_info(A1, close_ts_ns=NOW + 1))
    assert reason(ctx, leg(A1)) is Reason.APPROVED
    ctx.portfolio.on_market(market_info(A1, close_ts_ns=NOW))
    assert reason(ctx, leg(A1)) is Reason.MARKET_CLOSED


@pytest.mark.parametrize("state", [BookState.INVALID, BookState.STALE, None])
def test_book_not_valid(state: BookState | None) -> None:
    ctx = make_ctx()
    if state is None:
        del ctx.books[A1]
    else:
        ctx.books[A1] = state
    assert reason(ctx, leg(A1)) is Reason.BOOK_NOT_VALID


def test_feed_stale() -> None:
    ctx = make_ctx()
    ctx.feed_fresh = False
    assert reason(ctx, leg()) is Reason.FEED_STALE


def test_no_mark() -> None:
    ctx = make_ctx()
    ctx.portfolio.set_mark(A1, None)
    assert reason(ctx, leg(A1)) is Reason.NO_MARK


def test_no_nav_at_zero() -> None:
    limits = RiskLimits(bankroll=dollars(10))
    ctx = make_ctx(limits)
    hold(ctx, BTC, Side.YES, cents(50), contracts(20))
    ctx.portfolio.set_mark(BTC, 0)
    assert ctx.portfolio.nav() == 0
    assert reason(ctx, leg(A1, count=1)) is Reason.NO_NAV
    ctx.portfolio.set_mark(BTC, 100)  # 20 x $0.0001
    assert ctx.portfolio.nav() == 2_000
    assert reason(ctx, leg(A1, count=1)) is Reason.EVENT_EXPOSURE


@pytest.mark.parametrize("kelly", [0.0, -0.1, float("nan"), float("inf")])
def test_kelly_not_positive(kelly: float) -> None:
    assert reason(make_ctx(), leg(), kelly=kelly) is Reason.KELLY_NOT_POSITIVE


def test_kelly_just_positive() -> None:
    assert reason(make_ctx(), leg(), kelly=1e-12) is Reason.APPROVED


def test_edge_at_zero() -> None:
    ctx = make_ctx()
    assert reason(ctx, leg(), edge=0) is Reason.EDGE_NOT_POSITIVE
    assert reason(ctx, leg(), edge=1) is Reason.APPROVED


def test_buy_price_sanity() -> None:
    ctx = make_ctx()
    assert reason(ctx, leg(price=cents(99), count=1)) is Reason.PRICE_SANITY
    assert reason(ctx, leg(price=cents(99) - 100, count=1)) is Reason.APPROVED


def test_sell_price_sanity() -> None:
    ctx = make_ctx()
    hold(ctx, A1, Side.NO, cents(5), contracts(1))
    ctx.portfolio.set_mark(A1, cents(50))
    sell = Action.SELL
    assert reason(ctx, leg(A1, Side.NO, sell, cents(1), 1)) is Reason.PRICE_SANITY
    assert reason(ctx, leg(A1, Side.NO, sell, cents(1) + 100, 1)) is Reason.APPROVED


def test_order_notional_at_the_limit() -> None:
    ctx = make_ctx()
    exactly = leg(price=cents(50), count=contracts(1_000))  # $500.00
    assert reason(ctx, exactly) is Reason.APPROVED
    tight = make_ctx(RiskLimits(max_order_notional=dollars(500) - 1))
    verdict = check(signal(exactly), tight)
    assert verdict.reason is Reason.ORDER_NOTIONAL
    assert "notional $500.00 > $499.999999" in verdict.detail


def test_open_orders_at_the_limit() -> None:
    ctx = make_ctx(RiskLimits(max_open_orders=3))
    rest(ctx, leg(A3, price=cents(10), count=1))
    rest(ctx, leg(A4, price=cents(10), count=1), OrderStatus.SENT)
    assert reason(ctx, leg(A1)) is Reason.APPROVED
    assert reason(ctx, leg(A1), leg(A2)) is Reason.OPEN_ORDERS
    rest(ctx, leg(B1, price=cents(10), count=1), OrderStatus.UNKNOWN)
    assert reason(ctx, leg(A1)) is Reason.OPEN_ORDERS


def test_market_contracts_at_the_limit() -> None:
    ctx = make_ctx()
    hold(ctx, A1, Side.YES, cents(2), contracts(600))
    rest(ctx, leg(A1, price=cents(1) + 100, count=contracts(300)))
    rest(ctx, leg(A1, action=Action.SELL, price=cents(90), count=contracts(100)))
    rest(ctx, leg(A1, Side.NO, price=cents(10), count=contracts(500)))
    exactly = leg(A1, price=cents(2), count=contracts(100))
    assert reason(ctx, exactly) is Reason.APPROVED
    assert reason(ctx, leg(A1, price=cents(2), count=contracts(100) + 1)) is (
        Reason.MARKET_POSITION
    )
    split = [leg(A1, price=cents(2), count=contracts(50))] * 2
    assert reason(ctx, *split) is Reason.APPROVED
    assert reason(ctx, *split, leg(A1, price=cents(1), count=1)) is Reason.MARKET_POSITION


def test_exchange_position_limit_counts_both_sides() -> None:
    limits = RiskLimits(max_market_contracts=contracts(1_000), exchange_position_limit=150_000)
    ctx = make_ctx(limits)
    hold(ctx, A1, Side.YES, cents(2), contracts(800))
    rest(ctx, leg(A1, Side.NO, price=cents(2), count=contracts(600)))
    exactly = leg(A1, Side.NO, price=cents(2), count=contracts(100))
    assert reason(ctx, exactly) is Reason.APPROVED
    over = leg(A1, Side.NO, price=cents(2), count=contracts(100) + 1)
    assert reason(ctx, over) is Reason.EXCHANGE_POSITION_LIMIT


def test_selling_more_than_is_free_to_sell() -> None:
    ctx = make_ctx()
    hold(ctx, A1, Side.YES, cents(40), contracts(10))
    rest(ctx, leg(A1, action=Action.SELL, price=cents(70), count=contracts(4)))
    sell = Action.SELL
    assert reason(ctx, leg(A1, Side.YES, sell, cents(45), contracts(6))) is Reason.APPROVED
    over = leg(A1, Side.YES, sell, cents(45), contracts(6) + 1)
    assert reason(ctx, over) is Reason.MARKET_POSITION
    assert reason(ctx, leg(A2, Side.YES, sell, cents(45), 1)) is Reason.MARKET_POSITION


def test_event_exposure_at_the_limit() -> None:
    ctx = make_ctx()  # NAV $10,000: event limit $2,000
    hold(ctx, A1, Side.YES, cents(50), contracts(1_000))  # $500 cost
    hold(ctx, A2, Side.NO, cents(50), contracts(1_000))  # $500 cost
    rest(ctx, leg(A3, price=cents(50), count=contracts(1_000)))  # $500 open buy
    rest(ctx, leg(A3, action=Action.SELL, price=cents(90), count=1))  # sells add nothing
    assert ctx.portfolio.nav() == dollars(10_000)
    exactly = leg(A4, price=cents(50), count=contracts(1_000))  # $500
    assert reason(ctx, exactly) is Reason.APPROVED
    one_micro = leg(FED, price=100, count=1)
    assert reason(ctx, exactly, leg(A1, Side.NO, price=100, count=1)) is Reason.EVENT_EXPOSURE
    assert reason(ctx, exactly, one_micro) is Reason.APPROVED
    verdict = check(signal(exactly, leg(A1, Side.NO, price=100, count=1)), ctx)
    assert verdict.detail == (
        "event KXHIGHNY-25DEC05 exposure $2,000.000001 > 20% of NAV $10,000.00"
    )


def test_exposure_limit_follows_nav() -> None:
    ctx = make_ctx()
    hold(ctx, A1, Side.YES, cents(50), contracts(1_000))
    hold(ctx, A2, Side.YES, cents(50), contracts(1_000))
    hold(ctx, A3, Side.YES, cents(50), contracts(1_000))
    assert reason(ctx, leg(A4, price=cents(50), count=contracts(1_000))) is Reason.APPROVED
    ctx.portfolio.set_mark(BTC, cents(50))
    ctx.portfolio.set_mark(A1, cents(50) - 100)  # NAV $9,999.90: limit $1,999.98
    assert reason(ctx, leg(A4, price=cents(50), count=contracts(1_000))) is (Reason.EVENT_EXPOSURE)


def test_series_exposure_at_the_limit() -> None:
    ctx = make_ctx()
    hold(ctx, A1, Side.YES, cents(50), contracts(1_000))
    hold(ctx, A2, Side.YES, cents(50), contracts(1_000))  # event A, series: $1,000
    two = [leg(B1, price=cents(50), count=contracts(1_000))]
    two.append(leg(B2, price=cents(50), count=contracts(1_000)))  # event B: $1,000
    assert reason(ctx, *two) is Reason.APPROVED
    assert reason(ctx, *two, leg(B1, Side.NO, price=100, count=1)) is Reason.SERIES_EXPOSURE


def test_correlated_exposure_at_the_limit() -> None:
    ctx = make_ctx()  # group WX:KNYC limit $2,500
    hold(ctx, A1, Side.YES, cents(50), contracts(1_000))
    hold(ctx, A2, Side.YES, cents(50), contracts(1_000))  # KXHIGHNY $1,000
    hold(ctx, C1, Side.YES, cents(50), contracts(1_000))
    hold(ctx, C2, Side.YES, cents(50), contracts(1_000))  # KXLOWTNYC $1,000
    exactly = leg(B1, price=cents(50), count=contracts(1_000))  # KXHIGHNY $1,500
    assert reason(ctx, exactly) is Reason.APPROVED
    over = leg(B2, price=100, count=1)
    verdict = check(signal(exactly, over), ctx)
    assert verdict.reason is Reason.CORRELATED_EXPOSURE
    assert verdict.detail.startswith("group WX:KNYC exposure $2,500.000001 > 25% of NAV")


def test_unrelated_exposure_does_not_count() -> None:
    ctx = make_ctx()
    for market in (A1, A2, A3):
        hold(ctx, market, Side.YES, cents(50), contracts(1_000))
    assert reason(ctx, leg(FED, price=cents(50), count=contracts(1_000))) is Reason.APPROVED
    assert reason(ctx, leg(A4, price=cents(50), count=contracts(1_000))) is Reason.APPROVED


@pytest.mark.parametrize(
    ("resting", "crossing", "passing"),
    [
        (
            leg(A1, Side.YES, Action.SELL, cents(40), 1),
            leg(A1, Side.YES, Action.BUY, cents(40), 1),
            leg(A1, Side.YES, Action.BUY, cents(40) - 100, 1),
        ),
        (
            leg(A1, Side.NO, Action.BUY, cents(60), 1),
            leg(A1, Side.YES, Action.BUY, cents(40), 1),
            leg(A1, Side.YES, Action.BUY, cents(40) - 100, 1),
        ),
        (
            leg(A1, Side.YES, Action.BUY, cents(40), 1),
            leg(A1, Side.YES, Action.SELL, cents(40), 1),
            leg(A1, Side.YES, Action.SELL, cents(40) + 100, 1),
        ),
        (
            leg(A1, Side.YES, Action.BUY, cents(40), 1),
            leg(A1, Side.NO, Action.BUY, cents(60), 1),
            leg(A1, Side.NO, Action.BUY, cents(60) - 100, 1),
        ),
        (
            leg(A1, Side.NO, Action.BUY, cents(60), 1),
            leg(A1, Side.NO, Action.SELL, cents(60), 1),
            leg(A1, Side.NO, Action.SELL, cents(60) + 100, 1),
        ),
        (
            leg(A1, Side.NO, Action.SELL, cents(60), 1),
            leg(A1, Side.NO, Action.BUY, cents(60), 1),
            leg(A1, Side.NO, Action.BUY, cents(60) - 100, 1),
        ),
    ],
)
def test_self_trade_at_the_crossing_price(resting: Leg, crossing: Leg, passing: Leg) -> None:
    ctx = make_ctx()
    hold(ctx, A1, Side.YES, cents(50), contracts(5))
    hold(ctx, A1, Side.NO, cents(50), contracts(5))
    rest(ctx, resting)
    assert reason(ctx, crossing) is Reason.SELF_TRADE
    assert reason(ctx, passing) is Reason.APPROVED
    assert crosses(crossing, resting)
    assert not crosses(passing, resting)


def test_self_trade_needs_the_same_market() -> None:
    assert not crosses(leg(A1, price=cents(50)), leg(A2, Side.NO, price=cents(50)))


def test_self_trade_within_one_signal() -> None:
    ctx = make_ctx()
    yes = leg(A1, Side.YES, price=cents(40))
    assert reason(ctx, yes, leg(A1, Side.NO, price=cents(60))) is Reason.SELF_TRADE
    assert reason(ctx, yes, leg(A1, Side.NO, price=cents(60) - 100)) is Reason.APPROVED


def test_submit_rate_takes_a_token_per_leg_only_on_approval() -> None:
    ctx = make_ctx(RiskLimits(submit_rate_per_s=2.0, submit_burst=3))
    assert reason(ctx, leg(A1), leg(A2)) is Reason.APPROVED
    assert reason(ctx, leg(A1), edge=0) is Reason.EDGE_NOT_POSITIVE
    assert reason(ctx, leg(A1), leg(A2)) is Reason.SUBMIT_RATE
    assert reason(ctx, leg(A1)) is Reason.APPROVED
    assert reason(ctx, leg(A1)) is Reason.SUBMIT_RATE
    ctx.now_ns += SECOND // 2 - 1
    assert reason(ctx, leg(A1), expires_ns=NOW + HOUR) is Reason.SUBMIT_RATE
    ctx.now_ns += 1
    assert reason(ctx, leg(A1), expires_ns=NOW + HOUR) is Reason.APPROVED


def test_usd() -> None:
    assert usd(dollars(2_150)) == "$2,150.00"
    assert usd(1) == "$0.000001"
    assert usd(-cents(5)) == "-$0.05"
    assert usd(dollars(1_234_567) + 123_400) == "$1,234,567.1234"
