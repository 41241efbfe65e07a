"""What execution needs from an exchange: one interface, a live and a paper adapter.

The router speaks only this interface, so live trading (Kalshi's V2 order
endpoints, or the simulator speaking them) and paper trading (fills against
the live books) run the same order path. Prices are the leg's own price
(``Leg.price``: a NO leg at $0.40 is a NO price), counts are hundredths.

An adapter reports what happens to orders through a :class:`VenueSink`: every
fill (``Fill``, unique by ``trade_id``) and every change of an order's state
(:class:`VenueOrder`). ``submit`` answers with the state the exchange
acknowledged; when it cannot know (timeout, 5xx, a dropped connection) it
raises :class:`OrderStateUnknown` and the router resolves the order by
``lookup(client_order_id)`` before anything else is sent for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from shared.kalshi.errors import OrderStateUnknown
from shared.messages import Fill, Hop, Leg, OrderEvent, OrderStatus
from shared.money import Count
from shared.recent import ORDERS_REMEMBERED, Recent

__all__ = [
    "OrderRequest",
    "OrderStateUnknown",
    "ReportedStates",
    "TimeInForce",
    "Venue",
    "VenueOrder",
    "VenueRejected",
    "VenueSink",
    "order_event",
]


class TimeInForce(StrEnum):
    GTC = "good_till_canceled"
    IOC = "immediate_or_cancel"
    FOK = "fill_or_kill"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One limit order: ``leg.price`` is the worst price accepted (a cap for buys)."""

    client_order_id: str
    leg: Leg
    tif: TimeInForce
    post_only: bool = False
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """The exchange's view of one of our orders."""

    client_order_id: str
    order_id: str
    market: str
    status: OrderStatus
    """RESTING, PARTIAL (resting, part filled), FILLED, CANCELED or REJECTED."""
    filled: Count
    remaining: Count
    reason: str = ""

    @property
    def done(self) -> bool:
        return self.status in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED)


class ReportedStates:
    """The last state told of each order: a venue may tell one twice (its answer and
    its order stream), and it counts once. Remembers the newest ``limit`` orders."""

    def __init__(self, limit: int = ORDERS_REMEMBERED) -> None:
        self._last: Recent[str, tuple[OrderStatus, int, int]] = Recent(limit)

    def news(self, order: VenueOrder) -> bool:
        """True (and remembered) if this is not the state last told of the order."""
        state = (order.status, order.filled, order.remaining)
        if self._last.get(order.client_order_id) == state:
            return False
        self._last[order.client_order_id] = state
        return True


def order_event(order: VenueOrder, leg: Leg, hops: list[Hop], ts_ns: int) -> OrderEvent:
    """The ``orders`` stream's message of an order's new state."""
    return OrderEvent(
        client_order_id=order.client_order_id,
        order_id=order.order_id,
        market=order.market,
        status=order.status,
        leg=leg,
        filled=order.filled,
        remaining=order.remaining,
        reason=order.reason,
        ts_ns=ts_ns,
        hops=list(hops),
    )


class VenueRejected(Exception):
    """The exchange refused the order outright (nothing rests, nothing filled)."""

    def __init__(self, client_order_id: str, reason: str) -> None:
        super().__init__(f"{client_order_id}: {reason}")
        self.client_order_id = client_order_id
        self.reason = reason


class VenueSink(Protocol):
    """Where an adapter reports fills and order changes (the execution service)."""

    async def on_fill(self, fill: Fill) -> None: ...

    async def on_order(self, order: VenueOrder) -> None: ...


class Venue(Protocol):
    """An exchange to trade on; ``paper`` marks simulated fills in the ledger."""

    name: str
    paper: bool

    async def start(self, sink: VenueSink) -> None:
        """Connect and start reporting fills and order changes to ``sink``."""

    async def close(self) -> None: ...

    @property
    def ready(self) -> bool:
        """True once reconciled with the exchange; nothing is submitted before."""

    async def reconcile(self) -> list[VenueOrder]:
        """Bring our view in line with the exchange; returns its open orders.

        Fills the exchange made that we have not seen are reported to the sink
        (the ledger deduplicates by trade id). Called on start and after every
        reconnect; ``ready`` is False until it has passed.
        """

    async def submit(self, request: OrderRequest) -> VenueOrder:
        """Send one order; raises VenueRejected, or OrderStateUnknown when unsure."""

    async def cancel(self, order: VenueOrder) -> VenueOrder:
        """Cancel what remains of a resting order; returns its final state."""

    async def lookup(self, client_order_id: str, market: str) -> VenueOrder | None:
        """The order with this client order id, or None if the exchange never saw it."""

    async def open_orders(self) -> list[VenueOrder]: ...

    def available(self, leg: Leg) -> Count | None:
        """What the venue would fill of ``leg`` at its limit now, or None if it cannot tell."""
