"""Matching properties under random order flow (hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.simulator.engine import Exchange, OrderError
from services.simulator.model import OrderStatus, SelfTradePrevention, TimeInForce
from shared.money import COUNT_PER_CONTRACT, ONE_DOLLAR, dollars

from .engine_kit import make_exchange, order

ACCOUNTS = ("alice", "bob", "carol")
MARKETS = ("KXTEST-26JAN01-A", "KXTEST-26JAN01-B")

place_op = st.tuples(
    st.just("place"),
    st.sampled_from(ACCOUNTS),
    st.sampled_from(MARKETS),
    st.sampled_from(["bid", "ask"]),
    st.integers(1, 99),
    st.integers(1, 1_000),  # hundredths
    st.sampled_from(list(TimeInForce)),
    st.sampled_from(list(SelfTradePrevention)),
    st.booleans(),
)
other_op = st.tuples(
    st.sampled_from(["cancel", "amend", "decrease", "tick"]),
    st.integers(0, 10_000),
    st.integers(1, 99),
    st.integers(1, 1_000),
)
operations = st.lists(st.one_of(place_op, place_op, other_op), max_size=50)


def conserved_total(ex: Exchange) -> int:
    open_interest = sum(m.open_interest for m in ex.markets.values())
    return (
        ex.ledger.total_cash()
        + ex.ledger.fees_collected
        + open_interest * (ONE_DOLLAR // COUNT_PER_CONTRACT)
    )


def check_invariants(ex: Exchange, start_total: int) -> None:
    for ticker, market in ex.markets.items():
        book = ex.book(ticker)
        assert not book.is_crossed(), f"{ticker} crossed"
        positions = [a.holding(ticker) for a in ex.ledger.accounts.values()]
        assert sum(positions) == 0, "YES held must equal NO held"
        assert market.open_interest == sum(p for p in positions if p > 0)
        for leg in (book.yes, book.no):
            for price, level in leg.levels.items():
                assert level, "empty level left on the book"
                assert leg.totals[price] == sum(o.remaining for o in level.values())
                assert all(
                    o.remaining > 0 and o.status is OrderStatus.RESTING for o in level.values()
                )
    assert conserved_total(ex) == start_total, "cash + fees + collateral must be conserved"
    for account in ex.ledger.accounts.values():
        assert account.cash >= 0
        resting = sum(
            o.reserved for o in account.orders.values() if o.status is OrderStatus.RESTING
        )
        assert account.reserved == resting


def apply(ex: Exchange, op: tuple[object, ...], clock) -> None:  # type: ignore[no-untyped-def]
    kind = op[0]
    if kind == "place":
        _, account, ticker, side, price, count, tif, stp, post_only = op
        try:
            placed = ex.place(
                account,  # type: ignore[arg-type]
                order(
                    side, price, count / 100, tif=tif, stp=stp, post_only=post_only, ticker=ticker
                ),  # type: ignore[arg-type]
            )
        except OrderError:
            return
        if tif is TimeInForce.FOK:
            assert placed.filled in (0, placed.initial_count), "FOK fills all or nothing"
        if post_only:
            assert placed.filled == 0, "post-only never takes"
        return
    _, pick, price, count = op
    resting = [o for o in ex.orders.values() if o.status is OrderStatus.RESTING]
    if kind == "tick":
        clock.now += 1000
        return
    if not resting:
        return
    target = resting[pick % len(resting)]  # type: ignore[operator]
    try:
        if kind == "cancel":
            ex.cancel(target.account, target.order_id)
        elif kind == "decrease":
            ex.decrease(target.account, target.order_id, None, target.remaining // 2)
        else:
            ex.amend(target.account, target.order_id, price * 10_000, target.filled + count)  # type: ignore[operator]
    except OrderError:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=operations, settle_yes=st.booleans(), cash=st.sampled_from([dollars(3), dollars(10_000)])
)
def test_matching_invariants(ops, settle_yes: bool, cash: int) -> None:  # type: ignore[no-untyped-def]
    ex, clock = make_exchange(cash=cash)
    start = conserved_total(ex)
    for op in ops:
        apply(ex, op, clock)
        check_invariants(ex, start)
    for ticker in MARKETS:
        ex.settle(ticker, "yes" if settle_yes else "no")
    check_invariants(ex, start)
    assert ex.ledger.total_cash() + ex.ledger.fees_collected == start
    assert all(a.reserved == 0 for a in ex.ledger.accounts.values())


@settings(max_examples=60, deadline=None)
@given(ops=operations)
def test_agents_without_history_keep_invariants(ops) -> None:  # type: ignore[no-untyped-def]
    ex, clock = make_exchange(accounts=())
    for name in ACCOUNTS:
        ex.open_account(name, dollars(50), keep_history=False)
    start = conserved_total(ex)
    for op in ops:
        apply(ex, op, clock)
        check_invariants(ex, start)
