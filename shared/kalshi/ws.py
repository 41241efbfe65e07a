"""Kalshi WebSocket v2: signed connection, subscriptions that survive reconnects.

One task reads the socket and hands every message to the caller's async
``handler``, awaited inline (no task per message; a slow handler slows the
reader, which is the back-pressure we want). The handler receives, in wire
order:

* every data message, decoded (:mod:`.models`; ``sid``/``seq`` untouched: the
  caller checks sequences), and :class:`UnknownMessage` / :class:`MalformedMessage`
  for what cannot be decoded;
* :class:`Connected` and :class:`Disconnected` (with the reason): on a
  disconnect every book is unknown;
* :class:`SubscriptionActive` when a subscription gets its sid, delivered
  before any message of that sid; after a reconnect it carries ``replaces``,
  the sid the subscription had before;
* :class:`Resubscribed` once every subscription was restored after a
  reconnect, with the old -> new sid map and what failed.

Command replies (``subscribed``, ``ok``, ``unsubscribed``, ``error``) answer
the awaiting command and are not passed on, except replies to no pending
command. Reconnects back off exponentially (1 s doubling to 60 s, plus
jitter); the server's heartbeat pings are answered by the websockets library.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias
from urllib.parse import urlsplit

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from shared.config import KalshiSettings
from shared.kalshi import models as m
from shared.kalshi.errors import KalshiWsError
from shared.kalshi.signing import Signer

log = logging.getLogger(__name__)

ORDERBOOK_CHANNEL: Final = "orderbook_delta"
UpdateAction = Literal["add_markets", "delete_markets", "get_snapshot"]
_encoder: Final = msgspec.json.Encoder()


# --- what the caller receives besides Kalshi's messages -----------------------------------


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """What was asked for: enough to subscribe again on a new connection."""

    channel: str
    market_tickers: tuple[str, ...] | None
    params: Mapping[str, Any]

    def command_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"channels": [self.channel], **self.params}
        if self.market_tickers is not None:
            params["market_tickers"] = list(self.market_tickers)
        return params


@dataclass(frozen=True, slots=True)
class Connected:
    url: str
    connection: int
    """How many connections this client has opened so far (1 for the first)."""


@dataclass(frozen=True, slots=True)
class Disconnected:
    reason: str


@dataclass(frozen=True, slots=True)
class SubscriptionActive:
    sid: int
    spec: SubscriptionSpec
    replaces: int | None = None
    """The sid this subscription had on the previous connection, if any."""


@dataclass(frozen=True, slots=True)
class Resubscribed:
    sid_map: dict[int, int]
    """Old sid -> new sid."""
    failed: dict[int, str]
    """Old sid -> why it could not be restored (it is forgotten)."""


WsEvent: TypeAlias = m.DecodedWs | Connected | Disconnected | SubscriptionActive | Resubscribed
Handler: TypeAlias = Callable[[WsEvent], Awaitable[None]]


@dataclass(frozen=True)
class ReconnectPolicy:
    """Delay before reconnect n (from 0): min(max, initial x 2^n), plus up to ``jitter`` of it."""

    initial_s: float = 1.0
    max_s: float = 60.0
    jitter: float = 0.25
    healthy_after_s: float = 30.0
    """A connection that lived this long resets the backoff."""

    def delay(self, failures: int, rng: random.Random) -> float:
        base = min(self.max_s, self.initial_s * 2.0 ** min(failures, 30))
        return base + rng.uniform(0, base * self.jitter)


# --- internals ------------------------------------------------------------------------------


class _StampedConnection(ClientConnection):
    """Notes the arrival time of every frame, pings included, for staleness checks."""

    last_frame: float = 0.0

    def process_event(self, event: Any) -> None:
        self.last_frame = time.monotonic()
        super().process_event(event)


@dataclass
class _Subscription:
    spec: SubscriptionSpec
    sid: int | None = None
    active: bool = False


@dataclass
class _Round:
    """One reconnect's resubscriptions, reported together when the last one answers."""

    outstanding: int
    sid_map: dict[int, int] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)


@dataclass
class _Pending:
    future: asyncio.Future[list[m.KnownWsMessage]]
    expected: int
    spec: SubscriptionSpec | None = None
    handle: int | None = None
    replaces: int | None = None
    round: _Round | None = None
    replies: list[m.KnownWsMessage] = field(default_factory=list)


class KalshiWebSocket:
    """A reconnecting, resubscribing client of one Kalshi WebSocket URL."""

    def __init__(
        self,
        url: str,
        signer: Signer,
        handler: Handler,
        *,
        reconnect: ReconnectPolicy | None = None,
        command_timeout_s: float = 10.0,
        open_timeout_s: float = 10.0,
        ping_interval_s: float | None = 20.0,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url
        self.signer = signer
        self.handler = handler
        self.reconnect = reconnect or ReconnectPolicy()
        self.command_timeout_s = command_timeout_s
        self.open_timeout_s = open_timeout_s
        self.ping_interval_s = ping_interval_s
        self.connections = 0
        self.connect_failures = 0
        self.handler_errors = 0
        self.last_error = ""
        self._rng = rng or random.Random()
        self._path = urlsplit(url).path
        self._ws: _StampedConnection | None = None
        self._last_seen = 0.0
        self._connected = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._handles = itertools.count(1)
        self._subs: dict[int, _Subscription] = {}
        self._by_sid: dict[int, int] = {}
        self._pending: dict[int, _Pending] = {}

    @classmethod
    def from_settings(
        cls, settings: KalshiSettings, signer: Signer, handler: Handler, **options: Any
    ) -> KalshiWebSocket:
        return cls(settings.ws_url, signer, handler, **options)

    # --- state the caller reads -------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def last_message_monotonic(self) -> float:
        """time.monotonic() of the last frame received (message or ping); 0 before any."""
        return self._ws.last_frame if self._ws is not None else self._last_seen

    def stale(self, max_silence_s: float = 5.0) -> bool:
        """No message and no ping for ``max_silence_s``: the connection, not a market, is stale."""
        return not self.connected or time.monotonic() - self.last_message_monotonic > max_silence_s

    @property
    def subscriptions(self) -> dict[int, SubscriptionSpec]:
        """Active subscriptions by current sid."""
        return {sid: self._subs[h].spec for sid, h in self._by_sid.items()}

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self, *, wait: bool = True) -> None:
        """Start connecting (and reconnecting); with ``wait``, return once connected."""
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run(), name="kalshi-ws")
        if wait:
            await self.wait_connected(self.open_timeout_s)

    async def wait_connected(self, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        except TimeoutError:
            last = f" (last error: {self.last_error})" if self.last_error else ""
            raise KalshiWsError(f"not connected to {self.url} after {timeout_s} s{last}") from None

    async def close(self) -> None:
        """Stop for good: close the socket, stop reconnecting, fail pending commands."""
        self._closing = True
        ws, task = self._ws, self._task
        if ws is not None:
            await ws.close()
        if task is not None:
            if ws is None:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        self._fail_pending("client closed")

    async def __aenter__(self) -> KalshiWebSocket:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _run(self) -> None:
        failures = 0
        while not self._closing:
            try:
                ws = await self._open()
            except Exception as exc:  # refused, timed out, 401, bad URL: all mean "try later"
                self.connect_failures += 1
                self.last_error = repr(exc)
                log.warning("kalshi ws connect failed", extra={"error": self.last_error})
            else:
                opened = time.monotonic()
                await self._serve(ws)
                if self._closing:
                    return
                if time.monotonic() - opened >= self.reconnect.healthy_after_s:
                    failures = 0
            await asyncio.sleep(self.reconnect.delay(failures, self._rng))
            failures += 1

    async def _open(self) -> _StampedConnection:
        ws = await connect(
            self.url,
            additional_headers=self.signer.headers("GET", self._path),
            open_timeout=self.open_timeout_s,
            ping_interval=self.ping_interval_s,
            proxy=None,
            max_size=2**24,
            create_connection=_StampedConnection,
        )
        assert isinstance(ws, _StampedConnection)
        return ws

    async def _serve(self, ws: _StampedConnection) -> None:
        """One connection's life: announce, restore subscriptions, read until it ends."""
        self._ws = ws
        self.connections += 1
        self._connected.set()
        await self._emit(Connected(self.url, self.connections))
        restoring = asyncio.create_task(self._resubscribe(), name="kalshi-ws-resubscribe")
        try:
            reason = await self._read(ws)
        finally:
            await self._connection_lost(ws, restoring)
        await self._emit(Disconnected(reason))

    async def _connection_lost(self, ws: _StampedConnection, restoring: asyncio.Task[None]) -> None:
        self._last_seen = ws.last_frame
        self._connected.clear()
        self._ws = None
        restoring.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await restoring
        self._by_sid.clear()
        for sub in self._subs.values():
            sub.active = False
        self._fail_pending("connection lost")

    def _fail_pending(self, why: str) -> None:
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(KalshiWsError(why))
        self._pending.clear()

    # --- reading --------------------------------------------------------------------------

    async def _read(self, ws: _StampedConnection) -> str:
        try:
            while True:
                raw = await ws.recv(decode=False)
                message = m.decode_ws(raw)
                if isinstance(message, (m.Subscribed, m.Ok, m.Unsubscribed, m.Error)):
                    if await self._answer(message):
                        continue
                elif isinstance(message, m.UnknownMessage | m.MalformedMessage):
                    log.warning("kalshi ws undecodable message", extra={"raw": raw[:200]})
                await self._emit(message)
        except ConnectionClosed as exc:
            return f"closed: {exc}"

    async def _emit(self, event: WsEvent) -> None:
        try:
            await self.handler(event)
        except Exception:
            self.handler_errors += 1
            log.exception("kalshi ws handler failed", extra={"message_type": type(event).__name__})

    async def _answer(self, reply: m.Subscribed | m.Ok | m.Unsubscribed | m.Error) -> bool:
        """Give a command reply to its command; False if no command awaits it."""
        pending = self._pending.get(reply.id) if reply.id else None
        if pending is None:
            return False
        if isinstance(reply, m.Error):
            self._pending.pop(reply.id)
            if not pending.future.done():  # the command may have timed out meanwhile
                pending.future.set_exception(KalshiWsError(reply.msg.msg, reply.msg.code))
            await self._round_done(pending, None, f"error {reply.msg.code}: {reply.msg.msg}")
            return True
        if isinstance(reply, m.Subscribed):
            await self._activate(pending, reply.msg.sid)
        elif isinstance(reply, m.Unsubscribed):
            self._forget(reply.sid)
        pending.replies.append(reply)
        if len(pending.replies) >= pending.expected:
            self._pending.pop(reply.id)
            if not pending.future.done():  # a late reply to a command that timed out
                pending.future.set_result(pending.replies)
        return True

    async def _activate(self, pending: _Pending, sid: int) -> None:
        if pending.handle is None or pending.spec is None:
            return
        sub = self._subs.setdefault(pending.handle, _Subscription(pending.spec))
        sub.sid, sub.active = sid, True
        self._by_sid[sid] = pending.handle
        await self._emit(SubscriptionActive(sid, sub.spec, pending.replaces))
        await self._round_done(pending, sid, None)

    async def _round_done(self, pending: _Pending, new_sid: int | None, error: str | None) -> None:
        restore = pending.round
        if restore is None or pending.replaces is None:
            return
        if new_sid is not None:
            restore.sid_map[pending.replaces] = new_sid
        else:
            restore.failed[pending.replaces] = error or "failed"
            if pending.handle is not None:
                self._subs.pop(pending.handle, None)
        restore.outstanding -= 1
        if restore.outstanding == 0:
            await self._emit(Resubscribed(restore.sid_map, restore.failed))

    def _forget(self, sid: int) -> None:
        handle = self._by_sid.pop(sid, None)
        if handle is not None:
            self._subs.pop(handle, None)

    # --- commands -------------------------------------------------------------------------

    async def _command(
        self,
        cmd: str,
        params: Mapping[str, Any] | None,
        *,
        expected: int = 1,
        spec: SubscriptionSpec | None = None,
        handle: int | None = None,
        replaces: int | None = None,
        restore: _Round | None = None,
    ) -> list[m.KnownWsMessage]:
        if self._closing or self._task is None:
            raise KalshiWsError("client is not running (start() it; closed clients stay closed)")
        if not self.connected:
            await self.wait_connected(self.command_timeout_s)
        ws = self._ws
        if ws is None:
            raise KalshiWsError("not connected")
        command_id = next(self._ids)
        future: asyncio.Future[list[m.KnownWsMessage]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = _Pending(future, expected, spec, handle, replaces, restore)
        command: dict[str, Any] = {"id": command_id, "cmd": cmd}
        if params is not None:
            command["params"] = params
        try:
            await ws.send(_encoder.encode(command).decode())
            async with asyncio.timeout(self.command_timeout_s):
                return await future
        except TimeoutError:
            raise KalshiWsError(f"{cmd} got no answer in {self.command_timeout_s} s") from None
        except ConnectionClosed as exc:
            raise KalshiWsError(f"connection lost during {cmd}: {exc}") from None
        finally:
            self._pending.pop(command_id, None)

    async def subscribe(
        self,
        channel: str,
        market_tickers: Sequence[str] | None = None,
        *,
        use_yes_price: bool = True,
        params: Mapping[str, Any] | None = None,
    ) -> int:
        """Subscribe one channel; return its sid. Remembered and restored after reconnects.

        ``use_yes_price`` (orderbook only) puts NO levels on the YES price scale.
        Messages of the new sid may reach the handler before this returns
        (after its :class:`SubscriptionActive`).
        """
        extra = dict(params or {})
        if channel == ORDERBOOK_CHANNEL:
            extra["use_yes_price"] = use_yes_price
        tickers = tuple(market_tickers) if market_tickers is not None else None
        spec = SubscriptionSpec(channel, tickers, extra)
        replies = await self._command(
            "subscribe", spec.command_params(), spec=spec, handle=next(self._handles)
        )
        reply = replies[0]
        assert isinstance(reply, m.Subscribed)
        return reply.msg.sid

    async def update_subscription(
        self, sid: int, action: UpdateAction, market_tickers: Sequence[str]
    ) -> None:
        """Add or delete markets of one subscription, or ask for fresh snapshots.

        ``get_snapshot`` is sent without waiting: Kalshi answers with snapshots only.
        """
        handle = self._by_sid.get(sid)
        if handle is None:
            raise KalshiWsError(f"unknown sid {sid}")
        params = {"sids": [sid], "market_tickers": list(market_tickers), "action": action}
        if action == "get_snapshot":
            await self._send_only("update_subscription", params)
            return
        await self._command("update_subscription", params)
        sub = self._subs.get(handle)
        if sub is not None:
            sub.spec = _with_tickers(sub.spec, action, market_tickers)

    async def _send_only(self, cmd: str, params: Mapping[str, Any]) -> None:
        ws = self._ws
        if ws is None:
            raise KalshiWsError("not connected")
        command = {"id": next(self._ids), "cmd": cmd, "params": params}
        await ws.send(_encoder.encode(command).decode())

    async def unsubscribe(self, sids: Sequence[int]) -> None:
        """Stop subscriptions; they are not restored after a reconnect."""
        if not sids:
            return
        await self._command("unsubscribe", {"sids": list(sids)}, expected=len(sids))

    async def list_subscriptions(self) -> list[m.SubscriptionInfo]:
        """What the server says this connection is subscribed to."""
        replies = await self._command("list_subscriptions", None)
        reply = replies[0]
        return reply.msg if isinstance(reply, m.Ok) and isinstance(reply.msg, list) else []

    async def _resubscribe(self) -> None:
        """Restore every remembered subscription on a new connection (new sids)."""
        lost = [(h, sub) for h, sub in self._subs.items() if not sub.active]
        if not lost:
            return
        restore = _Round(outstanding=len(lost))
        commands = [
            self._command(
                "subscribe",
                sub.spec.command_params(),
                spec=sub.spec,
                handle=handle,
                replaces=sub.sid,
                restore=restore,
            )
            for handle, sub in lost
        ]
        results = await asyncio.gather(*commands, return_exceptions=True)
        for result in results:
            if isinstance(result, KalshiWsError) and result.code is None:
                log.warning("kalshi ws resubscribe failed", extra={"error": str(result)})


def _with_tickers(
    spec: SubscriptionSpec, action: UpdateAction, market_tickers: Sequence[str]
) -> SubscriptionSpec:
    current = list(spec.market_tickers or ())
    if action == "add_markets":
        current += [t for t in market_tickers if t not in current]
    else:
        removed = set(market_tickers)
        current = [t for t in current if t not in removed]
    return SubscriptionSpec(spec.channel, tuple(current), spec.params)
