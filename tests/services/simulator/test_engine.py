"""The matching engine's rules, one by one."""

from __future__ import annotations

import pytest

from services.simulator.engine import OrderError
from services.simulator.model import BookDelta, Fill, OrderStatus, SelfTradePrevention, TimeInForce
from shared.money import cents, contracts, dollars

from .engine_kit import MARKET, make_exchange, order


def test_resting_bid_and_ask_sit_in_yes_and_no_legs() -> None:
    ex, _ = make_exchange()
    ex.place("alice", order("bid", 40, 10))
    ex.place("bob", order("ask", 45, 5))
    book = ex.book(MARKET)
    assert book.yes.depth() == [(cents(40), contracts(10))]
    assert book.no.depth() == [(cents(55), contracts(5))]  # YES ask 45 = NO bid 55


def test_cross_trades_at_maker_price_with_taker_fee() -> None:
    ex, _ = make_exchange()
    ex.place("alice", order("ask", 50, 1))  # NO bid at 0.50
    ex.drain()
    taker = ex.place("bob", order("bid", 60, 1))
    assert taker.status is OrderStatus.EXECUTED
    fills = [e for e in ex.drain() if isinstance(e, Fill)]
    assert {f.yes_price for f in fills} == {cents(50)}
    by_account = {f.account: f for f in fills}
    assert by_account["bob"].is_taker and by_account["bob"].fee == cents(2)
    assert by_account["alice"].fee == 0  # plain quadratic: no maker fee
    assert ex.ledger["bob"].cash == dollars(10_000) - cents(50) - cents(2)
    assert ex.ledger["alice"].cash == dollars(10_000) - cents(50)
    assert ex.ledger["bob"].holding(MARKET) == contracts(1)
    assert ex.ledger["alice"].holding(MARKET) == -contracts(1)
    assert ex.markets[MARKET].open_interest == contracts(1)


def test_maker_fee_where_series_charges_it() -> None:
    ex, _ = make_exchange(fee_type="quadratic_with_maker_fees")
    ex.place("alice", order("bid", 50, 100))
    ex.place("bob", order("ask", 50, 100))
    assert ex.ledger["alice"].positions[MARKET].fees_paid == cents(44)
    assert ex.ledger["bob"].positions[MARKET].fees_paid == cents(175)


def test_price_time_priority() -> None:
    ex, _ = make_exchange()
    first = ex.place("alice", order("bid", 40, 1))
    second = ex.place("carol", order("bid", 40, 1))
    better = ex.place("carol", order("bid", 41, 1))
    ex.place("bob", order("ask", 40, 2))
    assert better.status is OrderStatus.EXECUTED
    assert first.status is OrderStatus.EXECUTED
    assert second.status is OrderStatus.RESTING


def test_queue_position_and_decrease_keeps_priority() -> None:
    ex, _ = make_exchange()
    a = ex.place("alice", order("bid", 40, 3))
    c = ex.place("carol", order("bid", 40, 2))
    assert ex.queue_position("carol", c.order_id) == contracts(3)
    ex.decrease("alice", a.order_id, contracts(1), None)
    assert ex.queue_position("carol", c.order_id) == contracts(2)
    assert ex.queue_position("alice", a.order_id) == 0


def test_amend_price_loses_priority_size_down_keeps_it() -> None:
    ex, _ = make_exchange()
    a = ex.place("alice", order("bid", 40, 3))
    c = ex.place("carol", order("bid", 40, 2))
    ex.amend("alice", a.order_id, cents(40), contracts(2))
    assert ex.queue_position("carol", c.order_id) == contracts(2)
    ex.amend("alice", a.order_id, cents(40), contracts(5))  # size up: to the back
    assert ex.queue_position("alice", a.order_id) == contracts(2)
    ex.amend("carol", c.order_id, cents(41), contracts(2))
    assert ex.queue_position("carol", c.order_id) == 0


def test_amend_that_crosses_trades() -> None:
    ex, _ = make_exchange()
    ex.place("bob", order("ask", 45, 1))
    a = ex.place("alice", order("bid", 40, 1))
    ex.amend("alice", a.order_id, cents(45), contracts(1))
    assert a.status is OrderStatus.EXECUTED


def test_ioc_cancels_rest_fok_all_or_nothing() -> None:
    ex, _ = make_exchange()
    ex.place("bob", order("ask", 50, 2))
    ioc = ex.place("alice", order("bid", 50, 5, tif=TimeInForce.IOC))
    assert (ioc.filled, ioc.status) == (contracts(2), OrderStatus.CANCELED)
    ex.place("bob", order("ask", 50, 2))
    fok = ex.place("alice", order("bid", 50, 3, tif=TimeInForce.FOK))
    assert (fok.filled, fok.status) == (0, OrderStatus.CANCELED)
    fok = ex.place("alice", order("bid", 50, 2, tif=TimeInForce.FOK))
    assert (fok.filled, fok.status) == (contracts(2), OrderStatus.EXECUTED)


def test_post_only_never_takes() -> None:
    ex, _ = make_exchange()
    ex.place("bob", order("ask", 50, 2))
    po = ex.place("alice", order("bid", 50, 1, post_only=True))
    assert (po.filled, po.status) == (0, OrderStatus.CANCELED)
    po = ex.place("alice", order("bid", 49, 1, post_only=True))
    assert po.status is OrderStatus.RESTING


def test_self_trade_prevention_both_types() -> None:
    ex, _ = make_exchange()
    ex.place("bob", order("ask", 50, 1))
    own = ex.place("alice", order("ask", 51, 1))
    taker = ex.place("alice", order("bid", 55, 3))  # taker_at_cross: fills bob, stops at own
    assert taker.filled == contracts(1) and taker.status is OrderStatus.CANCELED
    assert own.status is OrderStatus.RESTING
    ex.place("bob", order("ask", 52, 1))
    maker_stp = ex.place("alice", order("bid", 55, 1, stp=SelfTradePrevention.MAKER))
    assert own.status is OrderStatus.CANCELED  # resting own order removed
    assert maker_stp.filled == contracts(1)


def test_expiration_cancels_later() -> None:
    ex, clock = make_exchange()
    o = ex.place("alice", order("bid", 40, 1, expiration_ms=clock.now + 5_000))
    clock.now += 6_000
    ex.expire_due()
    assert o.status is OrderStatus.CANCELED
    with pytest.raises(OrderError, match="future"):
        ex.place("alice", order("bid", 40, 1, expiration_ms=clock.now - 1))
    with pytest.raises(OrderError):
        ex.place("alice", order("bid", 40, 1, tif=TimeInForce.IOC, expiration_ms=clock.now + 9))


def test_grid_and_fractional_rules() -> None:
    ex, _ = make_exchange(structure="tapered_deci_cent", fractional=False)
    ex.place("alice", order("bid", 5.1, 1))  # 0.051 on the 0.001 edge grid
    with pytest.raises(OrderError) as err:
        ex.place("alice", order("bid", 40.5, 1))  # center is whole cents
    assert err.value.code == "invalid_order"
    with pytest.raises(OrderError) as err:
        ex.place("alice", order("bid", 40, 1.5))
    assert err.value.code == "invalid_order_size"
    frac, _ = make_exchange(structure="center_centi_edge_centi_cent")
    o = frac.place("alice", order("bid", 40.01, 0.25))
    assert o.remaining == 25


def test_cash_must_cover_order() -> None:
    ex, _ = make_exchange(cash=dollars(1))
    with pytest.raises(OrderError) as err:
        ex.place("alice", order("bid", 50, 3))
    assert err.value.code == "available_balance_too_low"
    ex.place("alice", order("bid", 50, 1))  # 0.50 + worst fee 0.02 fits
    assert ex.ledger["alice"].available == dollars(1) - cents(52)


def test_selling_held_contracts_needs_no_cash() -> None:
    ex, _ = make_exchange(cash=dollars(1))
    ex.place("bob", order("ask", 90, 1))
    ex.place("alice", order("bid", 90, 1))  # alice holds 1 YES, cash 0.09 - 0.01 fee = 0.09
    assert ex.ledger["alice"].cash == dollars(1) - cents(90) - cents(1)
    ex.place("alice", order("ask", 95, 1))  # selling YES: no $0.05 NO-leg cash needed


def test_settlement_pays_winners_and_closes() -> None:
    ex, _ = make_exchange()
    ex.place("alice", order("bid", 30, 10))
    ex.place("bob", order("ask", 30, 10))
    ex.place("carol", order("bid", 20, 1))
    ex.settle(MARKET, "yes")
    assert ex.ledger["alice"].holding(MARKET) == 0
    alice, bob = ex.ledger["alice"], ex.ledger["bob"]
    fee = cents(15)  # bob took: 0.07 x 10 x 0.3 x 0.7 = 0.147
    assert alice.cash == dollars(10_000) - cents(300) + dollars(10)
    assert bob.cash == dollars(10_000) - cents(700) - fee
    assert alice.settlements[0].revenue == dollars(10)
    assert ex.ledger["carol"].reserved == 0
    with pytest.raises(OrderError):
        ex.place("alice", order("bid", 30, 1))


def test_closing_position_realises_cash() -> None:
    ex, _ = make_exchange()
    ex.place("alice", order("bid", 30, 10))
    ex.place("bob", order("ask", 30, 10))  # alice +10 YES @0.30
    ex.place("carol", order("bid", 40, 10))
    ex.place("alice", order("ask", 40, 10))  # alice sells YES @0.40
    alice = ex.ledger["alice"]
    assert alice.holding(MARKET) == 0
    # maker on the way in (no fee), taker on the way out: 0.07 x 10 x 0.4 x 0.6 -> 17 cents
    assert alice.positions[MARKET].realized_pnl == cents(100) - cents(17)


def test_deltas_track_the_book() -> None:
    ex, _ = make_exchange()
    levels: dict[tuple[str, int], int] = {}
    ex.place("alice", order("bid", 40, 3))
    ex.place("carol", order("ask", 45, 2))
    ex.place("bob", order("ask", 40, 1))
    ex.place("bob", order("bid", 60, 5, tif=TimeInForce.IOC))
    for e in ex.drain():
        if isinstance(e, BookDelta):
            levels[e.side, e.price] = levels.get((e.side, e.price), 0) + e.delta
    book = ex.book(MARKET)
    got = {k: v for k, v in levels.items() if v}
    want = {("yes", p): c for p, c in book.yes.depth()} | {("no", p): c for p, c in book.no.depth()}
    assert got == want
