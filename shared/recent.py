"""A mapping that remembers only its newest entries (a long-running process's order memory).

Services keep per-order facts (the leg of every order sent, the last state told,
closed order ids) to handle late events; kept forever they grow with every order.
:class:`Recent` forgets the oldest half once it holds more than ``limit`` entries:
an order that old has long finished, and a late event about it is handled as one
about an unknown order.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Final, Generic, TypeVar

ORDERS_REMEMBERED: Final = 20_000
"""Per-order memory of a service: hours of real trading, minutes of a load test."""

K = TypeVar("K")
V = TypeVar("V")


class Recent(MutableMapping[K, V], Generic[K, V]):
    """A dict bounded to about ``limit`` entries, oldest inserted forgotten first."""

    def __init__(self, limit: int = ORDERS_REMEMBERED) -> None:
        if limit < 2:
            raise ValueError(f"limit {limit} must be at least 2")
        self.limit = limit
        self._items: dict[K, V] = {}

    def __getitem__(self, key: K) -> V:
        return self._items[key]

    def __setitem__(self, key: K, value: V) -> None:
        self._items[key] = value
        if len(self._items) > self.limit:
            for old in list(self._items)[: self.limit // 2]:
                del self._items[old]

    def __delitem__(self, key: K) -> None:
        del self._items[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
