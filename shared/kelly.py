"""Fee-adjusted Kelly sizing, edge, AROC and the ranking score (pure, integer money).

Buying one side at an all-in cost ``c`` per contract (the price plus the fee
of the order spread over its contracts) for a payout ``P`` (``$1`` minus any
settlement fee; Kalshi charges none today) with model probability ``p``::

    b  = (P - c) / c                 net odds
    f* = (b p - q) / b = (p P - c) / (P - c)

``f*`` is computed in exact rationals (a float ``p`` is an exact rational), so
its sign is exactly the sign of the edge after fees ``p - c / P``.

Sizing walks the asks level by level: the fee of one order is Kalshi's
formula accumulated over the levels it takes and rounded up to the cent once
(:mod:`shared.fees`). The size is the largest whole number of contracts ``n``
whose all-in cost ``T(n)`` stays within ``multiplier x f*(T(n) / n) x
bankroll`` while the average edge after fees clears ``min_edge``, taking only
levels that clear ``min_edge`` on their own.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import accumulate
from typing import Final

from shared.fees import FeeRate, fee_numerator, round_up_numerator
from shared.messages import Level
from shared.money import COUNT_PER_CONTRACT, ONE_DOLLAR, Count, Micros, notional

NS_PER_DAY: Final = 86_400 * 10**9
DAYS_PER_YEAR: Final = 365.0
_FEE_SCALE: Final = COUNT_PER_CONTRACT * ONE_DOLLAR
"""fee_numerator / (rate.denominator x _FEE_SCALE) is the exact fee in micro-dollars."""


@dataclass(frozen=True, slots=True)
class KellyConfig:
    """Sizing policy; risk tells strategy when to use the recovery fraction."""

    fraction: float = 0.25
    recovery_fraction: float = 0.10
    min_edge: float = 0.02
    """Skip below this expected profit per contract, as a fraction of the payout."""
    settlement_fee: Micros = 0
    """Per contract at settlement: none on Kalshi today, kept as the hook if one appears."""


DEFAULT_CONFIG: Final = KellyConfig()


def net_payout(settlement_fee: Micros = 0) -> Micros:
    """What one winning contract pays after any settlement fee."""
    return ONE_DOLLAR - settlement_fee


def kelly_multiplier(recovery_mode: bool, config: KellyConfig = DEFAULT_CONFIG) -> float:
    """Quarter Kelly normally; the smaller recovery fraction while recovering from a drawdown."""
    return config.recovery_fraction if recovery_mode else config.fraction


def full_kelly(p: float, cost: Fraction | int, payout: Micros = ONE_DOLLAR) -> float:
    """Full-Kelly fraction of bankroll for one contract costing ``cost`` all-in (micros).

    Negative when the edge after fees is negative (the bet is not worth taking).
    """
    if not 0 < cost < payout:
        raise ValueError(f"all-in cost {cost} must lie strictly between 0 and {payout}")
    exact = (Fraction(p) * payout - cost) / (payout - cost)
    return float(exact)


def edge_after_fees(p: float, cost: Fraction | int, payout: Micros = ONE_DOLLAR) -> float:
    """Expected profit per contract as a fraction of the payout: ``p - cost / payout``."""
    return float(Fraction(p) - Fraction(cost) / payout)


def per_contract_cost(total: Micros, count: Count) -> Fraction:
    """All-in cost of one contract (micros) when ``count`` hundredths cost ``total``."""
    return Fraction(total * COUNT_PER_CONTRACT, count)


@dataclass(frozen=True, slots=True)
class Walk:
    """What buying ``count`` from the asks takes: the levels and the order's cost."""

    count: Count
    fills: tuple[Level, ...]
    notional: Micros
    fee: Micros

    @property
    def cost(self) -> Micros:
        return self.notional + self.fee

    @property
    def limit_price(self) -> Micros:
        """The worst price taken: the limit price of one order that sweeps these levels."""
        return self.fills[-1].price if self.fills else 0


class AskLadder:
    """One side's asks prepared for walking: cumulative depth, notional and fee numerators."""

    __slots__ = ("_depth", "_fee_num", "_notional", "levels", "rate")

    def __init__(self, asks: Sequence[Level], rate: FeeRate) -> None:
        self.levels = tuple(level for level in asks if level.count > 0)
        self.rate = rate
        counts = [level.count for level in self.levels]
        self._depth = [0, *accumulate(counts)]
        self._notional = [0, *accumulate(notional(lv.price, lv.count) for lv in self.levels)]
        self._fee_num = [
            0,
            *accumulate(fee_numerator(lv.price, lv.count, rate) for lv in self.levels),
        ]

    @property
    def depth(self) -> Count:
        return self._depth[-1]

    def _split(self, count: Count) -> tuple[int, Count]:
        """Index of the level holding the last of ``count`` and how much of it is taken."""
        if not 0 <= count <= self.depth:
            raise ValueError(f"count {count} outside the book's depth {self.depth}")
        index = bisect_left(self._depth, count)
        return index, count - self._depth[index - 1] if index else 0

    def notional_and_fee_numerator(self, count: Count) -> tuple[Micros, int]:
        """Notional of the first ``count`` and the order's exact (unrounded) fee numerator."""
        index, partial = self._split(count)
        if index == 0:
            return 0, 0
        level = self.levels[index - 1]
        full = index - 1
        return (
            self._notional[full] + notional(level.price, partial),
            self._fee_num[full] + fee_numerator(level.price, partial, self.rate),
        )

    def exact_fee(self, fee_num: int) -> Fraction:
        """An unrounded fee numerator in micro-dollars."""
        return Fraction(fee_num, self.rate.denominator * _FEE_SCALE)

    def cost(self, count: Count) -> Micros:
        """All-in cost of buying ``count`` as one order (fee rounded up to the cent once)."""
        spent, fee_num = self.notional_and_fee_numerator(count)
        return spent + round_up_numerator(fee_num, self.rate)

    def walk(self, count: Count) -> Walk:
        index, partial = self._split(count)
        fills = [*self.levels[: index - 1]] if index else []
        if index:
            fills.append(Level(self.levels[index - 1].price, partial))
        spent, fee_num = self.notional_and_fee_numerator(count)
        return Walk(count, tuple(fills), spent, round_up_numerator(fee_num, self.rate))

    def depth_within(self, max_all_in: Fraction) -> Count:
        """Depth of the levels whose own all-in cost per contract is at most ``max_all_in``.

        All-in cost ``a + rate a (1 - a)`` rises with ``a`` (for any rate below 1), so
        these levels are a prefix of the asks.
        """
        depth = 0
        for level, total in zip(self.levels, self._depth[1:], strict=True):
            one = fee_numerator(level.price, COUNT_PER_CONTRACT, self.rate)
            if level.price + self.exact_fee(one) > max_all_in:
                break
            depth = total
        return depth


@dataclass(frozen=True, slots=True)
class KellySize:
    """A sized buy, or ``count == 0`` with the reason it was skipped."""

    walk: Walk
    kelly_fraction: float
    """The fraction of bankroll staked: multiplier x full Kelly at the average all-in cost."""
    full_kelly: float
    edge: float
    """Average expected profit per contract after fees, as a fraction of the payout."""
    ev: Micros
    """Expected profit of the whole order after fees, to the nearest micro-dollar."""
    reason: str = ""

    @property
    def count(self) -> Count:
        return self.walk.count


_EMPTY_WALK: Final = Walk(0, (), 0, 0)


def _skip(reason: str) -> KellySize:
    return KellySize(_EMPTY_WALK, 0.0, 0.0, 0.0, 0, reason)


@dataclass(frozen=True, slots=True)
class _Sizer:
    p: Fraction
    payout: Micros
    multiplier: Fraction
    bankroll: Micros
    min_edge: Fraction
    ladder: AskLadder

    def fits(self, contracts: int, total: Fraction | int) -> bool:
        """Whether ``contracts`` costing ``total`` all-in clear the edge and stay within Kelly."""
        if contracts == 0:
            return True
        cost = Fraction(total, contracts)
        if cost >= self.payout or self.p * self.payout - cost < self.min_edge * self.payout:
            return False
        kelly = (self.p * self.payout - cost) / (self.payout - cost)
        return total <= self.multiplier * kelly * self.bankroll

    def fits_unrounded(self, contracts: int) -> bool:
        spent, fee_num = self.ladder.notional_and_fee_numerator(contracts * COUNT_PER_CONTRACT)
        return self.fits(contracts, spent + self.ladder.exact_fee(fee_num))

    def fits_exactly(self, contracts: int) -> bool:
        return self.fits(contracts, self.ladder.cost(contracts * COUNT_PER_CONTRACT))

    def largest(self, most: int) -> int:
        """The largest whole number of contracts that fits with the fee rounded up.

        Without rounding the test is monotone in the size (the average all-in cost
        only rises as the walk goes deeper), so bisection finds its largest size;
        rounding only adds cost, so the answer is at or below it, a few steps down.
        """
        low, high = 0, most
        while low < high:
            middle = (low + high + 1) // 2
            if self.fits_unrounded(middle):
                low = middle
            else:
                high = middle - 1
        while low > 0 and not self.fits_exactly(low):
            low -= 1
        return low


def size_buy(
    p: float,
    asks: Sequence[Level],
    rate: FeeRate,
    bankroll: Micros,
    *,
    recovery_mode: bool = False,
    config: KellyConfig = DEFAULT_CONFIG,
) -> KellySize:
    """Fee-adjusted fractional Kelly size (whole contracts) for buying a side at ``asks``.

    ``asks`` are the levels to buy the side, cheapest first (``OrderBook.asks``).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability {p} outside [0, 1]")
    payout = net_payout(config.settlement_fee)
    ladder = AskLadder(asks, rate)
    sizer = _Sizer(
        Fraction(p),
        payout,
        Fraction(kelly_multiplier(recovery_mode, config)),
        bankroll,
        Fraction(config.min_edge),
        ladder,
    )
    worthy = ladder.depth_within(sizer.p * payout - sizer.min_edge * payout)
    if worthy < COUNT_PER_CONTRACT:
        return _skip("no whole contract at an edge after fees above the minimum")
    contracts = sizer.largest(worthy // COUNT_PER_CONTRACT)
    if contracts == 0:
        return _skip("kelly stake below one contract")
    walk = ladder.walk(contracts * COUNT_PER_CONTRACT)
    cost = per_contract_cost(walk.cost, walk.count)
    kelly = full_kelly(p, cost, payout)
    ev = round(sizer.p * payout * contracts - walk.cost)
    return KellySize(
        walk, float(sizer.multiplier) * kelly, kelly, edge_after_fees(p, cost, payout), ev
    )


def roi(profit: Micros, capital: Micros) -> float:
    """Return on the capital committed."""
    if capital <= 0:
        raise ValueError(f"capital {capital} must be positive")
    return profit / capital


def days_to_close(now_ns: int, close_ns: int) -> float:
    return (close_ns - now_ns) / NS_PER_DAY


def aroc(profit: Micros, capital: Micros, days: float, min_days: float = 1 / 24) -> float:
    """Return on capital annualized (simple, not compounded) by the days until close.

    ``min_days`` keeps a market closing in minutes from claiming an absurd rate.
    """
    return roi(profit, capital) * DAYS_PER_YEAR / max(days, min_days)


def score(roi_value: float, confidence: float, liquidity: Count) -> float:
    """Ranking: ROI x confidence x ln(contracts executable).

    ln(1) = 0, so a one-contract "ghost" scores nothing and never outranks a deep one.
    """
    contracts = liquidity / COUNT_PER_CONTRACT
    return roi_value * confidence * math.log(contracts) if contracts > 1 else 0.0
