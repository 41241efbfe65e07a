"""Parts shared by the execution tests that trade at the simulator (fixtures in conftest)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from services.execution.venue import VenueOrder
from services.simulator.server import SimulatorServer
from shared.kalshi import KalshiRest, KalshiWebSocket, ReconnectPolicy, RetryPolicy
from shared.kalshi import models as m
from shared.kalshi.ws import Handler
from shared.messages import Fill
from shared.money import Count, Micros
from tests.services.simulator.kit import signer

FAST = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05)
RECONNECT = ReconnectPolicy(initial_s=1.0, max_s=2.0)
"""A second or more without a socket after a drop: time to trade while alice is away."""


@dataclass
class Recorder:
    """A VenueSink that keeps everything it is told."""

    fills: list[Fill] = field(default_factory=list)
    orders: list[VenueOrder] = field(default_factory=list)

    async def on_fill(self, fill: Fill) -> None:
        self.fills.append(fill)

    async def on_order(self, order: VenueOrder) -> None:
        self.orders.append(order)

    def fills_of(self, order_id: str) -> list[Fill]:
        return [f for f in self.fills if f.order_id == order_id]

    def last_order(self, client_order_id: str) -> VenueOrder | None:
        seen = [o for o in self.orders if o.client_order_id == client_order_id]
        return seen[-1] if seen else None


@dataclass(frozen=True)
class Market:
    ticker: str
    fee_type: str
    fee_multiplier: str


def ws_factory(sim: SimulatorServer) -> Any:
    def connect(handler: Handler) -> KalshiWebSocket:
        return KalshiWebSocket(
            sim.ws_url, signer("alice"), handler, reconnect=RECONNECT, rng=random.Random(3)
        )

    return connect


async def rest_on(
    bob: KalshiRest, market: Market, side: m.LegSide, price: Micros, count: Count
) -> str:
    """Bob bids ``price`` for ``count`` of ``side`` (a NO bid at p is a YES ask at 1 - p)."""
    order = m.new_order(market.ticker, side, "buy", price, count, client_order_id=str(uuid.uuid4()))
    return (await bob.create_order(order)).order_id
