"""The guardian on constructed inputs: decisions, intents, halts, and limits under bursts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.risk.guardian import Guardian
from shared.ids import client_order_id
from shared.messages import (
    Action,
    BookSnapshot,
    BookState,
    BookStatus,
    Heartbeat,
    Leg,
    Level,
    MarketInfo,
    OrderEvent,
    OrderStatus,
    PriceRange,
    Route,
    Side,
    Signal,
    TradingState,
)
from shared.money import ONE_DOLLAR, cents, contracts, notional
from shared.risk import Reason, RiskLimits

NOW = 1_764_950_400 * 10**9
S = 10**9
EVENT = "KXHIGHNY-25DEC05"
MARKETS = [f"{EVENT}-B{n}" for n in range(4)]


def info(market: str) -> MarketInfo:
    return MarketInfo(
        market=market,
        event=market.rsplit("-", 1)[0],
        series=market.split("-", 1)[0],
        status="active",
        close_ts_ns=NOW + 86_400 * S,
        price_ranges=[PriceRange(0, ONE_DOLLAR, cents(1))],
        mutually_exclusive=True,
    )


def beat(fresh: bool = True, ts_ns: int = NOW) -> Heartbeat:
    return Heartbeat(
        service="ingest",
        instance="i1",
        version="1",
        role="active",
        ts_ns=ts_ns,
        info={"kalshi_feed": "fresh" if fresh else "stale"},
    )


def snapshot(market: str) -> BookSnapshot:
    return BookSnapshot(
        market=market,
        event=market.rsplit("-", 1)[0],
        yes_bids=[Level(cents(30), contracts(100))],
        no_bids=[Level(cents(60), contracts(100))],
        seq=1,
    )


def guardian(limits: RiskLimits | None = None, *, maker: tuple[str, ...] = ()) -> Guardian:
    g = Guardian.fresh(limits or RiskLimits(), NOW)
    g.maker_strategies = frozenset(maker)
    for market in MARKETS:
        g.on_market(info(market))
    g.on_market_data([snapshot(m) for m in MARKETS], NOW)
    g.on_heartbeat(beat(), NOW)
    return g


def signal(n: int, *legs: Leg, strategy: str = "arbitrage") -> Signal:
    return Signal(
        signal_id=f"sig-{n}",
        strategy=strategy,
        kind="atomic_yes",
        event=EVENT,
        legs=list(legs),
        edge=cents(3),
        model_p=1.0,
        kelly_fraction=0.05,
        confidence=1.0,
        ev=cents(30),
        aroc=1.0,
        expires_ns=NOW + 60 * S,
    )


def buy(market: str, price: int = 40, count: int = 10) -> Leg:
    return Leg(
        market=market, side=Side.YES, action=Action.BUY, price=cents(price), count=contracts(count)
    )


def test_an_approved_signal_becomes_an_intent_with_deterministic_order_ids():
    decision = guardian().decide(signal(1, buy(MARKETS[0]), buy(MARKETS[1])), NOW)
    assert decision.verdict.approved and decision.intent is not None
    intent = decision.intent
    assert intent.route is Route.SNIPER and intent.signal_id == "sig-1"
    assert [o.client_order_id for o in intent.orders] == [
        client_order_id("sig-1", 0),
        client_order_id("sig-1", 1),
    ]
    assert [o.leg for o in intent.orders] == [buy(MARKETS[0]), buy(MARKETS[1])]


def test_single_leg_signals_of_maker_strategies_rest_as_maker_orders():
    g = guardian(maker=("weather",))
    decision = g.decide(signal(1, buy(MARKETS[0]), strategy="weather"), NOW)
    assert decision.intent is not None and decision.intent.route is Route.MAKER


def test_a_repeated_signal_id_is_a_quiet_duplicate_with_no_intent():
    g = guardian()
    g.decide(signal(1, buy(MARKETS[0])), NOW)
    again = g.decide(signal(1, buy(MARKETS[0])), NOW)
    assert again.verdict.reason is Reason.DUPLICATE and again.verdict.quiet
    assert again.intent is None


def test_approved_orders_count_as_open_before_execution_reports_them():
    limits = RiskLimits(max_open_orders=2)
    g = guardian(limits)
    assert g.decide(signal(1, buy(MARKETS[0]), buy(MARKETS[1])), NOW).verdict.approved
    refused = g.decide(signal(2, buy(MARKETS[2])), NOW)
    assert refused.verdict.reason is Reason.OPEN_ORDERS
    # once execution reports both legs canceled, there is room again
    for order in g.intent(signal(1, buy(MARKETS[0]), buy(MARKETS[1]))).orders:
        canceled = OrderEvent(
            client_order_id=order.client_order_id,
            order_id="x",
            market=order.leg.market,
            status=OrderStatus.CANCELED,
            leg=order.leg,
        )
        g.on_order(canceled, NOW)
    assert g.decide(signal(3, buy(MARKETS[2])), NOW).verdict.approved


def test_without_a_fresh_ingest_heartbeat_nothing_is_approved():
    g = guardian()
    g.clock(NOW + 6 * S)  # the last heartbeat is 6 s old: the feed counts as stale
    late = g.decide(signal(1, buy(MARKETS[0])), NOW + 6 * S)
    assert late.verdict.reason in {Reason.FEED_STALE, Reason.HALTED}
    assert g.trading.system_state is TradingState.HALTED
    g.on_heartbeat(beat(ts_ns=NOW + 7 * S), NOW + 7 * S)
    assert g.trading.system_state is TradingState.ACTIVE
    assert g.decide(signal(2, buy(MARKETS[0])), NOW + 7 * S).verdict.approved


def test_a_stale_report_from_ingest_halts_everything():
    g = guardian()
    g.on_heartbeat(beat(fresh=False, ts_ns=NOW + S), NOW + S)
    assert g.trading.system_state is TradingState.HALTED
    assert not g.decide(signal(1, buy(MARKETS[0])), NOW + S).verdict.approved


def test_an_invalid_book_halts_its_market_until_valid_again():
    g = guardian()
    bad = BookStatus(market=MARKETS[0], event=EVENT, state=BookState.INVALID, reason="gap")
    transitions = g.on_market_data([bad], NOW)
    assert [t.what for t in transitions] == ["market_halt"]
    refused = g.decide(signal(1, buy(MARKETS[0])), NOW)
    assert refused.verdict.reason is Reason.MARKET_HALTED
    assert g.decide(signal(2, buy(MARKETS[1])), NOW).verdict.approved  # others trade on
    good = BookStatus(market=MARKETS[0], event=EVENT, state=BookState.VALID)
    g.on_market_data([good, snapshot(MARKETS[0])], NOW)
    assert g.decide(signal(3, buy(MARKETS[0])), NOW).verdict.approved


def test_exchange_api_errors_above_five_percent_halt_trading():
    g = guardian()
    leg = buy(MARKETS[0])

    def event(n: int, reason: str) -> OrderEvent:
        status = OrderStatus.REJECTED if reason else OrderStatus.RESTING
        return OrderEvent(
            client_order_id=f"c{n}",
            order_id="",
            market=leg.market,
            status=status,
            leg=leg,
            remaining=leg.count,
            reason=reason,
        )

    for n in range(19):
        g.on_order(event(n, ""), NOW)
    g.on_order(event(19, "api_error: 503"), NOW)  # 1 of 20 = 5%: not above
    assert g.trading.system_state is TradingState.ACTIVE
    g.on_order(event(20, "api_error: timeout"), NOW)  # 2 of 21 > 5%
    assert g.trading.system_state is TradingState.HALTED


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(2, 98), st.integers(1, 400)),
        min_size=1,
        max_size=40,
    )
)
def test_a_burst_of_approvals_never_breaks_the_event_limit_before_execution_reports(orders):
    limits = RiskLimits(max_market_contracts=contracts(100_000), submit_burst=1000)
    g = guardian(limits)
    approved_notional = 0
    for n, (market, price, count) in enumerate(orders):
        decision = g.decide(signal(n, buy(MARKETS[market], price, count)), NOW)
        if decision.verdict.approved:
            approved_notional += notional(cents(price), contracts(count))
    nav = g.portfolio.nav()
    assert approved_notional <= nav * limits.max_event_exposure_frac
