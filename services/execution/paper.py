"""The paper venue: orders filled against the live books, as the exchange would fill them.

Takers walk the book level by level up to their limit (real slippage, see
:mod:`shared.matching`), remembering what they took until the exchange's book
changes at that level. Makers (post-only) join the back of their price level
and fill only when trades consume the queue ahead of them. Fees are charged as
live: the taker fee of an order rounded up to the cent once, the maker fee only
on series that charge it. Nothing here reaches the exchange.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

import structlog

from services.execution.venue import (
    OrderRequest,
    TimeInForce,
    VenueOrder,
    VenueRejected,
    VenueSink,
)
from shared.book import OrderBook
from shared.fees import FeeError, FeeRate, maker_rate, taker_rate
from shared.marketbooks import MarketBooks
from shared.matching import MakerQueue, TakenLiquidity, TakerResult, take, take_sell
from shared.messages import (
    Action,
    BookDelta,
    BookSnapshot,
    Fill,
    Leg,
    MarketData,
    MarketInfo,
    OrderStatus,
    Side,
    Trade,
)
from shared.money import Count, Micros
from shared.recent import Recent

log = structlog.get_logger("paper")

Rates = Callable[[str], tuple[FeeRate, FeeRate]]
"""market -> (taker rate, maker rate) from its series' fee schedule."""

DEFAULT_RATES: Final = (taker_rate("quadratic", "1"), maker_rate("quadratic", "1"))
"""Kalshi's general schedule, for a market whose own is unknown."""


def rates_of(info: MarketInfo | None) -> tuple[FeeRate, FeeRate]:
    """(taker, maker) rates of a market's fee schedule; the general one when unknown."""
    if info is None:
        return DEFAULT_RATES
    try:
        return (
            taker_rate(info.fee_type, info.fee_multiplier),
            maker_rate(info.fee_type, info.fee_multiplier),
        )
    except FeeError:
        return DEFAULT_RATES


@dataclass(slots=True)
class _Order:
    request: OrderRequest
    order_id: str
    status: OrderStatus
    filled: Count = 0
    queue: MakerQueue | None = None
    fills: int = 0

    @property
    def leg(self) -> Leg:
        return self.request.leg

    def view(self, reason: str = "") -> VenueOrder:
        return VenueOrder(
            client_order_id=self.request.client_order_id,
            order_id=self.order_id,
            market=self.leg.market,
            status=self.status,
            filled=self.filled,
            remaining=0 if self.status in _DONE else self.leg.count - self.filled,
            reason=reason,
        )


_DONE = (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED)


class PaperVenue:
    """Orders filled on paper against ``books`` (the live books execution keeps)."""

    name = "paper"
    paper = True

    def __init__(
        self, books: MarketBooks, rates: Rates, *, clock: Callable[[], int] = time.time_ns
    ) -> None:
        self.books = books
        self.rates = rates
        self.clock = clock
        self.taken = TakenLiquidity()
        self._orders: Recent[str, _Order] = Recent()  # resting ones also in _resting
        self._resting: dict[str, _Order] = {}
        self._sink: VenueSink | None = None

    # --- the Venue interface ----------------------------------------------------------

    async def start(self, sink: VenueSink) -> None:
        self._sink = sink

    async def close(self) -> None:
        self._sink = None

    @property
    def ready(self) -> bool:
        return self._sink is not None

    async def reconcile(self) -> list[VenueOrder]:
        return await self.open_orders()

    async def submit(self, request: OrderRequest) -> VenueOrder:
        coid = request.client_order_id
        if coid in self._orders:
            raise VenueRejected(coid, "duplicate client_order_id")
        book = self.books.book(request.leg.market)
        if book is None:
            raise VenueRejected(coid, "no trusted book for this market")
        order = _Order(request, f"paper-{coid}", OrderStatus.RESTING)
        self._orders[coid] = order
        taker, maker = self.rates(request.leg.market)
        if request.post_only:
            return self._rest(order, book, maker)
        result = self._take(request, book, taker)
        await self._report_taker(order, result)
        if request.tif is TimeInForce.GTC and order.filled < request.leg.count:
            return self._rest(order, book, maker)
        order.status = OrderStatus.FILLED if result.remaining == 0 else OrderStatus.CANCELED
        return order.view()

    async def cancel(self, order: VenueOrder) -> VenueOrder:
        held = self._orders.get(order.client_order_id)
        if held is None:
            raise VenueRejected(order.client_order_id, "unknown order")
        if held.status not in _DONE:
            held.status = OrderStatus.CANCELED
            self._resting.pop(order.client_order_id, None)
        return held.view()

    async def lookup(self, client_order_id: str, market: str) -> VenueOrder | None:
        held = self._orders.get(client_order_id)
        return None if held is None else held.view()

    async def open_orders(self) -> list[VenueOrder]:
        return [order.view() for order in self._resting.values()]

    def available(self, leg: Leg) -> Count | None:
        """Depth within the leg's limit, less what our own paper takes already used."""
        book = self.books.book(leg.market)
        if book is None:
            return 0
        taker, _ = self.rates(leg.market)
        walk = take if leg.action is Action.BUY else take_sell
        result = walk(
            book, leg.side, leg.price, leg.count, taker, fill_or_kill=False, taken=self.taken
        )
        return result.filled

    # --- the market moving ------------------------------------------------------------

    async def on_market_data(self, items: Iterable[MarketData]) -> None:
        """Book changes free the liquidity we took; trades fill the makers they reach."""
        for item in items:
            self.taken.on_market_data(item)
            if not self._resting:
                continue
            if isinstance(item, Trade):
                await self._on_trade(item)
            elif isinstance(item, BookDelta):
                self._on_delta(item)
            elif isinstance(item, BookSnapshot):
                self._on_snapshot(item)

    async def _on_trade(self, trade: Trade) -> None:
        for order in list(self._resting.values()):
            queue = order.queue
            if queue is None or queue.market != trade.market:
                continue
            before = queue.fees
            count = queue.on_trade(trade)
            if count:
                await self._maker_fill(order, count, queue.fees - before)

    def _on_delta(self, delta: BookDelta) -> None:
        for order in self._resting.values():
            queue = order.queue
            if queue is not None and queue.at(delta.market, delta.side, delta.price):
                queue.on_delta(delta.delta)

    def _on_snapshot(self, snapshot: BookSnapshot) -> None:
        for order in self._resting.values():
            queue = order.queue
            if queue is None or queue.market != snapshot.market:
                continue
            levels = snapshot.yes_bids if queue.side is Side.YES else snapshot.no_bids
            level = next((lv.count for lv in levels if lv.price == queue.price), 0)
            queue.resync(level)

    # --- internals --------------------------------------------------------------------

    def _take(self, request: OrderRequest, book: OrderBook, rate: FeeRate) -> TakerResult:
        leg = request.leg
        walk = take if leg.action is Action.BUY else take_sell
        fill_or_kill = request.tif is TimeInForce.FOK
        result = walk(
            book, leg.side, leg.price, leg.count, rate, fill_or_kill=fill_or_kill, taken=self.taken
        )
        self.taken.record(result)
        return result

    def _rest(self, order: _Order, book: OrderBook, rate: FeeRate) -> VenueOrder:
        leg = order.leg
        if leg.action is not Action.BUY:
            order.status = OrderStatus.REJECTED
            return order.view("paper makers only buy")
        best_ask = book.best_ask(leg.side)
        if order.request.post_only and best_ask is not None and leg.price >= best_ask.price:
            order.status = OrderStatus.REJECTED
            return order.view("post only order would cross")
        remaining = leg.count - order.filled
        queue = MakerQueue.join(book, leg.side, leg.price, remaining, rate)
        order.queue = queue
        order.status = OrderStatus.PARTIAL if order.filled else OrderStatus.RESTING
        self._resting[order.request.client_order_id] = order
        return order.view()

    async def _report_taker(self, order: _Order, result: TakerResult) -> None:
        """One Fill per level taken; the order's fee (rounded once) rides on the first."""
        fee = result.fee
        for level in result.fills:
            await self._fill(order, level.price, level.count, fee, is_taker=True)
            fee = 0

    async def _maker_fill(self, order: _Order, count: Count, fee: Micros) -> None:
        await self._fill(order, order.leg.price, count, fee, is_taker=False)
        queue = order.queue
        if queue is not None and queue.done:
            order.status = OrderStatus.FILLED
            self._resting.pop(order.request.client_order_id, None)
        else:
            order.status = OrderStatus.PARTIAL
        if self._sink is not None:
            await self._sink.on_order(order.view())

    async def _fill(
        self, order: _Order, price: Micros, count: Count, fee: Micros, *, is_taker: bool
    ) -> None:
        order.fills += 1
        order.filled += count
        leg = order.leg
        fill = Fill(
            trade_id=f"{order.order_id}:{order.fills}",
            order_id=order.order_id,
            client_order_id=order.request.client_order_id,
            market=leg.market,
            side=leg.side,
            action=leg.action,
            price=price,
            count=count,
            fee=fee,
            is_taker=is_taker,
            ts_ns=self.clock(),
            paper=True,
        )
        if self._sink is not None:
            await self._sink.on_fill(fill)
