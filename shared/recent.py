"""A mapping that remembers only its newest entries (a long-running process's order memory).

Services keep per-order facts (the leg of every order sent, the last state told,
closed order ids) to handle late events; kept forever they grow with every order.
:class:`Recent` forgets the oldest half once it holds more than ``limit`` entries:
an order that old has long finished, and a late event about it is handled as one
about an unknown order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, MutableMapping
from typing import Final, Generic, TypeVar

ORDERS_REMEMBERED: Final = 5_000
"""Per-order memory of a service: hours of real trading, minutes of a load test."""

K = TypeVar("K")
V = TypeVar("V")


class Recent(MutableMapping[K, V], Generic[K, V]):
    """A dict bounded to about ``limit`` entries, oldest inserted forgotten first."""

    def __init__(
        self, limit: int = ORDERS_REMEMBERED, pinned: Callable[[K], bool] | None = None
    ) -> None:
        """``pinned``: keys never forgotten while it says so (an order still resting)."""
        if limit < 2:
            raise ValueError(f"limit {limit} must be at least 2")
        self.limit = limit
        self.pinned = pinned
        self._items: dict[K, V] = {}

    def __getitem__(self, key: K) -> V:
        return self._items[key]

    def __setitem__(self, key: K, value: V) -> None:
        self._items[key] = value
        if len(self._items) > self.limit:
            self._forget_oldest(self.limit // 2)

    def _forget_oldest(self, count: int) -> None:
        if self.pinned is None:
            doomed = list(self._items)[:count]
        else:
            unpinned = (key for key in self._items if not self.pinned(key))
            doomed = list(itertools.islice(unpinned, count))
        for old in doomed:
            del self._items[old]

    def __delitem__(self, key: K) -> None:
        del self._items[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
