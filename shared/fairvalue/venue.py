"""Another venue's book (Polymarket) as the reference price of a Kalshi market.

``VenueBook`` holds YES-side bids and asks, best first. Buying YES takes the
asks; buying NO takes the bids turned around (a YES bid at p is a NO ask at
1 - p). Takers pay ``C x rate x p x (1 - p)`` on each fill (symmetric in p,
so the NO price gives the same fee); Polymarket computes it to 5 decimals of
USDC, which we round UP per level so that a buy never looks cheaper than it is.

The fair YES probability is the midpoint of the fee-adjusted touch: what a
taker nets selling YES at the best bid, bid - fee(bid), and what one pays
buying it at the best ask, ask + fee(ask). Inside that interval no taker on
the venue can profit, so its middle is the venue's price net of its fees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Final, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.fairvalue.model import FairValue, age_s, clamp_probability
from shared.messages import Level, Side, VenueBook
from shared.money import COUNT_PER_CONTRACT, ONE_DOLLAR, Count, Micros, ceil_div, complement

MODEL: Final = "venue"
FEE_UNIT: Final[Micros] = 10
"""Polymarket's fee precision: 0.00001 USDC."""


class VenueModelConfig(BaseModel):
    """How much to trust another venue's touch."""

    model_config = ConfigDict(frozen=True)

    max_spread: float = Field(
        0.10, gt=0, description="fee-adjusted spread (in $) at which confidence reaches 0"
    )
    depth_window: float = Field(0.02, ge=0, description="depth counts levels this near the touch")
    full_depth_contracts: float = Field(
        100, gt=0, description="contracts near each side of the touch for full confidence"
    )
    full_confidence_age_s: float = Field(60, ge=0, description="book age of full confidence")
    quiet_age_s: float = Field(600, gt=0, description="book age of the lowest age factor")
    quiet_confidence: float = Field(
        0.5, ge=0, le=1, description="age factor of a quiet book on a fresh feed"
    )

    @model_validator(mode="after")
    def _ages_ordered(self) -> Self:
        if self.full_confidence_age_s >= self.quiet_age_s:
            raise ValueError("full_confidence_age_s must be below quiet_age_s")
        return self


DEFAULT_VENUE_CONFIG: Final = VenueModelConfig()


@dataclass(frozen=True, slots=True)
class VenueExecution:
    """Buying ``count`` of one side by walking the venue's book as a taker."""

    side: Side
    count: Count
    cost: Micros
    """What the contracts cost at their level prices (rounded up to the micro-dollar)."""
    fee: Micros
    worst_price: Micros

    @property
    def total(self) -> Micros:
        return self.cost + self.fee

    @property
    def average_price(self) -> Micros:
        """All-in price per contract, fee included, rounded up."""
        return ceil_div(self.total * COUNT_PER_CONTRACT, self.count)


def _exact_rate(rate: float) -> Fraction | None:
    if not 0.0 <= rate <= 1.0:  # also rejects NaN
        return None
    return Fraction(repr(rate))


def venue_fee(price: Micros, count: Count, rate: float) -> Micros:
    """Taker fee of ``count`` hundredths at ``price``: C x rate x p(1-p), up to 0.00001 $."""
    exact_rate = _exact_rate(rate)
    if exact_rate is None:
        raise ValueError(f"fee rate {rate!r} is not in [0, 1]")
    micros = exact_rate * count * price * (ONE_DOLLAR - price) / (COUNT_PER_CONTRACT * ONE_DOLLAR)
    return ceil_div(micros.numerator, micros.denominator * FEE_UNIT) * FEE_UNIT


def side_asks(book: VenueBook, side: Side) -> list[Level]:
    """The levels a buyer of ``side`` takes, cheapest first, in that side's own prices."""
    if side is Side.YES:
        return sorted(book.asks, key=lambda level: level.price)
    turned = (Level(complement(level.price), level.count) for level in book.bids)
    return sorted(turned, key=lambda level: level.price)


def executable_buy(book: VenueBook, side: Side, count: Count) -> VenueExecution | None:
    """The cost of buying ``count`` of ``side`` now, fees included; None if the book is short."""
    if count <= 0 or _exact_rate(book.taker_fee_rate) is None:
        return None
    cost = fee = worst = 0
    needed = count
    for level in side_asks(book, side):
        if needed == 0:
            break
        take = min(needed, level.count)
        if take <= 0:
            continue
        cost += ceil_div(level.price * take, COUNT_PER_CONTRACT)
        fee += venue_fee(level.price, take, book.taker_fee_rate)
        worst, needed = level.price, needed - take
    if needed:
        return None
    return VenueExecution(side=side, count=count, cost=cost, fee=fee, worst_price=worst)


def _fee_per_contract(price: float, rate: float) -> float:
    return rate * price * (1.0 - price)


def _depth_near(levels: Sequence[Level], touch: Micros, window: Micros) -> float:
    """Contracts resting within ``window`` of the touch."""
    return sum(lvl.count for lvl in levels if abs(lvl.price - touch) <= window) / COUNT_PER_CONTRACT


def _age_factor(age: float, config: VenueModelConfig) -> float:
    if age <= config.full_confidence_age_s:
        return 1.0
    progress = min(
        1.0,
        (age - config.full_confidence_age_s) / (config.quiet_age_s - config.full_confidence_age_s),
    )
    return 1.0 - (1.0 - config.quiet_confidence) * progress


def venue_fair_value(
    book: VenueBook | None,
    now_ns: int,
    config: VenueModelConfig = DEFAULT_VENUE_CONFIG,
    *,
    feed_fresh: bool = True,
) -> FairValue | None:
    """The venue's fee-adjusted midpoint as P(YES), or None.

    None without both a bid and an ask, with a crossed book, a fee rate outside
    [0, 1], or a stale feed. A book that merely has not changed for a while
    (quiet markets are not republished) only loses confidence, down to
    ``quiet_confidence``.
    """
    if book is None or not feed_fresh or not book.bids or not book.asks:
        return None
    best_bid = max(book.bids, key=lambda level: level.price).price
    best_ask = min(book.asks, key=lambda level: level.price).price
    rate = book.taker_fee_rate
    if best_bid > best_ask or _exact_rate(rate) is None:
        return None
    bid, ask = best_bid / ONE_DOLLAR, best_ask / ONE_DOLLAR
    net_bid = bid - _fee_per_contract(bid, rate)
    all_in_ask = ask + _fee_per_contract(ask, rate)
    window = round(config.depth_window * ONE_DOLLAR)
    depth = min(_depth_near(book.bids, best_bid, window), _depth_near(book.asks, best_ask, window))
    confidence = (
        max(0.0, 1.0 - (all_in_ask - net_bid) / config.max_spread)
        * min(1.0, depth / config.full_depth_contracts)
        * _age_factor(age_s(now_ns, book.observed_at_ns), config)
    )
    return FairValue(
        market=book.market,
        p_yes=clamp_probability((net_bid + all_in_ask) / 2),
        confidence=clamp_probability(confidence),
        model=MODEL,
        inputs=(
            f"{book.venue} bid={bid:.4f} ask={ask:.4f} rate={rate} "
            f"net_bid={net_bid:.5f} all_in_ask={all_in_ask:.5f} depth={depth:.2f}"
        ),
    )
