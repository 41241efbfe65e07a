"""Execution's records in a replay: claims and episodes in memory, like Postgres live.

The router claims every client order id before it sends the order; live the
claim is a row in ``orders``, in a replay an entry here, with the same rule: an
id claimed once is never sent again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.messages import Leg, OrderIntent


@dataclass(frozen=True, slots=True)
class Claimed:
    """One order as claimed: the intent behind it and its route."""

    intent: OrderIntent
    leg: Leg
    route: str


@dataclass(frozen=True, slots=True)
class Episode:
    ts_ns: int
    intent_id: str
    strategy: str
    detail: dict[str, Any]


class MemoryClaims:
    """The :class:`~services.execution.router.OrderClaims` of a replay."""

    def __init__(self) -> None:
        self.orders: dict[str, Claimed] = {}
        self.episodes: list[Episode] = []

    async def claim(self, intent: OrderIntent, client_order_id: str, leg: Leg, route: str) -> bool:
        return await self.claim_all(intent, [(client_order_id, leg)], route)

    async def claim_all(
        self, intent: OrderIntent, orders: Sequence[tuple[str, Leg]], route: str
    ) -> bool:
        if any(coid in self.orders for coid, _ in orders):
            return False
        for coid, leg in orders:
            self.orders[coid] = Claimed(intent, leg, route)
        return True

    async def record_episode(self, intent: OrderIntent, ts_ns: int, detail: dict[str, Any]) -> None:
        self.episodes.append(Episode(ts_ns, intent.intent_id, intent.strategy, detail))
