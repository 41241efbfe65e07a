"""From an order intent to orders on a venue: sniper or maker, and what follows.

* **Sniper**: limit orders at the signal's prices, which cap what is paid
  (Kalshi has no market orders). One leg is IOC; a multi-leg arbitrage sends
  every leg at once as FOK (``asyncio.gather``). If the legs do not fill
  alike, what was filled beyond the least-filled leg is sold back at once
  (IOC, ``unwind_slippage`` under the best bid, reduce-only), and the whole
  episode is one audit record.
* **Maker**: a post-only bid one tick above the best bid, never crossing and
  never above the signal's price. It is faded (canceled) when its signal
  maker lifetime ends, and repriced when someone bids above it, up to ``max_reprices``
  times; each repricing is a new order with its own derived client order id.

Every order is claimed in Postgres before it is sent (a claimed id is never
sent again, so a restart or a redelivered intent cannot double an order).
When the venue cannot say what happened (timeout, 5xx, a dropped
connection), the order is UNKNOWN and is resolved by one lookup of its client
order id; it is never blindly retried.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import structlog

from services.execution.venue import (
    OrderRequest,
    OrderStateUnknown,
    TimeInForce,
    Venue,
    VenueOrder,
    VenueRejected,
)
from shared.ids import client_order_id
from shared.kalshi.errors import KalshiError
from shared.marketbooks import MarketBooks
from shared.messages import Action, Hop, Leg, OrderIntent, OrderStatus, Route
from shared.money import Count, Micros, cents, format_count
from shared.recent import Recent

log = structlog.get_logger("execution")

SEND_HOP: Final = "execution.send"
RECEIVED_HOP: Final = "ingest.rx"
API_ERROR: Final = "api_error"


@dataclass(frozen=True, slots=True)
class RouterConfig:
    max_reprices: int = 3
    maker_ttl_ns: int = 30 * 10**9
    """A resting maker order lives this long (its signal's own expiry is for takers)."""
    unwind_slippage: Micros = 50_000
    """Five cents under the best bid at most, when selling back an uneven leg."""


@dataclass(slots=True)
class Maker:
    """A resting maker order and the intent it serves."""

    intent: OrderIntent
    index: int
    attempt: int
    order: VenueOrder
    leg: Leg
    """The signal's leg: its price caps every repricing."""
    bid: Leg
    """The order as placed."""
    expires_ns: int


Report = Callable[[VenueOrder, Leg, list[Hop]], Awaitable[None]]
"""Record an order's new state (Postgres, then the ``orders`` stream)."""


class OrderClaims(Protocol):
    """Where orders are claimed before they are sent: Postgres live, memory in a replay."""

    async def claim(self, intent: OrderIntent, client_order_id: str, leg: Leg, route: str) -> bool:
        """Write one order before it is sent; False if its client order id exists already."""

    async def claim_all(
        self, intent: OrderIntent, orders: Sequence[tuple[str, Leg]], route: str
    ) -> bool:
        """Write every order of an intent, all or none; False if any id exists already."""

    async def record_episode(self, intent: OrderIntent, ts_ns: int, detail: dict[str, Any]) -> None:
        """A multi-leg execution (fills, unwinds) as one audit record."""


class Router:
    def __init__(
        self,
        venue: Venue,
        store: OrderClaims,
        books: MarketBooks,
        report: Report,
        config: RouterConfig = RouterConfig(),
        *,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.venue = venue
        self.store = store
        self.books = books
        self.report = report
        self.config = config
        self.clock = clock
        self.operator_halt = False
        """Kill or halt read from ``control`` directly: sticky until a resume command."""
        self.risk_halted = False
        """Risk's published trading state is HALTED."""
        self.makers: dict[str, Maker] = {}
        self.legs: Recent[str, Leg] = Recent(pinned=self.makers.__contains__)
        """The leg of every order sent or known, for its order events."""
        self.tick_to_order_ns: list[int] = []
        """Book change at ingest to order sent, per order (drained by the metrics)."""

    # --- intents ----------------------------------------------------------------------

    async def execute(self, intent: OrderIntent) -> None:
        route = intent.route.value
        orders = [(o.client_order_id, o.leg) for o in intent.orders]
        if not await self.store.claim_all(intent, orders, route):
            log.info("intent seen before, nothing sent again", intent_id=intent.intent_id)
            return
        refusal = self._refusal(intent)  # after the claim's await: as late as possible
        if refusal:
            for order in intent.orders:
                await self._report(_rejected(order.client_order_id, order.leg, refusal), order.leg)
            log.warning("intent not executed", intent_id=intent.intent_id, reason=refusal)
            return
        if intent.route is Route.MAKER and len(intent.orders) == 1:
            await self._make(intent, 0, 0, intent.orders[0].leg)
        else:
            await self._snipe(intent)

    @property
    def halted(self) -> bool:
        return self.operator_halt or self.risk_halted

    def _refusal(self, intent: OrderIntent) -> str:
        if self.halted:
            return "trading halted"
        if self.clock() > intent.expires_ns:
            return "expired before it could be sent"
        if not self.venue.ready:
            return "venue not reconciled with the exchange"
        untrusted = sorted({o.leg.market for o in intent.orders if not self.may_trade(o.leg)})
        if untrusted:  # the book went bad after the signal: never trade on it
            return f"book not trusted now: {', '.join(untrusted)}"
        return ""

    def may_trade(self, leg: Leg) -> bool:
        """An order for ``leg`` may leave now: not halted, and its book trusted."""
        return not self.halted and self.books.book(leg.market) is not None

    # --- sniper -----------------------------------------------------------------------

    async def _snipe(self, intent: OrderIntent) -> None:
        short = self._short_legs(intent) if len(intent.orders) > 1 else []
        if short:
            for order in intent.orders:
                why = f"legs not all available at their limits: {', '.join(short)}"
                await self._report(_rejected(order.client_order_id, order.leg, why), order.leg)
            return
        tif = TimeInForce.FOK if len(intent.orders) > 1 else TimeInForce.IOC
        requests = [OrderRequest(o.client_order_id, o.leg, tif) for o in intent.orders]
        results = await asyncio.gather(*(self.send(r, intent.hops) for r in requests))
        if len(requests) > 1:
            await self._even_out(intent, requests, results)

    def _short_legs(self, intent: OrderIntent) -> list[str]:
        """Legs the book visibly cannot fill: sending the others would only be unwound."""
        short = []
        for order in intent.orders:
            leg = order.leg
            available = self.venue.available(leg)
            if available is None:
                available = self._visible(leg)
            if available < leg.count:
                short.append(leg.market)
        return short

    def _visible(self, leg: Leg) -> Count:
        book = self.books.book(leg.market)
        if book is None:
            return 0
        if leg.action is Action.BUY:
            levels = book.asks(leg.side)
            return sum(lv.count for lv in levels if lv.price <= leg.price)
        return sum(lv.count for lv in book.bids(leg.side).levels() if lv.price >= leg.price)

    async def _even_out(
        self, intent: OrderIntent, requests: Sequence[OrderRequest], results: Sequence[VenueOrder]
    ) -> None:
        least = min(r.filled for r in results)
        unwinds = []
        for index, (request, result) in enumerate(zip(requests, results, strict=True)):
            excess = result.filled - least
            if excess > 0:
                unwinds.append(await self._unwind(intent, index, request.leg, excess))
        outcome = "complete" if not unwinds else "unwound"
        if least == 0 and not any(r.filled for r in results):
            outcome = "nothing filled"
        detail: dict[str, Any] = {
            "outcome": outcome,
            "legs": [
                {
                    "market": q.leg.market,
                    "side": q.leg.side.value,
                    "wanted": q.leg.count,
                    "filled": r.filled,
                    "status": r.status.value,
                }
                for q, r in zip(requests, results, strict=True)
            ],
            "unwinds": [
                {"market": u.market, "filled": u.filled, "status": u.status.value}
                for u in unwinds
                if u is not None
            ],
        }
        await self.store.record_episode(intent, self.clock(), detail)
        if unwinds:
            log.warning(
                "arbitrage legs filled unevenly, unwound", intent_id=intent.intent_id, **detail
            )

    async def _unwind(
        self, intent: OrderIntent, index: int, leg: Leg, count: Count
    ) -> VenueOrder | None:
        """Sell back ``count`` of a leg that filled beyond the others."""
        book = self.books.book(leg.market)
        best = None if book is None else book.best_bid(leg.side)
        if best is None:
            log.error("cannot unwind: no bid", market=leg.market, count=format_count(count))
            return None
        price = max(best.price - self.config.unwind_slippage, cents(1))
        sell = Leg(market=leg.market, side=leg.side, action=Action.SELL, price=price, count=count)
        coid = client_order_id(intent.signal_id, index, attempt=1)
        if not await self.store.claim(intent, coid, sell, "unwind"):
            return None
        request = OrderRequest(coid, sell, TimeInForce.IOC, reduce_only=True)
        return await self.send(request, [])

    # --- maker ------------------------------------------------------------------------

    async def _make(self, intent: OrderIntent, index: int, attempt: int, leg: Leg) -> None:
        price = self._maker_price(leg)
        coid = client_order_id(intent.signal_id, index, attempt)
        if price is None:
            await self._report(_rejected(coid, leg, "no room to bid without crossing"), leg)
            return
        bid = Leg(market=leg.market, side=leg.side, action=Action.BUY, price=price, count=leg.count)
        if attempt > 0 and not await self.store.claim(intent, coid, bid, intent.route.value):
            return
        request = OrderRequest(coid, bid, TimeInForce.GTC, post_only=True)
        result = await self.send(request, intent.hops if attempt == 0 else [])
        if not result.done:
            expires = self.clock() + self.config.maker_ttl_ns
            self.makers[coid] = Maker(intent, index, attempt, result, leg, bid, expires)

    def _maker_price(self, leg: Leg) -> Micros | None:
        """One tick above the best bid, under the best ask, at most the signal's price."""
        book = self.books.book(leg.market)
        if book is None:
            return None
        tick = book.grid.unit
        best_bid = book.best_bid(leg.side)
        price = min(leg.price, (best_bid.price if best_bid else 0) + tick)
        best_ask = book.best_ask(leg.side)
        if best_ask is not None and price >= best_ask.price:
            price = best_ask.price - tick
        return price if price > 0 else None

    async def fade(self) -> None:
        """Cancel makers whose signal expired; reprice those someone outbid."""
        now = self.clock()
        for coid, maker in list(self.makers.items()):
            if maker.order.done:
                self.makers.pop(coid, None)
                continue
            if now > maker.expires_ns:
                await self._cancel_maker(coid, "maker order expired: edge no longer known")
                continue
            book = self.books.book(maker.leg.market)
            best = None if book is None else book.best_bid(maker.leg.side)
            outbid = best is not None and best.price > maker.bid.price
            if book is None or outbid:
                await self._cancel_maker(coid, "book untrusted" if book is None else "outbid")
                may_reprice = not self.halted and maker.attempt < self.config.max_reprices
                if book is not None and may_reprice:  # a repricing is a new order
                    await self._make(maker.intent, maker.index, maker.attempt + 1, maker.leg)

    async def _cancel_maker(self, coid: str, why: str) -> None:
        maker = self.makers.pop(coid)
        try:
            final = await self.venue.cancel(maker.order)
        except (VenueRejected, OrderStateUnknown, KalshiError) as exc:
            log.warning("cancel failed", client_order_id=coid, error=str(exc))
            return
        await self._report(final, maker.bid, reason=why)

    def on_order(self, order: VenueOrder) -> None:
        """A maker's state from the venue (fills arrive on their own)."""
        maker = self.makers.get(order.client_order_id)
        if maker is not None:
            maker.order = order
            if order.done:
                self.makers.pop(order.client_order_id, None)

    # --- sending ----------------------------------------------------------------------

    async def send(self, request: OrderRequest, hops: list[Hop]) -> VenueOrder:
        """Submit one claimed order and report its state; UNKNOWN is resolved at once."""
        sent_ns = self.clock()
        self.legs[request.client_order_id] = request.leg
        stamped = [*hops, Hop(SEND_HOP, sent_ns)]
        received = next((h.ts_ns for h in hops if h.name == RECEIVED_HOP), None)
        if received is not None:
            self.tick_to_order_ns.append(sent_ns - received)
        try:
            result = await self.venue.submit(request)
        except VenueRejected as exc:
            result = _rejected(request.client_order_id, request.leg, exc.reason)
        except (OrderStateUnknown, KalshiError) as exc:
            result = await self._resolve(request, str(exc))
        await self._report(result, request.leg, stamped)
        return result

    async def _resolve(self, request: OrderRequest, cause: str) -> VenueOrder:
        unknown = VenueOrder(
            client_order_id=request.client_order_id,
            order_id="",
            market=request.leg.market,
            status=OrderStatus.UNKNOWN,
            filled=0,
            remaining=request.leg.count,
            reason=f"{API_ERROR}: {cause}",
        )
        await self._report(unknown, request.leg)
        found = await self.lookup(request.client_order_id, request.leg)
        if found is None:
            return _rejected(
                request.client_order_id, request.leg, "not at the exchange after an error"
            )
        return found

    async def lookup(self, coid: str, leg: Leg) -> VenueOrder | None:
        try:
            return await self.venue.lookup(coid, leg.market)
        except (OrderStateUnknown, KalshiError) as exc:
            log.error("lookup failed; order stays unknown", client_order_id=coid, error=str(exc))
            return VenueOrder(coid, "", leg.market, OrderStatus.UNKNOWN, 0, leg.count, str(exc))

    async def _report(
        self, order: VenueOrder, leg: Leg, hops: list[Hop] | None = None, *, reason: str = ""
    ) -> None:
        if reason and not order.reason:
            order = VenueOrder(
                order.client_order_id,
                order.order_id,
                order.market,
                order.status,
                order.filled,
                order.remaining,
                reason,
            )
        await self.report(order, leg, hops or [])

    # --- kill switch ------------------------------------------------------------------

    async def cancel_all(self, why: str) -> int:
        """Cancel every resting order at the venue (the kill switch); returns how many."""
        self.makers.clear()
        canceled = 0
        for order in await self.venue.open_orders():
            try:
                final = await self.venue.cancel(order)
            except (VenueRejected, OrderStateUnknown, KalshiError) as exc:
                log.error(
                    "kill: cancel failed", client_order_id=order.client_order_id, error=str(exc)
                )
                continue
            canceled += 1
            leg = self.legs.get(order.client_order_id)
            if leg is not None:
                await self._report(final, leg, reason=why)
        return canceled


def _rejected(coid: str, leg: Leg, reason: str) -> VenueOrder:
    return VenueOrder(coid, "", leg.market, OrderStatus.REJECTED, 0, 0, reason)
