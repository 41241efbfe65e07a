"""The ledger against hand-worked cases: buys, sells with floored cost, settlement, marks."""

from __future__ import annotations

import itertools

import pytest

from shared.ledger import Holding, Ledger, LedgerError, Lot, Settlement
from shared.messages import Action, Fill, Position, Side
from shared.money import cents, contracts, dollars

BANKROLL = dollars(10_000)
NY = "KXHIGHNY-25DEC05-T37"
CHI = "KXHIGHCHI-25DEC05-T40"
_ids = itertools.count()


def fill(
    market: str = NY,
    side: Side = Side.YES,
    action: Action = Action.BUY,
    price: int = cents(40),
    count: int = contracts(10),
    fee: int = 0,
    trade_id: str | None = None,
) -> Fill:
    return Fill(
        trade_id=trade_id or f"t{next(_ids)}",
        order_id="o",
        client_order_id="c",
        market=market,
        side=side,
        action=action,
        price=price,
        count=count,
        fee=fee,
        is_taker=True,
        ts_ns=0,
    )


def test_buy_takes_notional_and_fee_from_cash() -> None:
    ledger = Ledger(BANKROLL)
    assert ledger.apply(fill(price=cents(40), count=contracts(10), fee=cents(17)))
    # $10,000 - 10 x $0.40 - $0.17
    assert ledger.cash == dollars(10_000) - dollars(4) - cents(17) == 9_995_830_000
    assert ledger.holding(NY) == Holding(NY, yes=Lot(contracts(10), dollars(4)))
    assert ledger.fees == ledger.fees_in(NY) == cents(17)
    assert ledger.realized == 0
    assert ledger.net_realized == -cents(17)


def test_yes_and_no_are_held_apart() -> None:
    ledger = Ledger(BANKROLL)
    ledger.apply(fill(side=Side.YES, price=cents(40), count=contracts(10)))
    ledger.apply(fill(side=Side.NO, price=cents(55), count=contracts(4)))
    holding = ledger.holding(NY)
    assert holding is not None
    assert holding.yes == Lot(contracts(10), dollars(4))
    assert holding.no == Lot(contracts(4), cents(220))
    assert holding.cost == cents(620)
    assert ledger.held(NY, Side.NO) == contracts(4)


def test_partial_sells_floor_the_cost_and_the_last_takes_the_rest() -> None:
    ledger = Ledger(BANKROLL)
    for price in (cents(33), cents(33), cents(34)):
        ledger.apply(fill(price=price, count=contracts(1)))
    assert ledger.holding(NY) == Holding(NY, yes=Lot(contracts(3), dollars(1)))

    ledger.apply(fill(action=Action.SELL, price=cents(50), count=contracts(1), fee=cents(1)))
    # removed = 1,000,000 x 100 // 300 = 333,333; realized = 500,000 - 333,333
    assert ledger.holding(NY) == Holding(NY, yes=Lot(contracts(2), 666_667))
    assert ledger.realized == 166_667

    ledger.apply(fill(action=Action.SELL, price=cents(50), count=contracts(1)))
    # removed = 666,667 x 100 // 200 = 333,333
    assert ledger.holding(NY) == Holding(NY, yes=Lot(contracts(1), 333_334))

    ledger.apply(fill(action=Action.SELL, price=cents(50), count=contracts(1)))
    assert ledger.holding(NY) is None
    assert ledger.realized == ledger.realized_in(NY) == dollars(3) // 2 - dollars(1)
    assert ledger.cash == BANKROLL - dollars(1) + cents(150) - cents(1)
    assert ledger.net_realized == cents(49)


def test_fractional_counts() -> None:
    ledger = Ledger(BANKROLL)
    ledger.apply(fill(price=cents(37), count=7))  # 0.07 contracts
    assert ledger.cash == BANKROLL - 25_900
    ledger.apply(fill(action=Action.SELL, price=cents(41), count=3))
    # removed = 25,900 x 3 // 7 = 11,100
    assert ledger.holding(NY) == Holding(NY, yes=Lot(4, 14_800))
    assert ledger.realized == 12_300 - 11_100


def test_selling_more_than_held_raises_and_changes_nothing() -> None:
    ledger = Ledger(BANKROLL)
    ledger.apply(fill(count=contracts(2)))
    before = (ledger.cash, ledger.realized, ledger.fees, ledger.holding(NY))
    bad = fill(action=Action.SELL, count=contracts(2) + 1, fee=cents(1))
    with pytest.raises(LedgerError, match="only 200 is held"):
        ledger.apply(bad)
    with pytest.raises(LedgerError):
        ledger.apply(fill(side=Side.NO, action=Action.SELL, count=1))
    assert (ledger.cash, ledger.realized, ledger.fees, ledger.holding(NY)) == before
    assert not ledger.has_trade(bad.trade_id)


@pytest.mark.parametrize(
    ("price", "count"),
    [(cents(40), 0), (cents(40), -100), (-1, 100), (dollars(1) + 100, 100), (123, 1)],
)
def test_malformed_fills_raise(price: int, count: int) -> None:
    ledger = Ledger(BANKROLL)
    with pytest.raises(LedgerError):
        ledger.apply(fill(price=price, count=count))
    assert ledger.cash == BANKROLL
    assert not ledger.holdings


def test_a_trade_id_is_applied_once() -> None:
    ledger = Ledger(BANKROLL)
    first = fill(trade_id="T-1", fee=cents(1))
    assert ledger.apply(first)
    cash = ledger.cash
    assert not ledger.apply(first)
    assert not ledger.apply(fill(trade_id="T-1", price=cents(90), count=contracts(99)))
    assert ledger.cash == cash
    assert ledger.held(NY, Side.YES) == contracts(10)
    assert ledger.has_trade("T-1")


def test_a_settled_market_forgets_its_trade_ids_and_books_no_late_duplicate() -> None:
    ledger = Ledger(BANKROLL)
    first = fill(trade_id="T-1", fee=cents(1))
    ledger.apply(first)
    ledger.settle(NY, yes_won=True)
    cash = ledger.cash
    assert not ledger.has_trade("T-1")  # memory grows with open markets' fills only
    assert not ledger.apply(first)
    assert ledger.cash == cash and not ledger.holdings


def test_settle_pays_the_winning_side_and_closes_both() -> None:
    ledger = Ledger(BANKROLL)
    ledger.apply(fill(side=Side.YES, price=cents(40), count=contracts(10)))
    ledger.apply(fill(side=Side.NO, price=cents(55), count=contracts(4)))
    cash = ledger.cash
    settlement = ledger.settle(NY, yes_won=True)
    assert settlement == Settlement(NY, True, dollars(10), dollars(10) - cents(620))
    assert ledger.cash == cash + dollars(10)
    assert ledger.holding(NY) is None
    assert ledger.realized_in(NY) == cents(380)
    assert ledger.settle(NY, yes_won=True) is None
    assert ledger.cash == cash + dollars(10)


def test_settle_no_wins() -> None:
    ledger = Ledger(BANKROLL)
    ledger.apply(fill(side=Side.YES, price=cents(40), count=contracts(10)))
    ledger.apply(fill(side=Side.NO, price=cents(55), count=contracts(4)))
    settlement = ledger.settle(NY, yes_won=False)
    assert settlement is not None
    assert settlement.payout == dollars(4)
    assert ledger.realized == dollars(4) - cents(620)
    assert ledger.cash == BANKROLL - cents(620) + dollars(4)
    assert ledger.cash == BANKROLL + ledger.net_realized


def test_settling_nothing_is_a_no_op() -> None:
    ledger = Ledger(BANKROLL)
    assert ledger.settle(NY, yes_won=True) is None
    assert ledger.cash == BANKROLL
    assert ledger.realized == 0


def test_mark_to_market() -> None:
    ledger = Ledger(BANKROLL)
    ledger.apply(fill(NY, Side.YES, price=cents(40), count=contracts(10)))
    ledger.apply(fill(NY, Side.NO, price=cents(60), count=contracts(5)))
    ledger.apply(fill(CHI, Side.YES, price=cents(20), count=contracts(3)))
    marks = {NY: cents(55)}
    # NY: 10 x 0.55 + 5 x 0.45 = 7.75; CHI unmarked: at cost 0.60
    assert ledger.value(marks) == cents(775) + cents(60)
    assert ledger.unmarked(marks) == [CHI]
    assert ledger.cost_basis() == cents(760)
    assert ledger.unrealized(marks) == cents(75)
    assert ledger.nav(marks) == BANKROLL - cents(760) + cents(835)
    assert ledger.nav({}) == BANKROLL
    assert ledger.positions(marks) == [
        Position(market=CHI, yes=contracts(3), no=0, cost=cents(60), mark=None),
        Position(market=NY, yes=contracts(10), no=contracts(5), cost=cents(700), mark=cents(55)),
    ]


@pytest.mark.parametrize("mark", [-100, dollars(1) + 100, 150])
def test_bad_marks_raise(mark: int) -> None:
    ledger = Ledger(BANKROLL)
    ledger.apply(fill())
    with pytest.raises(LedgerError):
        ledger.value({NY: mark})


def test_marks_at_the_ends() -> None:
    ledger = Ledger(BANKROLL)
    ledger.apply(fill(NY, Side.YES, count=contracts(2)))
    ledger.apply(fill(NY, Side.NO, count=contracts(3)))
    assert ledger.value({NY: 0}) == dollars(3)
    assert ledger.value({NY: dollars(1)}) == dollars(2)


def test_replay_rebuilds_the_same_ledger() -> None:
    fills = [
        fill(NY, Side.YES, price=cents(40), count=contracts(10), fee=cents(17)),
        fill(NY, Side.YES, Action.SELL, price=cents(45), count=contracts(3), fee=cents(7)),
        fill(CHI, Side.NO, price=cents(70), count=contracts(6), fee=cents(13)),
    ]
    live = Ledger(BANKROLL)
    for f in fills:
        live.apply(f)
    live.settle(CHI, yes_won=False)
    rebuilt = Ledger.replay(BANKROLL, [*fills, fills[0]], [(CHI, False)])
    assert (rebuilt.cash, rebuilt.realized, rebuilt.fees) == (live.cash, live.realized, live.fees)
    assert rebuilt.positions() == live.positions()
    assert rebuilt.realized_in(CHI) == live.realized_in(CHI) == dollars(6) - cents(420)
