"""The ledger: cash, holdings, realized P&L and fees, from fills and settlements.

Pure and exact: every amount is integer micro-dollars (:data:`Micros`) and
every count integer hundredths of a contract (:data:`Count`).

Kalshi does not net YES and NO of one market intraday ("to close, sell what
you hold"), so a :class:`Holding` keeps each side apart, each with its own
count and cost basis. Selling removes cost in proportion to the count sold,
with floor division so the cost left behind stays exact; the last sale of a
side removes whatever cost remains.

Realized P&L is gross of fees; :attr:`Ledger.net_realized` subtracts them.
For any sequence of fills and settlements,
``cash + cost basis == bankroll + realized - fees`` holds exactly, so once
everything has settled ``cash == bankroll + net_realized``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Final

from shared.messages import Action, Fill, Position, Side
from shared.money import ONE_DOLLAR, Count, Micros, MoneyFormatError, notional

MARK_TICK: Final[Micros] = 100
"""Marks must be whole multiples of $0.0001, Kalshi's finest price tick."""


class LedgerError(ValueError):
    """A fill, settlement or mark the ledger cannot take; the ledger is left unchanged."""


@dataclass(frozen=True, slots=True)
class Lot:
    """What is held of one side of one market: ``count`` hundredths costing ``cost`` micros."""

    count: Count = 0
    cost: Micros = 0


EMPTY_LOT: Final = Lot()


@dataclass(frozen=True, slots=True)
class Holding:
    """One market's YES and NO lots, never netted against each other."""

    market: str
    yes: Lot = EMPTY_LOT
    no: Lot = EMPTY_LOT

    def lot(self, side: Side) -> Lot:
        return self.yes if side is Side.YES else self.no

    def with_lot(self, side: Side, lot: Lot) -> Holding:
        return replace(self, yes=lot) if side is Side.YES else replace(self, no=lot)

    @property
    def cost(self) -> Micros:
        """Cost basis of both sides, micro-dollars."""
        return self.yes.cost + self.no.cost

    @property
    def empty(self) -> bool:
        return self.yes.count == 0 and self.no.count == 0

    def value(self, yes_mark: Micros) -> Micros:
        """Worth at a YES mark (micros): YES at the mark, NO at $1 - mark."""
        return notional(yes_mark, self.yes.count) + notional(ONE_DOLLAR - yes_mark, self.no.count)


@dataclass(frozen=True, slots=True)
class Settlement:
    """What settling one market did: ``payout`` credited to cash, ``realized`` P&L booked."""

    market: str
    yes_won: bool
    payout: Micros
    realized: Micros


class Ledger:
    """Cash, holdings and P&L of one account, in micro-dollars and hundredths of contracts.

    Mutated only by :meth:`apply` (fills, idempotent by ``trade_id``) and
    :meth:`settle`. A rejected fill raises :class:`LedgerError` and changes nothing.
    Cash is not floored at zero: the exchange, not the ledger, refuses orders we
    cannot pay for.
    """

    def __init__(self, bankroll: Micros) -> None:
        self.bankroll: Final = bankroll
        self.cash: Micros = bankroll
        self.realized: Micros = 0
        """Total realized P&L, gross of fees (micros)."""
        self.fees: Micros = 0
        """Total fees paid (micros; a rebate would be negative)."""
        self._holdings: dict[str, Holding] = {}
        self._realized_by_market: dict[str, Micros] = {}
        self._fees_by_market: dict[str, Micros] = {}
        self._trade_ids: dict[str, set[str]] = {}
        """Trade ids booked, by market: what makes a fill seen twice count once. A
        market's are dropped when it settles (it takes no fill after), so they grow
        with the fills of open markets, not with all fills ever."""
        self._settled: set[str] = set()

    @classmethod
    def replay(
        cls,
        bankroll: Micros,
        fills: Iterable[Fill],
        settlements: Iterable[tuple[str, bool]] = (),
    ) -> Ledger:
        """Rebuild a ledger: every fill in order, then every ``(market, yes_won)`` settlement.

        Settlements come after all fills because a market takes no fill once it
        has settled; duplicated fills (same trade id) count once.
        """
        ledger = cls(bankroll)
        for fill in fills:
            ledger.apply(fill)
        for market, yes_won in settlements:
            ledger.settle(market, yes_won)
        return ledger

    # --- reading ---------------------------------------------------------------------------

    @property
    def net_realized(self) -> Micros:
        """Realized P&L net of fees (micros)."""
        return self.realized - self.fees

    @property
    def holdings(self) -> Mapping[str, Holding]:
        """Markets with something held, read-only."""
        return MappingProxyType(self._holdings)

    def holding(self, market: str) -> Holding | None:
        return self._holdings.get(market)

    def held(self, market: str, side: Side) -> Count:
        """Hundredths of ``side`` held in ``market``."""
        holding = self._holdings.get(market)
        return 0 if holding is None else holding.lot(side).count

    def realized_in(self, market: str) -> Micros:
        """Realized P&L of one market, gross of fees (micros)."""
        return self._realized_by_market.get(market, 0)

    def fees_in(self, market: str) -> Micros:
        return self._fees_by_market.get(market, 0)

    def has_trade(self, trade_id: str) -> bool:
        return any(trade_id in ids for ids in self._trade_ids.values())

    def cost_basis(self) -> Micros:
        """Cost basis of everything held (micros)."""
        return sum(holding.cost for holding in self._holdings.values())

    def unmarked(self, marks: Mapping[str, Micros]) -> list[str]:
        """Markets held without a mark (valued at cost by :meth:`value`), sorted."""
        return sorted(market for market in self._holdings if market not in marks)

    def value(self, marks: Mapping[str, Micros]) -> Micros:
        """Mark-to-market of the holdings (micros); ``marks`` are YES prices by market.

        A NO contract is worth ``$1 - mark``. A market without a mark is valued
        at its cost basis (see :meth:`unmarked`). Marks must be multiples of
        :data:`MARK_TICK` in [0, $1], else LedgerError.
        """
        total = 0
        for market, holding in self._holdings.items():
            mark = marks.get(market)
            total += holding.cost if mark is None else holding.value(checked_mark(market, mark))
        return total

    def nav(self, marks: Mapping[str, Micros]) -> Micros:
        """Net asset value: cash plus :meth:`value` (micros)."""
        return self.cash + self.value(marks)

    def unrealized(self, marks: Mapping[str, Micros]) -> Micros:
        """Mark-to-market minus cost basis (micros); unmarked markets contribute zero."""
        return self.value(marks) - self.cost_basis()

    def positions(self, marks: Mapping[str, Micros] | None = None) -> list[Position]:
        """Every holding as a Position (sorted by market), with its YES mark if known."""
        marks = marks or {}
        return [
            Position(
                market=market,
                yes=holding.yes.count,
                no=holding.no.count,
                cost=holding.cost,
                mark=marks.get(market),
            )
            for market, holding in sorted(self._holdings.items())
        ]

    # --- changing --------------------------------------------------------------------------

    def apply(self, fill: Fill) -> bool:
        """Book one fill; False (and nothing changes) if its ``trade_id`` was booked before.

        Buy: cash -= notional + fee, the side's cost += notional. Sell: only
        from what is held of that side; cash += notional - fee, realized +=
        notional - the proportional cost removed. Raises LedgerError for a
        malformed fill or a sale of more than is held.
        """
        if fill.market in self._settled or fill.trade_id in self._trade_ids.get(fill.market, ()):
            return False
        amount = _fill_notional(fill)
        holding = self._holdings.get(fill.market) or Holding(fill.market)
        lot = holding.lot(fill.side)
        if fill.action is Action.BUY:
            self.cash -= amount + fill.fee
            lot = Lot(lot.count + fill.count, lot.cost + amount)
        else:
            removed = _cost_removed(fill, lot)
            self.cash += amount - fill.fee
            self._realize(fill.market, amount - removed)
            lot = Lot(lot.count - fill.count, lot.cost - removed)
        self._store(holding.with_lot(fill.side, lot))
        self._charge(fill.market, fill.fee)
        self._trade_ids.setdefault(fill.market, set()).add(fill.trade_id)
        return True

    def settle(self, market: str, yes_won: bool) -> Settlement | None:
        """Close a settled market: the winning side pays $1 a contract, both sides close.

        Returns None (a no-op) when nothing is held, so settling twice is harmless.
        A fill of a settled market (a late duplicate) is not booked after this.
        """
        self._settled.add(market)
        self._trade_ids.pop(market, None)
        holding = self._holdings.pop(market, None)
        if holding is None:
            return None
        winning = holding.yes if yes_won else holding.no
        payout = notional(ONE_DOLLAR, winning.count)
        self.cash += payout
        realized = payout - holding.cost
        self._realize(market, realized)
        return Settlement(market, yes_won, payout, realized)

    def _store(self, holding: Holding) -> None:
        if holding.empty:
            self._holdings.pop(holding.market, None)
        else:
            self._holdings[holding.market] = holding

    def _realize(self, market: str, amount: Micros) -> None:
        self.realized += amount
        self._realized_by_market[market] = self._realized_by_market.get(market, 0) + amount

    def _charge(self, market: str, fee: Micros) -> None:
        self.fees += fee
        self._fees_by_market[market] = self._fees_by_market.get(market, 0) + fee


def _fill_notional(fill: Fill) -> Micros:
    if fill.count <= 0:
        raise LedgerError(f"fill {fill.trade_id}: count {fill.count} is not positive")
    if not 0 <= fill.price <= ONE_DOLLAR:
        raise LedgerError(f"fill {fill.trade_id}: price {fill.price} is outside $0-$1")
    try:
        return notional(fill.price, fill.count)
    except MoneyFormatError as exc:
        raise LedgerError(f"fill {fill.trade_id}: {exc}") from exc


def _cost_removed(fill: Fill, lot: Lot) -> Micros:
    """Cost leaving a lot when ``fill.count`` of it is sold (floor, all of it on the last sale)."""
    if fill.count > lot.count:
        raise LedgerError(
            f"fill {fill.trade_id}: sells {fill.count} {fill.side.value} of {fill.market}"
            f" but only {lot.count} is held"
        )
    if fill.count == lot.count:
        return lot.cost
    return lot.cost * fill.count // lot.count


def checked_mark(market: str, mark: Micros) -> Micros:
    """``mark`` itself if it is a valid YES mark; LedgerError otherwise."""
    if not 0 <= mark <= ONE_DOLLAR or mark % MARK_TICK:
        raise LedgerError(f"mark {mark} of {market} is not a $0.0001 price in $0-$1")
    return mark
