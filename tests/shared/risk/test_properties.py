"""Properties over random streams: approvals keep every limit, the ledger conserves money,
and a kill stops everything until an operator resumes."""

from __future__ import annotations

import itertools
from fractions import Fraction
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.ledger import Ledger
from shared.messages import (
    Action,
    BookState,
    Leg,
    OrderEvent,
    OrderStatus,
    Side,
    Signal,
)
from shared.money import ONE_DOLLAR, Count, Micros, cents, contracts, dollars, notional
from shared.risk import CheckContext, RiskLimits, TradingStateMachine, check
from tests.shared.risk.test_checks import (
    A1,
    A2,
    B1,
    BTC,
    C1,
    FED,
    HOUR,
    NOW,
    SECOND,
    fill,
    leg,
    make_ctx,
    signal,
)

# Tight and nested (order < event < series < group) so that every limit is the binding one
# in some streams: with any one limit check removed, this property usually fails in 200 examples.
LIMITS = RiskLimits(
    bankroll=dollars(1_000),
    max_event_exposure_frac=0.04,
    max_series_exposure_frac=0.05,
    max_correlated_exposure_frac=0.06,
    max_order_notional=dollars(35),
    max_open_orders=6,
    max_market_contracts=contracts(300),
    exchange_position_limit=contracts(400),
    submit_rate_per_s=1_000.0,
    submit_burst=1_000,
)
MARKETS = (A1, A2, B1, C1, FED, BTC)
SERIES = {A1: "KXHIGHNY", A2: "KXHIGHNY", B1: "KXHIGHNY", C1: "KXLOWTNYC", FED: "KXFED"}
GROUP = {A1: "NYC", A2: "NYC", B1: "NYC", C1: "NYC", FED: "FED", BTC: "BTC"}
LATER = NOW + 10 * HOUR
_coids = itertools.count()
T = TypeVar("T")


def mostly(good: st.SearchStrategy[T], bad: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """``good`` 19 times in 20: enough bad input to test denials, enough good to pass."""
    return st.sampled_from([True] * 19 + [False]).flatmap(lambda ok: good if ok else bad)


prices = mostly(
    st.one_of(
        st.integers(30, 70).map(cents),
        st.integers(1, 98).map(cents),
        st.sampled_from([0, 100, cents(1), cents(2), cents(98), cents(99), ONE_DOLLAR - 100]),
        st.integers(1, 9_999).map(lambda tick: tick * 100),
    ),
    st.integers(-100, ONE_DOLLAR + 100),
)
legs = st.builds(
    leg,
    market=st.sampled_from([A1, A2, B1, B1, C1, C1, FED, BTC]),
    side=st.sampled_from(Side),
    action=st.sampled_from([Action.BUY, Action.BUY, Action.SELL]),
    price=prices,
    count=mostly(
        st.one_of(st.integers(contracts(20), contracts(120)), st.integers(1, contracts(300))),
        st.integers(-1, contracts(400)),
    ),
)
signal_ops = st.tuples(
    st.just("signal"),
    mostly(st.lists(legs, min_size=1, max_size=3), st.just([])),
    mostly(st.integers(1, cents(10)), st.integers(-1, 0)),
    mostly(st.floats(0.001, 1.0), st.sampled_from([0.0, -0.5, float("nan")])),
)
fill_ops = st.tuples(st.just("fill"), st.integers(0, 99), st.integers(1, 100), st.integers(0, 3))
cancel_ops = st.tuples(st.just("cancel"), st.integers(0, 99))
mark_ops = st.tuples(st.just("mark"), st.sampled_from(MARKETS), st.integers(0, 10_000))
operations = st.lists(
    st.one_of(signal_ops, signal_ops, signal_ops, fill_ops, fill_ops, cancel_ops, mark_ops),
    min_size=20,
    max_size=50,
)


class Book:
    """The test's own record of what is held and open, to judge approvals independently."""

    def __init__(self, ctx: CheckContext) -> None:
        self.ctx = ctx
        self.orders: dict[str, Leg] = {}

    def send(self, order: Leg) -> None:
        coid = f"p{next(_coids)}"
        self.orders[coid] = order
        self._event(coid, order, OrderStatus.RESTING, order.count)

    def fill(self, pick: int, percent: int, fee_cents: int) -> None:
        if not self.orders:
            return
        coid = sorted(self.orders)[pick % len(self.orders)]
        order = self.orders[coid]
        count = max(1, order.count * percent // 100)
        done = fill(order.market, order.side, order.action, order.price, count, cents(fee_cents))
        self.ctx.portfolio.on_fill(done)  # a LedgerError here: risk let us oversell
        remaining = order.count - count
        status = OrderStatus.PARTIAL if remaining else OrderStatus.FILLED
        self._event(coid, order, status, remaining)
        if remaining:
            self.orders[coid] = Leg(
                market=order.market,
                side=order.side,
                action=order.action,
                price=order.price,
                count=remaining,
            )
        else:
            del self.orders[coid]

    def cancel(self, pick: int) -> None:
        if self.orders:
            coid = sorted(self.orders)[pick % len(self.orders)]
            self._event(coid, self.orders.pop(coid), OrderStatus.CANCELED, 0)

    def _event(self, coid: str, order: Leg, status: OrderStatus, remaining: Count) -> None:
        self.ctx.portfolio.on_order(
            OrderEvent(
                client_order_id=coid,
                order_id="o",
                market=order.market,
                status=status,
                leg=order,
                remaining=remaining,
            )
        )

    def open(self, market: str, side: Side, action: Action) -> Count:
        return sum(
            o.count
            for o in self.orders.values()
            if (o.market, o.side, o.action) == (market, side, action)
        )

    def exposure(self, key: dict[str, str] | None, market: str) -> Micros:
        """Cost held plus open buys over the markets sharing ``market``'s key."""

        def same(other: str) -> bool:
            if key is None:
                return other.rsplit("-", 1)[0] == market.rsplit("-", 1)[0]
            return key.get(other, other) == key.get(market, market)

        ledger = self.ctx.portfolio.ledger
        held = sum(h.yes.cost + h.no.cost for m, h in ledger.holdings.items() if same(m))
        buys = sum(
            notional(o.price, o.count)
            for o in self.orders.values()
            if o.action is Action.BUY and same(o.market)
        )
        return held + buys


def assert_within_limits(book: Book, approved: Signal, nav: Micros) -> None:
    limits, ledger = LIMITS, book.ctx.portfolio.ledger
    assert nav > 0
    assert len(book.orders) <= limits.max_open_orders
    for order in approved.legs:
        assert order.count > 0
        assert notional(order.price, order.count) <= limits.max_order_notional
        if order.action is Action.BUY:
            assert order.price < limits.max_buy_price
        else:
            assert order.price > limits.min_sell_price
    for market in {o.market for o in approved.legs if o.action is Action.BUY}:
        sides = {
            side: ledger.held(market, side) + book.open(market, side, Action.BUY) for side in Side
        }
        assert max(sides.values()) <= limits.max_market_contracts
        assert sum(sides.values()) <= limits.exchange_position_limit
        for key, fraction in (
            (None, limits.max_event_exposure_frac),
            (SERIES, limits.max_series_exposure_frac),
            (GROUP, limits.max_correlated_exposure_frac),
        ):
            assert book.exposure(key, market) <= nav * Fraction(str(fraction))
    for market in MARKETS:
        for side in Side:
            assert book.open(market, side, Action.SELL) <= ledger.held(market, side)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_no_approved_signal_breaks_a_limit(ops: list[tuple[object, ...]]) -> None:
    ctx = make_ctx(LIMITS)
    book = Book(ctx)
    for op in ops:
        match op:
            case ("signal", list() as signal_legs, int() as edge, float() as kelly):
                sig = signal(*signal_legs, edge=edge, kelly=kelly, expires_ns=LATER)
                verdict = check(sig, ctx)
                ctx.record(sig)
                if verdict.approved:
                    nav = ctx.portfolio.nav()
                    for order in sig.legs:
                        book.send(order)
                    assert_within_limits(book, sig, nav)
            case ("fill", int() as pick, int() as percent, int() as fee):
                book.fill(pick, percent, fee)
            case ("cancel", int() as pick):
                book.cancel(pick)
            case ("mark", str() as market, int() as tick):
                ctx.portfolio.set_mark(market, tick * 100)


trades = st.lists(
    st.tuples(
        st.sampled_from(MARKETS[:3]),
        st.sampled_from(Side),
        st.sampled_from(Action),
        st.integers(0, 10_000).map(lambda tick: tick * 100),
        st.integers(1, contracts(50)),
        st.integers(0, cents(50)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(trades, st.lists(st.booleans(), min_size=3, max_size=3))
def test_ledger_conserves_money(
    sequence: list[tuple[str, Side, Action, int, int, int]], outcomes: list[bool]
) -> None:
    bankroll = dollars(1_000)
    ledger = Ledger(bankroll)
    fills = []
    for market, side, action, price, wanted, fee in sequence:
        count = wanted if action is Action.BUY else min(wanted, ledger.held(market, side))
        if count == 0:
            continue
        fills.append(fill(market, side, action, price, count, fee))
        assert ledger.apply(fills[-1])
        assert ledger.cash + ledger.cost_basis() == bankroll + ledger.realized - ledger.fees
    settlements = list(zip(MARKETS[:3], outcomes, strict=True))
    for market, yes_won in settlements:
        ledger.settle(market, yes_won)
    assert not ledger.holdings
    assert ledger.cash == bankroll + ledger.realized - ledger.fees
    assert ledger.realized == sum(ledger.realized_in(m) for m in MARKETS)
    assert ledger.fees == sum(ledger.fees_in(m) for m in MARKETS)
    replayed = Ledger.replay(bankroll, fills, settlements)
    assert (replayed.cash, replayed.realized, replayed.fees) == (
        ledger.cash,
        ledger.realized,
        ledger.fees,
    )


halt_ops = st.one_of(
    st.tuples(st.just("feed"), st.booleans(), st.integers(0, 10)),
    st.tuples(st.just("api"), st.booleans(), st.integers(1, 30)),
    st.tuples(st.just("book"), st.sampled_from(BookState)),
    st.tuples(st.just("daily"), st.integers(-dollars(300), dollars(300))),
    st.tuples(st.just("drawdown"), st.integers(0, 200_000)),
    st.tuples(st.just("operator"), st.sampled_from(["halt", "reduce", "halt_market", "kill"])),
    st.tuples(
        st.just("restart"),
    ),
    st.tuples(st.just("clock"), st.integers(0, 120)),
)


def good_signal() -> Signal:
    return signal(leg(A1, price=cents(40), count=contracts(1)), expires_ns=LATER)


@settings(max_examples=200, deadline=None)
@given(st.lists(halt_ops, max_size=25))
def test_nothing_passes_between_kill_and_resume(ops: list[tuple[object, ...]]) -> None:
    ctx = make_ctx(LIMITS)
    assert check(good_signal(), ctx).approved
    ctx.trading.kill("op", NOW)
    for op in ops:
        now = ctx.now_ns
        match op:
            case ("feed", bool() as fresh, int() as age_s):
                ctx.trading.on_feed("kalshi", fresh, now - age_s * SECOND, now)
            case ("api", bool() as ok, int() as times):
                for _ in range(times):
                    ctx.trading.on_api_result(ok, now)
            case ("book", BookState() as state):
                ctx.trading.on_book_status(A1, state, now)
            case ("daily", int() as pnl):
                ctx.trading.on_daily_pnl(pnl, dollars(1_000), now)
            case ("drawdown", int() as drawdown):
                ctx.trading.on_drawdown(drawdown, now)
            case ("operator", "halt_market"):
                ctx.trading.halt_market(A1, "op", now)
            case ("operator", str() as what):
                getattr(ctx.trading, what)("op", now)
            case ("restart",):
                ctx.trading = TradingStateMachine.from_record(LIMITS, ctx.trading.to_record())
            case ("clock", int() as seconds):
                ctx.now_ns += seconds * SECOND
                ctx.trading.on_clock(ctx.now_ns)
        assert not check(good_signal(), ctx).approved
    now = ctx.now_ns = ctx.now_ns + 61 * SECOND
    ctx.trading.resume("op", now)
    ctx.trading.on_clock(now)
    ctx.trading.on_feed("kalshi", True, now, now)
    ctx.trading.on_book_status(A1, BookState.VALID, now)
    ctx.trading.resume_market(A1, "op", now)
    assert check(good_signal(), ctx).approved
