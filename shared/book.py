"""A Kalshi order book: YES bids and NO bids of one market, on the market's price grid.

Kalshi publishes bids only. A YES bid at p is a NO ask at $1 - p, and a NO bid
at q is a YES ask at $1 - q; each side's bids are kept in that side's own leg
price. Levels live in a list indexed by price tick (cheaper than a sorted map
per delta: the hot path of ingest) and the best bid of each side is kept
incrementally.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shared.messages import Level, PriceRange, Side
from shared.money import ONE_DOLLAR, Count, Micros, cents


class BookError(ValueError):
    """A change that cannot apply to the book as we hold it: the book is not to be trusted."""


@dataclass(frozen=True, slots=True)
class PriceGrid:
    """The valid prices of a market (Kalshi's ``price_ranges``) and its tick unit."""

    ranges: tuple[PriceRange, ...]
    unit: Micros

    @classmethod
    def from_ranges(cls, ranges: Sequence[PriceRange]) -> PriceGrid:
        if not ranges:
            raise ValueError("a price grid needs at least one range")
        for r in ranges:
            if r.step <= 0 or r.start < 0 or r.end > ONE_DOLLAR or r.start >= r.end:
                raise ValueError(f"bad price range {r}")
        return cls(tuple(ranges), math.gcd(*(r.step for r in ranges)))

    @classmethod
    def cents(cls) -> PriceGrid:
        """The classic grid: every cent from $0.00 to $1.00."""
        return cls.from_ranges([PriceRange(0, ONE_DOLLAR, cents(1))])

    @property
    def size(self) -> int:
        return ONE_DOLLAR // self.unit + 1

    def on_grid(self, price: Micros) -> bool:
        return any(
            r.start <= price <= r.end and (price - r.start) % r.step == 0 for r in self.ranges
        )

    def index(self, price: Micros) -> int:
        """The array index of a price; raises BookError for a price off the grid."""
        index, rest = divmod(price, self.unit)
        if rest or not 0 <= price <= ONE_DOLLAR:
            raise BookError(f"price {price} is off the grid (tick {self.unit})")
        return index

    def price(self, index: int) -> Micros:
        return index * self.unit


class SideBids:
    """The bids of one side: counts by tick, and the best bid kept incrementally."""

    __slots__ = ("best", "counts", "occupied", "unit")

    def __init__(self, size: int, unit: Micros) -> None:
        self.counts: list[Count] = [0] * size
        self.occupied = bytearray(size)
        """1 where a level rests: finding the next best bid is a search in C, not a loop."""
        self.unit = unit
        self.best = -1
        """Index of the highest price with a resting count, -1 when empty."""

    def clear(self) -> None:
        self.counts = [0] * len(self.counts)
        self.occupied = bytearray(len(self.counts))
        self.best = -1

    def change(self, index: int, delta: Count) -> Count:
        """Apply a signed change at one tick; returns the new count there."""
        counts = self.counts
        old = counts[index]
        new = old + delta
        if old == 0 and delta < 0:
            raise BookError(f"no level at tick {index} to reduce")
        if new < 0:
            raise BookError(f"size at tick {index} would go negative ({old} {delta:+d})")
        counts[index] = new
        if new:
            if not old:
                self.occupied[index] = 1
                self.best = max(self.best, index)
        elif old:
            self.occupied[index] = 0
            if index == self.best:
                self.best = self.occupied.rfind(1, 0, index)
        return new

    def levels(self) -> list[Level]:
        """All bids, best first."""
        unit, counts = self.unit, self.counts
        return [Level(i * unit, counts[i]) for i in range(self.best, -1, -1) if counts[i]]


class OrderBook:
    """Both sides' bids of one market."""

    __slots__ = ("grid", "market", "no", "yes")

    def __init__(self, market: str, grid: PriceGrid | None = None) -> None:
        self.market = market
        self.grid = grid or PriceGrid.cents()
        self.yes = SideBids(self.grid.size, self.grid.unit)
        self.no = SideBids(self.grid.size, self.grid.unit)

    def bids(self, side: Side) -> SideBids:
        return self.yes if side is Side.YES else self.no

    def apply_snapshot(self, yes: Iterable[Level], no: Iterable[Level]) -> None:
        """Replace the whole book; raises BookError (and leaves it empty) if malformed."""
        self.yes.clear()
        self.no.clear()
        try:
            for side, levels in ((self.yes, yes), (self.no, no)):
                for level in levels:
                    if level.count <= 0:
                        raise BookError(f"snapshot level {level} has no size")
                    side.change(self.grid.index(level.price), level.count)
        except BookError:
            self.yes.clear()
            self.no.clear()
            raise

    def apply_delta(self, side: Side, price: Micros, delta: Count) -> Count:
        """Apply one delta; returns the new size at that price."""
        return self.bids(side).change(self.grid.index(price), delta)

    def best_bid(self, side: Side) -> Level | None:
        bids = self.bids(side)
        if bids.best < 0:
            return None
        return Level(bids.best * bids.unit, bids.counts[bids.best])

    def best_ask(self, side: Side) -> Level | None:
        """The cheapest price to buy ``side``: the other side's best bid, complemented."""
        other = self.best_bid(Side.NO if side is Side.YES else Side.YES)
        return None if other is None else Level(ONE_DOLLAR - other.price, other.count)

    def asks(self, side: Side) -> list[Level]:
        """Every level one can buy ``side`` at, cheapest first (for walking the book)."""
        other = self.no if side is Side.YES else self.yes
        return [Level(ONE_DOLLAR - level.price, level.count) for level in other.levels()]

    def crossed(self) -> bool:
        """Bids that would have matched each other: impossible on a book we track right."""
        yes, no = self.yes.best, self.no.best
        return yes >= 0 and no >= 0 and (yes + no) * self.grid.unit >= ONE_DOLLAR

    def levels(self) -> tuple[list[Level], list[Level]]:
        return self.yes.levels(), self.no.levels()

    def empty(self) -> bool:
        return self.yes.best < 0 and self.no.best < 0
