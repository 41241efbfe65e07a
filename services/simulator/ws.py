"""The WebSocket API at ``/trade-api/ws/v2``: commands, channels, per-subscription seq.

Every connection has one outgoing queue, so a snapshot queued by a command
and the deltas queued by later engine changes reach the client in the order
the book changed. ``seq`` counts the ``orderbook_delta`` messages of a
subscription (snapshots included), one by one, across its markets.

The queue is bounded (``queue_limit`` data messages per connection). When a
client reads too slowly and it fills, the subscription with the most messages
waiting is dropped, as if unsubscribed: its waiting messages are discarded and
the client gets error 25 (subscription buffer overflow) carrying the ``sid``,
then has to subscribe again for fresh snapshots. Kalshi documents only the
code; what it does to the subscription is our reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from services.simulator.engine import Exchange
from services.simulator.faults import FaultInjector
from services.simulator.model import (
    BookDelta,
    BookSide,
    ExchangeEvent,
    Fill,
    Lifecycle,
    Order,
    OrderUpdate,
    PositionUpdate,
    Trade,
)
from services.simulator.shapes import JSON, count, dollars, iso, iso_required
from shared.money import ONE_DOLLAR, Micros

ORDERBOOK: Final = "orderbook_delta"
CHANNELS: Final = frozenset(
    {
        ORDERBOOK,
        "ticker",
        "trade",
        "fill",
        "market_positions",
        "market_lifecycle_v2",
        "multivariate",
        "communications",
        "order_group_updates",
        "user_orders",
    }
)
ERRORS: Final = {
    1: "Unable to process message",
    2: "Params required",
    3: "Channels required",
    4: "Subscription IDs required",
    5: "Unknown command",
    6: "Already subscribed",
    7: "Unknown subscription ID",
    8: "Unknown channel name",
    11: "Invalid parameter",
    12: "Exactly one subscription ID is required",
    13: "Unsupported action",
    14: "Market Ticker required",
    15: "Action required",
    16: "Market not found",
    25: "Subscription buffer overflow",
}
BUFFER_OVERFLOW: Final = 25
DEFAULT_QUEUE_LIMIT: Final = 100_000
"""Data messages waiting for one connection before its biggest subscription is dropped."""
REORDER_HOLD_S: Final = 0.2
CLOSE_TIMEOUT_S: Final = 1.0
"""How long a forced disconnect waits for a client to answer the close."""
"""How long ``ws_reorder_rate`` holds a message back waiting for the next one to swap with."""
_encoder = msgspec.json.Encoder()


class CommandError(Exception):
    def __init__(self, code: int, market_ticker: str | None = None) -> None:
        super().__init__(ERRORS[code])
        self.code = code
        self.market_ticker = market_ticker


@dataclass
class Subscription:
    sid: int
    channel: str
    tickers: set[str] | None  # None: every market
    use_yes_price: bool = False
    seq: int = 0

    def covers(self, ticker: str) -> bool:
        return self.tickers is None or ticker in self.tickers


def _no_log(fault: str, target: str, detail: str = "") -> None:
    pass


@dataclass(eq=False)
class Connection:
    websocket: WebSocket
    key_id: str
    user_id: str
    limit: int = DEFAULT_QUEUE_LIMIT
    log: Callable[[str, str, str], None] = _no_log
    subs: dict[int, Subscription] = field(default_factory=dict)
    pending: deque[tuple[int, str]] = field(default_factory=deque)
    """Outgoing messages: (sid of a data message, or 0 for a command reply; text)."""
    queued: dict[int, int] = field(default_factory=dict)
    """Data messages waiting, per sid."""
    waiting: int = 0
    """Data messages waiting, in all."""
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    sids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def send(self, payload: JSON, *, data: bool = True) -> None:
        sid = int(payload.get("sid", 0)) if data else 0
        if sid and self.waiting >= self.limit:
            victim = self._overflow(sid)
            if victim == sid:
                return
        self.pending.append((sid, _encoder.encode(payload).decode()))
        if sid:
            self.queued[sid] = self.queued.get(sid, 0) + 1
            self.waiting += 1
        self.ready.set()

    def _overflow(self, incoming: int) -> int:
        """Drop the subscription with most messages waiting; tell the client (error 25)."""
        victim = max(self.queued, key=lambda sid: (self.queued[sid], sid == incoming))
        self.subs.pop(victim, None)
        self.pending = deque(item for item in self.pending if item[0] != victim)
        dropped = self.queued.pop(victim)
        self.waiting -= dropped
        self.log("ws_buffer_overflow", f"ws:{self.key_id}", f"sid {victim}: {dropped} dropped")
        error: JSON = {
            "id": 0,
            "type": "error",
            "sid": victim,
            "msg": {"code": BUFFER_OVERFLOW, "msg": ERRORS[BUFFER_OVERFLOW]},
        }
        self.pending.append((0, _encoder.encode(error).decode()))
        self.ready.set()
        return victim

    async def next(self) -> tuple[int, str]:
        while not self.pending:
            self.ready.clear()
            await self.ready.wait()
        sid, text = self.pending.popleft()
        if sid:
            self.waiting -= 1
            left = self.queued.get(sid, 0) - 1
            if left > 0:
                self.queued[sid] = left
            else:
                self.queued.pop(sid, None)
        return sid, text

    def of_channel(self, channel: str) -> Iterable[Subscription]:
        # a list: sending can drop a subscription (buffer overflow) mid-iteration
        return [sub for sub in self.subs.values() if sub.channel == channel]


class Hub:
    """Every open connection, and the fan-out of exchange events to their subscriptions."""

    def __init__(
        self, exchange: Exchange, faults: FaultInjector, queue_limit: int = DEFAULT_QUEUE_LIMIT
    ) -> None:
        self.exchange = exchange
        self.faults = faults
        self.queue_limit = queue_limit
        self.connections: set[Connection] = set()
        self._last_ticker: dict[str, tuple[object, ...]] = {}
        self.delta_count = 0

    # --- fan-out ----------------------------------------------------------------------

    def publish(self, events: list[ExchangeEvent]) -> None:
        touched: dict[str, None] = {}
        last_order_update: dict[str, OrderUpdate] = {}
        for event in events:
            if isinstance(event, BookDelta):
                touched[event.ticker] = None
                self._book_delta(event)
            elif isinstance(event, Trade):
                touched[event.ticker] = None
                self._trade(event)
            elif isinstance(event, Fill):
                self._fill(event)
            elif isinstance(event, OrderUpdate):
                last_order_update[event.order.order_id] = event
            elif isinstance(event, Lifecycle):
                self._lifecycle(event)
            elif isinstance(event, PositionUpdate):
                self._position(event)
        for update in last_order_update.values():
            self._user_order(update)
        for ticker in touched:
            self._ticker(ticker)

    def _book_delta(self, delta: BookDelta) -> None:
        for conn in self.connections:
            for sub in conn.of_channel(ORDERBOOK):
                if not sub.covers(delta.ticker):
                    continue
                sub.seq += 1
                self.delta_count += 1
                conn.send(self._delta_json(conn, sub, delta))

    def _delta_json(self, conn: Connection, sub: Subscription, delta: BookDelta) -> JSON:
        price = delta.price
        if sub.use_yes_price and delta.side == "no":
            price = ONE_DOLLAR - price
        msg: JSON = {
            "market_ticker": delta.ticker,
            "market_id": self.exchange.markets[delta.ticker].market_id,
            "price_dollars": dollars(price),
            "delta_fp": count(delta.delta),
            "side": delta.side,
            "ts": iso(delta.ts_ms),
            "ts_ms": delta.ts_ms,
        }
        if delta.account == conn.key_id and delta.client_order_id:
            msg["client_order_id"] = delta.client_order_id
        return {"type": "orderbook_delta", "sid": sub.sid, "seq": sub.seq, "msg": msg}

    def snapshot(self, conn: Connection, sub: Subscription, ticker: str) -> None:
        book = self.exchange.book(ticker)
        msg: JSON = {
            "market_ticker": ticker,
            "market_id": self.exchange.markets[ticker].market_id,
        }
        yes = book.yes.depth()
        no: list[tuple[Micros, int]] = book.no.depth()
        if sub.use_yes_price:
            no = sorted((ONE_DOLLAR - price, size) for price, size in no)
        if yes:
            msg["yes_dollars_fp"] = [[dollars(p), count(c)] for p, c in yes]
        if no:
            msg["no_dollars_fp"] = [[dollars(p), count(c)] for p, c in no]
        sub.seq += 1
        conn.send({"type": "orderbook_snapshot", "sid": sub.sid, "seq": sub.seq, "msg": msg})

    def _trade(self, trade: Trade) -> None:
        taker = "yes" if trade.taker_side is BookSide.BID else "no"
        msg = {
            "trade_id": trade.trade_id,
            "market_ticker": trade.ticker,
            "yes_price_dollars": dollars(trade.yes_price),
            "no_price_dollars": dollars(ONE_DOLLAR - trade.yes_price),
            "count_fp": count(trade.count),
            "taker_side": taker,
            "taker_outcome_side": taker,
            "taker_book_side": trade.taker_side.value,
            "is_block_trade": False,
            "ts": trade.ts_ms // 1000,
            "ts_ms": trade.ts_ms,
        }
        for conn in self.connections:
            for sub in conn.of_channel("trade"):
                if sub.covers(trade.ticker):
                    conn.send({"type": "trade", "sid": sub.sid, "msg": msg})

    def _ticker(self, ticker: str) -> None:
        market = self.exchange.markets[ticker]
        book = self.exchange.book(ticker)
        best_yes, best_no = book.yes.best(), book.no.best()
        state = (
            market.last_price,
            best_yes,
            best_no,
            book.yes.size_at(best_yes) if best_yes else 0,
            book.no.size_at(best_no) if best_no else 0,
            market.volume,
            market.open_interest,
        )
        if self._last_ticker.get(ticker) == state:
            return
        self._last_ticker[ticker] = state
        subscribers = [
            (conn, sub)
            for conn in self.connections
            for sub in conn.of_channel("ticker")
            if sub.covers(ticker)
        ]
        if not subscribers:
            return
        now = self.exchange.clock_ms()
        msg = {
            "market_ticker": ticker,
            "market_id": market.market_id,
            "price_dollars": dollars(market.last_price),
            "yes_bid_dollars": dollars(best_yes or 0),
            "yes_ask_dollars": dollars(ONE_DOLLAR - best_no if best_no else ONE_DOLLAR),
            "yes_bid_size_fp": count(state[3]),
            "yes_ask_size_fp": count(state[4]),
            "volume_fp": count(market.volume),
            "open_interest_fp": count(market.open_interest),
            "dollar_volume": market.volume // 100,
            "dollar_open_interest": market.open_interest // 100,
            "ts": now // 1000,
            "ts_ms": now,
            "time": iso(now),
        }
        for conn, sub in subscribers:
            conn.send({"type": "ticker", "sid": sub.sid, "msg": msg})

    def _fill(self, fill: Fill) -> None:
        for conn in self.connections:
            if conn.key_id != fill.account:
                continue
            msg: JSON = {
                "trade_id": fill.trade_id,
                "order_id": fill.order_id,
                "market_ticker": fill.ticker,
                "is_taker": fill.is_taker,
                "side": fill.side,
                "action": fill.action,
                "outcome_side": fill.book_side.leg,
                "book_side": fill.book_side.value,
                "purchased_side": fill.book_side.leg,
                "yes_price_dollars": dollars(fill.yes_price),
                "count_fp": count(fill.count),
                "fee_cost": dollars(fill.fee),
                "post_position_fp": count(fill.post_position),
                "ts": fill.ts_ms // 1000,
                "ts_ms": fill.ts_ms,
            }
            if fill.client_order_id:
                msg["client_order_id"] = fill.client_order_id
            for sub in conn.of_channel("fill"):
                if sub.covers(fill.ticker):
                    conn.send({"type": "fill", "sid": sub.sid, "msg": msg})

    def _position(self, update: PositionUpdate) -> None:
        for conn in self.connections:
            if conn.key_id != update.account:
                continue
            for sub in conn.of_channel("market_positions"):
                if sub.covers(update.ticker):
                    msg = {
                        "user_id": conn.user_id,
                        "market_ticker": update.ticker,
                        "position_fp": count(update.position),
                        "position_cost_dollars": dollars(update.cost),
                        "realized_pnl_dollars": dollars(update.realized_pnl),
                        "fees_paid_dollars": dollars(update.fees_paid),
                        "position_fee_cost_dollars": dollars(update.fee_cost),
                        "volume_fp": count(update.volume),
                    }
                    conn.send({"type": "market_position", "sid": sub.sid, "msg": msg})

    def _user_order(self, update: OrderUpdate) -> None:
        for conn in self.connections:
            if conn.key_id != update.account:
                continue
            for sub in conn.of_channel("user_orders"):
                if sub.covers(update.order.ticker):
                    msg = user_order_json(update.order, conn.user_id)
                    conn.send({"type": "user_order", "sid": sub.sid, "msg": msg})

    def _lifecycle(self, event: Lifecycle) -> None:
        market = self.exchange.markets[event.ticker]
        msg: JSON = {
            "event_type": event.event_type,
            "market_ticker": event.ticker,
            "open_ts": market.open_ms // 1000,
            "close_ts": market.close_ms // 1000,
        }
        if event.event_type == "determined":
            msg |= {"result": event.result, "determination_ts": event.ts_ms // 1000}
        if event.event_type == "settled":
            msg |= {"result": event.result, "settled_ts": event.ts_ms // 1000}
        if event.event_type == "deactivated":
            msg["is_deactivated"] = True
        if event.event_type == "created":
            msg["additional_metadata"] = {
                "name": market.title,
                "title": market.title,
                "yes_sub_title": market.yes_sub_title,
                "no_sub_title": market.no_sub_title,
                "rules_primary": market.rules_primary,
                "rules_secondary": "",
                "can_close_early": True,
                "event_ticker": market.event_ticker,
                "expected_expiration_ts": market.expected_expiration_ms // 1000,
                **({"strike_type": market.strike_type} if market.strike_type else {}),
                **(
                    {"floor_strike": market.floor_strike} if market.floor_strike is not None else {}
                ),
                **({"cap_strike": market.cap_strike} if market.cap_strike is not None else {}),
            }
        for conn in self.connections:
            for sub in conn.of_channel("market_lifecycle_v2"):
                if sub.covers(event.ticker):
                    conn.send({"type": "market_lifecycle_v2", "sid": sub.sid, "msg": msg})

    # --- commands -----------------------------------------------------------------------

    def handle(self, conn: Connection, raw: str) -> None:
        command_id = 0
        try:
            try:
                command = msgspec.json.decode(raw)
            except msgspec.DecodeError:
                raise CommandError(1) from None
            if not isinstance(command, dict):
                raise CommandError(1)
            command_id = command.get("id", 0) if isinstance(command.get("id", 0), int) else 0
            self._dispatch(conn, command_id, command)
        except CommandError as exc:
            msg: JSON = {"code": exc.code, "msg": ERRORS[exc.code]}
            if exc.market_ticker:
                msg["market_ticker"] = exc.market_ticker
            conn.send({"id": command_id, "type": "error", "msg": msg}, data=False)

    def _dispatch(self, conn: Connection, command_id: int, command: dict[str, Any]) -> None:
        cmd = command.get("cmd")
        params = command.get("params")
        if cmd == "list_subscriptions":
            listing = [{"channel": s.channel, "sid": s.sid} for s in conn.subs.values()]
            conn.send({"id": command_id, "type": "ok", "msg": listing}, data=False)
            return
        if cmd not in ("subscribe", "unsubscribe", "update_subscription"):
            raise CommandError(5)
        if not isinstance(params, dict):
            raise CommandError(2)
        if cmd == "subscribe":
            self._subscribe(conn, command_id, params)
        elif cmd == "unsubscribe":
            self._unsubscribe(conn, command_id, params)
        else:
            self._update(conn, command_id, params)

    def _tickers(self, params: dict[str, Any]) -> list[str] | None:
        tickers: list[str] = []
        if "market_ticker" in params:
            tickers.append(params["market_ticker"])
        if "market_tickers" in params:
            if not isinstance(params["market_tickers"], list):
                raise CommandError(11)
            tickers.extend(params["market_tickers"])
        ids = params.get("market_ids") or ([params["market_id"]] if "market_id" in params else [])
        if ids:
            by_id = {m.market_id: m.ticker for m in self.exchange.markets.values()}
            for market_id in ids:
                if market_id not in by_id:
                    raise CommandError(16)
                tickers.append(by_id[market_id])
        for ticker in tickers:
            if not isinstance(ticker, str) or ticker not in self.exchange.markets:
                raise CommandError(16, ticker if isinstance(ticker, str) else None)
        return list(dict.fromkeys(tickers)) or None

    def _subscribe(self, conn: Connection, command_id: int, params: dict[str, Any]) -> None:
        channels = params.get("channels")
        if not channels or not isinstance(channels, list):
            raise CommandError(3)
        if any(channel not in CHANNELS for channel in channels):
            raise CommandError(8)
        tickers = self._tickers(params)
        if ORDERBOOK in channels and tickers is None:
            raise CommandError(14)
        for channel in channels:
            if self._already(conn, channel, tickers):
                raise CommandError(6)
        for channel in channels:
            sub = Subscription(
                sid=next(conn.sids),
                channel=channel,
                tickers=set(tickers) if tickers is not None else None,
                use_yes_price=bool(params.get("use_yes_price", False)) and channel == ORDERBOOK,
            )
            conn.subs[sub.sid] = sub
            conn.send(
                {
                    "id": command_id,
                    "type": "subscribed",
                    "msg": {"channel": channel, "sid": sub.sid},
                },
                data=False,
            )
            if channel == ORDERBOOK:
                for ticker in tickers or ():
                    self.snapshot(conn, sub, ticker)

    @staticmethod
    def _already(conn: Connection, channel: str, tickers: list[str] | None) -> bool:
        for sub in conn.of_channel(channel):
            if sub.tickers is None or (tickers is not None and set(tickers) <= sub.tickers):
                return True
        return False

    def _unsubscribe(self, conn: Connection, command_id: int, params: dict[str, Any]) -> None:
        sids = params.get("sids")
        if not sids or not isinstance(sids, list):
            raise CommandError(4)
        if any(sid not in conn.subs for sid in sids):
            raise CommandError(7)
        for sid in sids:
            sub = conn.subs.pop(sid)
            conn.send(
                {"id": command_id, "sid": sid, "seq": max(sub.seq, 1), "type": "unsubscribed"},
                data=False,
            )

    def _update(self, conn: Connection, command_id: int, params: dict[str, Any]) -> None:
        sids = params.get("sids") or ([params["sid"]] if "sid" in params else [])
        if not isinstance(sids, list) or len(sids) != 1:
            raise CommandError(12)
        action = params.get("action")
        if not action:
            raise CommandError(15)
        if action not in ("add_markets", "delete_markets", "get_snapshot"):
            raise CommandError(13)
        sub = conn.subs.get(sids[0])
        if sub is None:
            raise CommandError(7)
        tickers = self._tickers(params)
        if not tickers:
            raise CommandError(14)
        if action == "get_snapshot":
            if sub.channel != ORDERBOOK:
                raise CommandError(13)
            for ticker in tickers:
                self.snapshot(conn, sub, ticker)
            return
        if sub.tickers is None:
            raise CommandError(13)
        if action == "add_markets":
            added = [t for t in tickers if t not in sub.tickers]
            sub.tickers.update(added)
            if sub.channel == ORDERBOOK:
                for ticker in added:
                    self.snapshot(conn, sub, ticker)
        else:
            sub.tickers.difference_update(tickers)
        conn.send(
            {
                "id": command_id,
                "sid": sub.sid,
                "type": "ok",
                "msg": {"market_tickers": sorted(sub.tickers)},
            },
            data=False,
        )

    # --- the connection's life ------------------------------------------------------------

    def connection(self, websocket: WebSocket, key_id: str, user_id: str) -> Connection:
        return Connection(
            websocket, key_id, user_id, limit=self.queue_limit, log=self.faults.record
        )

    async def serve(self, conn: Connection) -> None:
        self.connections.add(conn)
        sender = asyncio.create_task(self._sender(conn))
        try:
            while True:
                raw = await conn.websocket.receive_text()
                self.handle(conn, raw)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.connections.discard(conn)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender

    async def _sender(self, conn: Connection) -> None:
        held: str | None = None
        target = f"ws:{conn.key_id}"
        send = conn.websocket.send_text
        while True:
            if held is None:
                sid, text = await conn.next()
            else:
                try:
                    sid, text = await asyncio.wait_for(conn.next(), REORDER_HOLD_S)
                except TimeoutError:  # nothing to swap with: send it late
                    await send(held)
                    held = None
                    continue
            if self.faults.stalled():
                await self._sit_out_stall(target)
            if not sid:
                await send(text)
                continue
            action = self.faults.ws_action()
            if action == "drop":
                self.faults.record("ws_drop", target, text[:200])
                continue
            if action == "reorder" and held is None:
                held = text
                continue
            await send(text)
            if action == "duplicate":
                self.faults.record("ws_duplicate", target, text[:200])
                await send(text)
            if held is not None:
                self.faults.record("ws_reorder", target, f"{held[:100]} sent after {text[:100]}")
                await send(held)
                held = None

    async def _sit_out_stall(self, target: str) -> None:
        remaining = self.faults.stall_remaining()
        self.faults.record("feed_stall", target, f"output held {remaining:.3f} s")
        # polled, not awaited on an event: setting or clearing faults moves the end
        while self.faults.stalled():  # noqa: ASYNC110
            await asyncio.sleep(min(0.02, self.faults.stall_remaining()))

    async def disconnect_all(self) -> None:
        """Close every socket at once; a client slow to answer the close costs no one else."""
        closing = list(self.connections)
        for conn in closing:
            self.faults.record("ws_disconnect", f"ws:{conn.key_id}", "closed with 1011")
            self.connections.discard(conn)
        await asyncio.gather(*(self._close(conn) for conn in closing))

    @staticmethod
    async def _close(conn: Connection) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await conn.websocket.close(code=1011)


def user_order_json(order: Order, user_id: str) -> JSON:
    out: JSON = {
        "order_id": order.order_id,
        "user_id": user_id,
        "ticker": order.ticker,
        "status": order.status.value,
        "side": order.side,
        "is_yes": order.book_side is BookSide.BID,
        "outcome_side": order.book_side.leg,
        "book_side": order.book_side.value,
        "yes_price_dollars": dollars(order.yes_price),
        "fill_count_fp": count(order.filled),
        "remaining_count_fp": count(order.remaining),
        "initial_count_fp": count(order.initial_count),
        "taker_fill_cost_dollars": dollars(order.taker_fill_cost),
        "maker_fill_cost_dollars": dollars(order.maker_fill_cost),
        "taker_fees_dollars": dollars(order.taker_fees),
        "maker_fees_dollars": dollars(order.maker_fees),
        "client_order_id": order.client_order_id,
        "self_trade_prevention_type": order.stp.value,
        "created_time": iso_required(order.created_ms),
        "created_ts_ms": order.created_ms,
        "last_update_time": iso_required(order.updated_ms),
        "last_updated_ts_ms": order.updated_ms,
        "subaccount_number": 0,
    }
    if order.expiration_ms is not None:
        out["expiration_time"] = iso_required(order.expiration_ms)
        out["expiration_ts_ms"] = order.expiration_ms
    return out
