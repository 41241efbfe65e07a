"""One market's order book, held as Kalshi publishes it: YES bids and NO bids.

Each leg keeps its levels in its own price (a NO bid at q is a YES ask at
``1 - q``), each level a FIFO of orders, so price-time priority is the order
of iteration.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from services.simulator.model import Order
from shared.money import Count, Micros


class BookLeg:
    """The bids of one leg: price -> FIFO of orders."""

    __slots__ = ("levels", "prices", "totals")

    def __init__(self) -> None:
        self.levels: dict[Micros, dict[str, Order]] = {}
        self.prices: list[Micros] = []  # ascending
        self.totals: dict[Micros, Count] = {}

    def add(self, price: Micros, order: Order) -> None:
        level = self.levels.get(price)
        if level is None:
            level = self.levels[price] = {}
            self.totals[price] = 0
            bisect.insort(self.prices, price)
        level[order.order_id] = order
        self.totals[price] += order.remaining

    def remove(self, price: Micros, order: Order) -> None:
        level = self.levels[price]
        del level[order.order_id]
        self.totals[price] -= order.remaining
        if not level:
            self._drop(price)

    def reduce(self, price: Micros, by: Count) -> None:
        """The count of an order at ``price`` dropped by ``by`` (it keeps its place)."""
        self.totals[price] -= by

    def _drop(self, price: Micros) -> None:
        del self.levels[price]
        del self.totals[price]
        del self.prices[bisect.bisect_left(self.prices, price)]

    def best(self) -> Micros | None:
        return self.prices[-1] if self.prices else None

    def best_first(self) -> Iterator[tuple[Micros, dict[str, Order]]]:
        for price in reversed(self.prices):
            yield price, self.levels[price]

    def size_at(self, price: Micros) -> Count:
        return self.totals.get(price, 0)

    def ahead_of(self, price: Micros, order_id: str) -> Count:
        """Contracts queued before ``order_id`` at its level."""
        ahead = 0
        for other_id, other in self.levels.get(price, {}).items():
            if other_id == order_id:
                return ahead
            ahead += other.remaining
        raise KeyError(order_id)

    def depth(self, levels: int = 0) -> list[tuple[Micros, Count]]:
        """Levels ascending (Kalshi's order: best bid last); ``levels`` best ones, 0 = all."""
        prices = self.prices[-levels:] if levels > 0 else self.prices
        return [(price, self.totals[price]) for price in prices]


class OrderBook:
    __slots__ = ("no", "ticker", "yes")

    def __init__(self, ticker: str) -> None:
        self.ticker = ticker
        self.yes = BookLeg()
        self.no = BookLeg()

    def leg(self, name: str) -> BookLeg:
        return self.yes if name == "yes" else self.no

    def is_crossed(self) -> bool:
        best_yes, best_no = self.yes.best(), self.no.best()
        return best_yes is not None and best_no is not None and best_yes + best_no >= 1_000_000
