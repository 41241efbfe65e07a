"""The live venue: Kalshi's V2 order endpoints, or the simulator speaking them.

Orders go out over REST (:class:`KalshiRest`); fills arrive on the private
``fill`` channel and order changes on ``user_orders`` (:class:`KalshiWebSocket`).

Readiness belongs to one connection: a disconnect ends it at once, and after
the reconnect :meth:`LiveVenue.reconcile` runs again (automatically) once the
fill subscription is live, so a fill is either streamed or listed over REST,
never lost between the two. Fills are reported once per ``trade_id``.

Kalshi reports fills in book terms (``book_side`` bid/ask, a YES price) and
its legacy ``side``/``action`` of a V2 order are the book side's leg bought
(an ask is "buy no", even when we sold YES). So a fill of an order we sent is
reported as the leg we sent, at that leg's price; only fills of orders this
process never sent fall back to what the exchange says.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol, TypeVar

import structlog

from services.execution.venue import (
    OrderRequest,
    TimeInForce,
    VenueOrder,
    VenueRejected,
    VenueSink,
)
from shared.backoff import Backoff
from shared.config import Settings
from shared.kalshi import models as m
from shared.kalshi.errors import (
    KalshiApiError,
    KalshiError,
    KalshiProtocolError,
    KalshiTransportError,
    NotFound,
    OrderStateUnknown,
    SendAborted,
)
from shared.kalshi.rest import KalshiRest
from shared.kalshi.signing import Signer
from shared.kalshi.ws import (
    Connected,
    Disconnected,
    Handler,
    KalshiWebSocket,
    SubscriptionActive,
    WsEvent,
)
from shared.messages import Action, Fill, Leg, OrderStatus, Side
from shared.money import ONE_DOLLAR, Count, Micros

log = structlog.get_logger("execution")

FILL_CHANNEL: Final = "fill"
ORDERS_CHANNEL: Final = "user_orders"
CHANNELS: Final = (FILL_CHANNEL, ORDERS_CHANNEL)
NS_PER_S: Final = 1_000_000_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)

T = TypeVar("T")
WsFactory = Callable[[Handler], KalshiWebSocket]
"""Builds the WebSocket client around the venue's handler."""


class _KalshiOrder(Protocol):
    """What REST orders and ``user_order`` messages have in common."""

    order_id: str
    ticker: str
    status: str
    client_order_id: str
    fill_count_fp: str
    remaining_count_fp: str


@dataclass(frozen=True, slots=True)
class _RawFill:
    """A fill as Kalshi told it (stream or REST), before it becomes our leg's fill."""

    trade_id: str
    order_id: str
    client_order_id: str
    ticker: str
    yes_price: Micros
    count: Count
    fee: Micros
    is_taker: bool
    ts_ns: int
    book_side: str
    side: str
    action: str
    fee_missing: bool = False


@dataclass(slots=True)
class _Sent:
    """An order this process sent: the leg it stands for, when, and its exchange id."""

    request: OrderRequest
    sent_ns: int
    order_id: str = ""


class LiveVenue:
    """Trades on Kalshi (or the simulator) through the shared client; see the module doc."""

    name: str = "live"
    paper: bool = False

    def __init__(
        self,
        rest: KalshiRest,
        connect_ws: WsFactory,
        *,
        clock: Callable[[], int] = time.time_ns,
        fill_lookback_s: float = 600.0,
        lookup_window_s: float = 86_400.0,
        clock_margin_s: float = 60.0,
        remember: int = 100_000,
        close_rest: bool = False,
    ) -> None:
        """``fill_lookback_s``: how far back the first reconcile lists fills.

        ``lookup_window_s``: how far back ``lookup`` searches for an order this
        process did not send; ``clock_margin_s`` widens every time filter for
        clock skew; ``remember`` bounds the trade ids and orders kept in memory.
        """
        self.rest = rest
        self._connect_ws = connect_ws
        self._clock = clock
        self._lookback_ns = int(fill_lookback_s * NS_PER_S)
        self._lookup_window_ns = int(lookup_window_s * NS_PER_S)
        self._margin_ns = int(clock_margin_s * NS_PER_S)
        self._remember = remember
        self._close_rest = close_rest
        self._ws: KalshiWebSocket | None = None
        self._sink: VenueSink | None = None
        self._sent: dict[str, _Sent] = {}
        self._cid_of: dict[str, str] = {}
        self._open: dict[str, VenueOrder] = {}
        self._seen: dict[str, None] = {}
        self._delivering: set[str] = set()
        self._active = {channel: asyncio.Event() for channel in CHANNELS}
        self._epoch = 0
        self._ready_epoch = -1
        self._last_fill_ns = 0
        self._gap_from_ns: int | None = 0
        """Fills since then may have been missed (None: the stream has them all)."""
        self._reconciling = asyncio.Lock()
        self._recovery: asyncio.Task[None] | None = None
        self._closing = False
        self.may_send: Callable[[Leg], bool] = lambda _leg: True
        """Asked before every attempt to create an order (execution: not halted, book
        trusted), so an order held in retries or by the rate limiter never leaves after a
        kill switch or once its book went bad."""
        # counters for the service to publish
        self.requests = 0
        self.errors = 0
        self.rejected = 0
        self.unknown = 0
        self.fills = 0
        self.fills_recovered = 0
        self.fees_missing = 0
        self.side_mismatches = 0
        self.reconciles = 0
        self.disconnects = 0

    @classmethod
    def from_settings(cls, settings: Settings, signer: Signer, **options: Any) -> LiveVenue:
        """The venue of the configured Kalshi environment, rate limited to its tier."""
        rest = KalshiRest.from_settings(settings.kalshi, signer)

        def connect(handler: Handler) -> KalshiWebSocket:
            return KalshiWebSocket.from_settings(settings.kalshi, signer, handler)

        return cls(rest, connect, close_rest=True, **options)

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        ws = self._ws
        return ws is not None and ws.connected and self._ready_epoch == self._epoch

    async def start(self, sink: VenueSink) -> None:
        """Connect, subscribe fills and order changes, then reconcile."""
        self._sink = sink
        self._closing = False
        self._gap_from_ns = self._clock() - self._lookback_ns
        self._ws = self._connect_ws(self._on_event)
        await self._ws.start()
        for channel in CHANNELS:
            await self._subscribe(channel)
        await self.reconcile()

    async def close(self) -> None:
        self._closing = True
        if self._recovery is not None:
            self._recovery.cancel()
            await asyncio.gather(self._recovery, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()
        if self._close_rest:
            await self.rest.aclose()

    async def reconcile(self) -> list[VenueOrder]:
        """Report the fills the stream may have missed, settle orders that changed; then ready.

        Fills are listed from where the gap opened (the connection lost, a fill
        the sink refused, or at start the lookback), less the clock margin.
        Ready only if the fill feed was live before the listing and the
        connection did not change meanwhile: every fill is then either in the
        listing or on the stream.
        """
        async with self._reconciling:
            epoch, live, gap = self._epoch, self._active[FILL_CHANNEL].is_set(), self._gap_from_ns
            self.reconciles += 1
            listed = await self._listing(self.rest.iter_fills(min_ts=self._fills_since_s(gap)))
            for raw in reversed(listed):  # Kalshi lists newest first
                await self._deliver(_from_rest(raw, self._clock()), recovered=True)
            resting = await self._listing(self.rest.iter_orders(status="resting"))
            orders = [self._note(_venue_order(o)) for o in resting]
            await self._settle_gone({o.order_id for o in orders})
            if live and epoch == self._epoch:
                if self._gap_from_ns == gap:  # no new gap opened while we listed
                    self._gap_from_ns = None
                self._ready_epoch = epoch
            return orders

    # --- orders ------------------------------------------------------------------------------

    async def submit(self, request: OrderRequest) -> VenueOrder:
        cid = request.client_order_id
        if not self.ready:
            self.rejected += 1
            raise VenueRejected(cid, "not reconciled")
        fresh = self._track(request)
        try:
            response = await self._call(
                self.rest.create_order(
                    _v2_order(request), may_send=lambda: self.may_send(request.leg)
                )
            )
        except SendAborted as exc:
            if fresh:
                self._sent.pop(cid, None)
            self.rejected += 1
            raise VenueRejected(cid, "no longer allowed when it was to be sent") from exc
        except OrderStateUnknown:
            self.unknown += 1
            raise
        except KalshiProtocolError as exc:  # it answered, but we cannot read what it did
            self.unknown += 1
            raise OrderStateUnknown([cid], f"unreadable answer: {exc}") from exc
        except (KalshiApiError, KalshiTransportError) as exc:
            if fresh:
                self._sent.pop(cid, None)
            self.rejected += 1
            raise VenueRejected(cid, _reason(exc)) from exc
        return self._accepted(request, response)

    async def cancel(self, order: VenueOrder) -> VenueOrder:
        order_id = order.order_id or await self._order_id_of(order)
        with contextlib.suppress(NotFound):  # no longer resting: get_order tells how it ended
            await self._call(self.rest.cancel_order(order_id))
        return self._note(_venue_order(await self._call(self.rest.get_order(order_id))))

    async def lookup(self, client_order_id: str, market: str) -> VenueOrder | None:
        found = await self._call(
            self.rest.find_order_by_client_id(
                client_order_id, ticker=market, min_ts=self._lookup_since_s(client_order_id)
            )
        )
        return None if found is None else self._note(_venue_order(found))

    def available(self, leg: Leg) -> Count | None:
        """The exchange's depth is not known here: the router reads the books itself."""
        return None

    async def open_orders(self) -> list[VenueOrder]:
        resting = await self._listing(self.rest.iter_orders(status="resting"))
        return [self._note(_venue_order(o)) for o in resting]

    def _track(self, request: OrderRequest) -> bool:
        """Remember what a client order id stands for; False if it was known already."""
        if request.client_order_id in self._sent:
            return False
        _bounded_put(
            self._sent, request.client_order_id, _Sent(request, self._clock()), self._remember
        )
        return True

    def _accepted(self, request: OrderRequest, response: m.CreateOrderV2Response) -> VenueOrder:
        filled, remaining = m.to_count(response.fill_count), m.to_count(response.remaining_count)
        order = VenueOrder(
            client_order_id=request.client_order_id,
            order_id=response.order_id,
            market=request.leg.market,
            status=_created_status(request, filled, remaining),
            filled=filled,
            remaining=remaining,
            reason=_created_reason(request, filled, remaining),
        )
        return self._note(order)

    async def _order_id_of(self, order: VenueOrder) -> str:
        found = await self.lookup(order.client_order_id, order.market)
        if found is None:
            raise VenueRejected(order.client_order_id, "no such order at the exchange")
        return found.order_id

    def _note(self, order: VenueOrder) -> VenueOrder:
        """Keep our view of an order: its ids, and whether it still rests."""
        if order.client_order_id:
            _bounded_put(self._cid_of, order.order_id, order.client_order_id, self._remember)
            sent = self._sent.get(order.client_order_id)
            if sent is not None:
                sent.order_id = order.order_id
        if order.done:
            self._open.pop(order.order_id, None)
        else:
            self._open[order.order_id] = order
        return order

    async def _settle_gone(self, resting: set[str]) -> None:
        """Report the final state of orders we saw resting that rest no more."""
        for order_id in [o for o in self._open if o not in resting]:
            try:
                final = _venue_order(await self._call(self.rest.get_order(order_id)))
            except NotFound:
                self._open.pop(order_id, None)
                continue
            await self._report_order(self._note(final))

    # --- the stream --------------------------------------------------------------------------

    async def _on_event(self, event: WsEvent) -> None:
        if isinstance(event, m.FillMessage):
            await self._on_fill(event.msg)
        elif isinstance(event, m.UserOrder):
            await self._report_order(self._note(_venue_order(event.msg)))
        elif isinstance(event, SubscriptionActive):
            if event.spec.channel in self._active:
                self._active[event.spec.channel].set()
        elif isinstance(event, Disconnected):
            self._lost(event.reason)
        elif isinstance(event, Connected) and event.connection > 1:
            self._recover_soon()

    async def _on_fill(self, msg: m.FillMsg) -> None:
        raw = _from_ws(msg, self._clock())
        try:
            await self._deliver(raw, recovered=False)
        except Exception:
            # the fill is not recorded: list it again from REST before trading on
            self._open_gap(raw.ts_ns)
            self._ready_epoch = -1
            self._recover_soon()
            raise

    def _lost(self, reason: str) -> None:
        self._open_gap(self._clock())
        self._epoch += 1
        self.disconnects += 1
        for active in self._active.values():
            active.clear()
        if not self._closing:
            log.warning("live venue disconnected: not ready until reconciled", reason=reason)

    def _recover_soon(self) -> None:
        if self._closing or (self._recovery is not None and not self._recovery.done()):
            return
        self._recovery = asyncio.create_task(self._recover(), name="live-venue-recover")

    async def _recover(self) -> None:
        """Until ready: wait for the fill feed on the new connection, then reconcile."""
        backoff = Backoff(base_s=0.5, cap_s=30.0)
        while not self._closing and not self.ready:
            try:
                await self._await_feeds()
                await self.reconcile()
            except (KalshiError, TimeoutError) as exc:
                log.warning("live venue reconcile failed; retrying", error=str(exc))
                await backoff.wait()
            except Exception as exc:  # the sink failed: try again, never give up silently
                log.exception("live venue reconcile failed in the sink", error=str(exc))
                await backoff.wait()

    async def _await_feeds(self) -> None:
        ws = self._require_ws()
        timeout_s = ws.command_timeout_s + 1.0
        await ws.wait_connected(timeout_s)
        for channel, active in self._active.items():
            try:
                async with asyncio.timeout(timeout_s):
                    await active.wait()
            except TimeoutError:  # its resubscription failed or went unanswered
                await self._subscribe(channel)

    async def _subscribe(self, channel: str) -> None:
        await self._require_ws().subscribe(channel)
        self._active[channel].set()

    def _require_ws(self) -> KalshiWebSocket:
        if self._ws is None:
            raise KalshiTransportError("the live venue is not started")
        return self._ws

    # --- fills -------------------------------------------------------------------------------

    async def _deliver(self, raw: _RawFill, *, recovered: bool) -> None:
        """Report one fill to the sink, once per trade id."""
        if raw.trade_id in self._seen or raw.trade_id in self._delivering:
            return
        self._delivering.add(raw.trade_id)
        try:
            fill = await self._translate(raw)
            if self._sink is not None:
                await self._sink.on_fill(fill)
        finally:
            self._delivering.discard(raw.trade_id)
        _bounded_put(self._seen, raw.trade_id, None, self._remember)
        self._last_fill_ns = max(self._last_fill_ns, raw.ts_ns)
        self.fills += 1
        self.fills_recovered += int(recovered)

    async def _translate(self, raw: _RawFill) -> Fill:
        cid = raw.client_order_id or await self._client_order_id(raw.order_id)
        sent = self._sent.get(cid) if cid else None
        side, action = self._direction(raw, sent.request.leg if sent else None)
        self.fees_missing += int(raw.fee_missing)  # reported as 0: Kalshi sent no fee_cost
        return Fill(
            trade_id=raw.trade_id,
            order_id=raw.order_id,
            client_order_id=cid,
            market=raw.ticker,
            side=side,
            action=action,
            price=raw.yes_price if side is Side.YES else ONE_DOLLAR - raw.yes_price,
            count=raw.count,
            fee=raw.fee,
            is_taker=raw.is_taker,
            ts_ns=raw.ts_ns,
            paper=False,
        )

    def _direction(self, raw: _RawFill, leg: Leg | None) -> tuple[Side, Action]:
        if leg is None:
            return _reported_direction(raw)
        book_side, _ = m.v2_direction(leg.side.value, leg.action.value, leg.price)
        if raw.book_side and raw.book_side != book_side:
            self.side_mismatches += 1
            log.error(
                "fill on the other book side than the order sent",
                trade_id=raw.trade_id,
                sent=book_side,
                reported=raw.book_side,
            )
        return leg.side, leg.action

    async def _client_order_id(self, order_id: str) -> str:
        """Kalshi dropped client_order_id from REST fills: map it through the order."""
        known = self._cid_of.get(order_id)
        if known is not None:
            return known
        try:
            order = await self._call(self.rest.get_order(order_id))
        except KalshiError as exc:
            log.warning("fill of an order we cannot look up", order_id=order_id, error=str(exc))
            return ""
        _bounded_put(self._cid_of, order_id, order.client_order_id, self._remember)
        return order.client_order_id

    async def _report_order(self, order: VenueOrder) -> None:
        if self._sink is not None:
            await self._sink.on_order(order)

    # --- bookkeeping -------------------------------------------------------------------------

    def _open_gap(self, from_ns: int) -> None:
        gap = self._gap_from_ns
        self._gap_from_ns = from_ns if gap is None else min(gap, from_ns)

    def _fills_since_s(self, gap_from_ns: int | None) -> int:
        """Where a fill listing starts: the gap, or (no gap) the last fill seen."""
        since = gap_from_ns if gap_from_ns is not None else self._last_fill_ns or self._clock()
        return max(0, since - self._margin_ns) // NS_PER_S

    def _lookup_since_s(self, client_order_id: str) -> int:
        sent = self._sent.get(client_order_id)
        since = sent.sent_ns if sent is not None else self._clock() - self._lookup_window_ns
        return max(0, since - self._margin_ns) // NS_PER_S

    async def _call(self, call: Awaitable[T]) -> T:
        self.requests += 1
        try:
            return await call
        except KalshiError:
            self.errors += 1
            raise

    async def _listing(self, items: AsyncIterator[T]) -> list[T]:
        async def collect() -> list[T]:
            return [item async for item in items]

        return await self._call(collect())


# --- translation -----------------------------------------------------------------------------


def _v2_order(request: OrderRequest) -> m.CreateOrderV2:
    leg = request.leg
    return m.new_order(
        leg.market,
        leg.side.value,
        leg.action.value,
        leg.price,
        leg.count,
        client_order_id=request.client_order_id,
        time_in_force=request.tif.value,
        post_only=request.post_only or None,
        reduce_only=request.reduce_only or None,
    )


def _created_status(request: OrderRequest, filled: Count, remaining: Count) -> OrderStatus:
    """What a create answer means: resting (part filled or not), filled, or canceled.

    An IOC that filled part and canceled the rest is CANCELED with ``filled`` > 0;
    so is a GTC post-only order the exchange canceled for crossing.
    """
    if remaining > 0:
        return OrderStatus.PARTIAL if filled else OrderStatus.RESTING
    return OrderStatus.FILLED if filled >= request.leg.count else OrderStatus.CANCELED


def _created_reason(request: OrderRequest, filled: Count, remaining: Count) -> str:
    if remaining > 0 or filled >= request.leg.count:
        return ""
    if request.tif is not TimeInForce.GTC:
        return f"{request.tif.value}: unfilled rest canceled"
    return "post_only_cross" if request.post_only else "canceled by the exchange"


def _venue_order(order: _KalshiOrder) -> VenueOrder:
    filled = m.to_count(order.fill_count_fp)
    remaining = m.to_count(order.remaining_count_fp)
    return VenueOrder(
        client_order_id=order.client_order_id,
        order_id=order.order_id,
        market=order.ticker,
        status=_order_status(order.status, filled, remaining),
        filled=filled,
        remaining=remaining,
    )


def _order_status(status: str, filled: Count, remaining: Count) -> OrderStatus:
    if status == "executed":
        return OrderStatus.FILLED
    if status == "canceled":
        return OrderStatus.CANCELED
    if status == "resting" or remaining > 0:
        return OrderStatus.PARTIAL if filled else OrderStatus.RESTING
    return OrderStatus.FILLED if filled else OrderStatus.CANCELED


def _reported_direction(raw: _RawFill) -> tuple[Side, Action]:
    """The leg of a fill of an order we did not send, as far as the exchange tells it.

    Kalshi's legacy side/action are used when they agree with the book side;
    otherwise the book side's leg, bought (a V2 ask reads "buy no").
    """
    side, action = raw.side, raw.action
    if side in ("yes", "no") and action in ("buy", "sell"):
        book_side = "bid" if (side == "yes") == (action == "buy") else "ask"
        if not raw.book_side or raw.book_side == book_side:
            return Side(side), Action(action)
    return (Side.NO if raw.book_side == "ask" else Side.YES), Action.BUY


def _from_ws(msg: m.FillMsg, now_ns: int) -> _RawFill:
    return _RawFill(
        trade_id=msg.trade_id,
        order_id=msg.order_id,
        client_order_id=msg.client_order_id or "",
        ticker=msg.market_ticker,
        yes_price=m.to_micros(msg.yes_price_dollars),
        count=m.to_count(msg.count_fp),
        fee=m.to_micros(msg.fee_cost) if msg.fee_cost else 0,
        is_taker=msg.is_taker,
        ts_ns=msg.ts_ms * 1_000_000 if msg.ts_ms is not None else now_ns,
        book_side=msg.book_side,
        side=msg.side,
        action=msg.action,
        fee_missing=msg.fee_cost is None,
    )


def _from_rest(fill: m.Fill, now_ns: int) -> _RawFill:
    return _RawFill(
        trade_id=fill.trade_id,
        order_id=fill.order_id,
        client_order_id="",
        ticker=fill.market_ticker or fill.ticker,
        yes_price=m.to_micros(fill.yes_price_dollars),
        count=m.to_count(fill.count_fp),
        fee=m.to_micros(fill.fee_cost) if fill.fee_cost else 0,
        is_taker=fill.is_taker,
        ts_ns=_rest_fill_ns(fill, now_ns),
        book_side=fill.book_side,
        side=fill.side,
        action=fill.action,
    )


def _rest_fill_ns(fill: m.Fill, now_ns: int) -> int:
    """``created_time`` (ms precision) if given, else ``ts`` (seconds), else now."""
    if fill.created_time:
        with contextlib.suppress(ValueError):
            stamp = datetime.fromisoformat(fill.created_time)
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=UTC)
            return (stamp - _EPOCH) // _MICROSECOND * 1000
    return fill.ts * NS_PER_S if fill.ts is not None else now_ns


def _reason(exc: KalshiError) -> str:
    if isinstance(exc, KalshiApiError):
        return f"{exc.code}: {exc.message}" if exc.message else exc.code
    return f"unreachable: {exc}"


def _bounded_put(store: dict[str, T], key: str, value: T, limit: int) -> None:
    store[key] = value
    while len(store) > limit:
        del store[next(iter(store))]
