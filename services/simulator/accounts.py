"""The exchange's ledger: each account's cash, reserved cash, positions and history.

A position is one signed count per market (positive YES, negative NO), as
Kalshi reports ``position_fp``: buying YES while holding NO closes NO first.
Closing a contract returns its leg's price in cash; opening one costs it, so
across all accounts ``cash + fees collected + $1 x open interest`` never
changes except by settlement paying the winners.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.simulator.model import BookSide, Fill, Order
from shared.money import COUNT_PER_CONTRACT, ONE_DOLLAR, Count, Micros, notional


@dataclass(slots=True)
class Position:
    position: Count = 0
    cost: Micros = 0
    """What the contracts now held cost (their leg prices, fees excluded)."""
    total_traded: Micros = 0
    realized_pnl: Micros = 0
    fees_paid: Micros = 0
    fee_cost: Micros = 0
    """The part of the fees paid that belongs to the contracts now held."""
    volume: Count = 0
    """Contracts traded in this market, both directions."""
    updated_ms: int = 0


@dataclass(frozen=True, slots=True)
class Settlement:
    ticker: str
    event_ticker: str
    result: str
    yes_count: Count
    yes_cost: Micros
    no_count: Count
    no_cost: Micros
    revenue: Micros
    fees: Micros
    settled_ms: int


@dataclass(slots=True)
class Account:
    key_id: str
    user_id: str
    cash: Micros
    reserved: Micros = 0
    positions: dict[str, Position] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    settlements: list[Settlement] = field(default_factory=list)
    by_client_id: dict[str, str] = field(default_factory=dict)
    keep_history: bool = True
    """Simulated traders (agents) drop finished orders and fills to bound memory."""

    @property
    def available(self) -> Micros:
        return self.cash - self.reserved

    def position(self, ticker: str) -> Position:
        found = self.positions.get(ticker)
        if found is None:
            found = self.positions[ticker] = Position()
        return found

    def holding(self, ticker: str) -> Count:
        found = self.positions.get(ticker)
        return found.position if found else 0

    def fill_cost(self, ticker: str, side: BookSide, yes_price: Micros, count: Count) -> Micros:
        """Cash a fill would take (positive) or give (negative), before fees."""
        opening, closing = _split(self.holding(ticker), side, count)
        leg = yes_price if side is BookSide.BID else ONE_DOLLAR - yes_price
        return notional(leg, opening) - notional(ONE_DOLLAR - leg, closing)

    def apply_fill(
        self,
        ticker: str,
        side: BookSide,
        yes_price: Micros,
        count: Count,
        *,
        fee: Micros,
        now_ms: int,
    ) -> tuple[Count, Count]:
        """Book a fill; return (contracts opened, contracts closed)."""
        pos = self.position(ticker)
        opening, closing = _split(pos.position, side, count)
        leg = yes_price if side is BookSide.BID else ONE_DOLLAR - yes_price
        if closing:
            proceeds = notional(ONE_DOLLAR - leg, closing)
            basis = pos.cost * closing // abs(pos.position)
            pos.cost -= basis
            pos.fee_cost -= pos.fee_cost * closing // abs(pos.position)
            pos.realized_pnl += proceeds - basis
            self.cash += proceeds
        if opening:
            paid = notional(leg, opening)
            pos.cost += paid
            pos.fee_cost += fee * opening // count
            self.cash -= paid
        pos.position += count if side is BookSide.BID else -count
        pos.total_traded += notional(leg, count)
        pos.volume += count
        pos.fees_paid += fee
        pos.realized_pnl -= fee
        pos.updated_ms = now_ms
        self.cash -= fee
        return opening, closing

    def settle(self, ticker: str, event_ticker: str, result: str, now_ms: int) -> Settlement | None:
        pos = self.positions.pop(ticker, None)
        if pos is None or pos.position == 0:
            return None
        held = abs(pos.position)
        won = (pos.position > 0) == (result == "yes")
        revenue = held * ONE_DOLLAR // COUNT_PER_CONTRACT if won else 0
        self.cash += revenue
        yes = pos.position > 0
        record = Settlement(
            ticker=ticker,
            event_ticker=event_ticker,
            result=result,
            yes_count=held if yes else 0,
            yes_cost=pos.cost if yes else 0,
            no_count=0 if yes else held,
            no_cost=0 if yes else pos.cost,
            revenue=revenue,
            fees=pos.fees_paid,
            settled_ms=now_ms,
        )
        self.settlements.append(record)
        return record


def _split(position: Count, side: BookSide, count: Count) -> tuple[Count, Count]:
    """(opening, closing) parts of a fill for an account holding ``position``."""
    against = -position if side is BookSide.BID else position
    closing = min(count, max(0, against))
    return count - closing, closing


class Ledger:
    """Every account, by API key id."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.fees_collected: Micros = 0

    def open(self, key_id: str, user_id: str, cash: Micros, keep_history: bool = True) -> Account:
        account = Account(key_id=key_id, user_id=user_id, cash=cash, keep_history=keep_history)
        self.accounts[key_id] = account
        return account

    def __getitem__(self, key_id: str) -> Account:
        return self.accounts[key_id]

    def __contains__(self, key_id: object) -> bool:
        return key_id in self.accounts

    def total_cash(self) -> Micros:
        return sum(account.cash for account in self.accounts.values())
