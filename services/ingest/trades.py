"""Kalshi's public ``trade`` channel onto the market-data stream.

Paper makers fill only when trades consume the queue ahead of them, so ingest
publishes every trade of the markets it follows as a
:class:`shared.messages.Trade`, through the same :class:`Outbox` as the books:
batched per event shard, stamped ``ingest.rx`` like every other item, and in
the order the WebSocket delivered it relative to the deltas (one connection,
one ordered stream of frames; the exchange sends a trade's book delta first).

* :class:`TradeFeed` turns Kalshi's trade messages into bus messages: the price
  with ``parse_dollars`` and the count with ``parse_count``, exactly; only for
  followed markets; each ``trade_id`` once (a duplicated frame, or two
  subscriptions overlapping for a moment after a reconnect, publish it once).
  A malformed message is counted and logged, never raised.
* :class:`WsRouter` is the WebSocket's one handler: trade frames to the trade
  feed, everything else to the book feed.
* :class:`TradeSubscription` keeps one ``trade`` subscription covering exactly
  the followed markets. The channel takes ``market_tickers`` (without them
  Kalshi sends every market's trades) and ``update_subscription``
  ``add_markets`` / ``delete_markets``; the client restores it after a
  reconnect.

Trades are published whatever the state of the market's book: a trade is a
fact of the exchange, not a view of the book, and its consumers decide.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

import structlog

from services.ingest.market_data import Outbox
from shared.kalshi import models as km
from shared.kalshi.errors import KalshiError
from shared.kalshi.ws import KalshiWebSocket, WsEvent
from shared.messages import Side, Trade
from shared.money import ONE_DOLLAR, parse_count, parse_dollars

log = structlog.get_logger("ingest")

CHANNEL: Final = "trade"
PRICE_TICK: Final = 100
"""Kalshi's finest price step, $0.0001, in micro-dollars."""
REMEMBERED_TRADES: Final = 20_000
"""Trade ids kept to drop duplicates (a duplicate arrives within moments of the original)."""
_OUTCOME_SIDES: Final = {"yes": Side.YES, "no": Side.NO}
_BOOK_SIDES: Final = {"bid": Side.YES, "ask": Side.NO}
"""V2 book side of the taker: ``bid`` buys YES, ``ask`` sells YES (buys NO)."""


class TradeError(ValueError):
    """A trade message whose values do not make a trade."""


def taker_side(msg: km.TradeMsg) -> Side:
    """The side the taker bought: ``taker_side``, else its V2 names."""
    outcome = msg.taker_side if msg.taker_side is not None else msg.taker_outcome_side
    side = (
        _OUTCOME_SIDES.get(outcome)
        if outcome is not None
        else _BOOK_SIDES.get(msg.taker_book_side or "")
    )
    if side is None:
        raise TradeError(
            f"no taker side (taker_side={msg.taker_side!r},"
            f" taker_book_side={msg.taker_book_side!r})"
        )
    return side


def to_trade(msg: km.TradeMsg, event: str) -> Trade:
    """The bus message of one Kalshi trade; TradeError (or MoneyFormatError) if malformed."""
    if not msg.trade_id or not msg.market_ticker:
        raise TradeError("trade without trade_id or market_ticker")
    price = parse_dollars(msg.yes_price_dollars)
    if not 0 < price < ONE_DOLLAR or price % PRICE_TICK:
        raise TradeError(f"yes price {msg.yes_price_dollars!r} is not a price")
    if msg.no_price_dollars is not None and parse_dollars(msg.no_price_dollars) != (
        ONE_DOLLAR - price
    ):
        raise TradeError(f"no price {msg.no_price_dollars!r} is not $1 - yes price")
    count = parse_count(msg.count_fp)
    if count <= 0:
        raise TradeError(f"count {msg.count_fp!r} is not positive")
    return Trade(
        market=msg.market_ticker,
        event=event,
        trade_id=msg.trade_id,
        taker_side=taker_side(msg),
        yes_price=price,
        count=count,
        exchange_ts_ns=(msg.ts_ms or 0) * 1_000_000,
    )


class TradeFeed:
    """Trades of the followed markets into the outbox, each once."""

    def __init__(self, outbox: Outbox, *, remember: int = REMEMBERED_TRADES) -> None:
        self.outbox = outbox
        self.events: dict[str, str] = {}
        """Followed market -> its event (the shard key)."""
        self._seen: set[str] = set()
        self._order: deque[str] = deque()
        self._remember = remember
        self.received = 0
        self.published = 0
        self.unfollowed = 0
        self.duplicates = 0
        self.malformed = 0

    def track(self, market: str, event: str) -> None:
        self.events[market] = event

    def forget(self, market: str) -> None:
        self.events.pop(market, None)

    def on_trade(self, message: km.Trade) -> None:
        received = time.time_ns()
        self.received += 1
        msg = message.msg
        event = self.events.get(msg.market_ticker)
        if event is None:
            self.unfollowed += 1
            return
        try:
            trade = to_trade(msg, event)
        except ValueError as exc:  # TradeError, MoneyFormatError
            self._malformed(str(exc), trade_id=msg.trade_id, market=msg.market_ticker)
            return
        if not self._first_time(trade.trade_id):
            self.duplicates += 1
            return
        self.published += 1
        self.outbox.put([trade], received)

    def on_malformed(self, message: km.MalformedMessage) -> None:
        self._malformed(message.error, raw=message.raw[:200].decode(errors="replace"))

    def _malformed(self, error: str, **context: str) -> None:
        self.malformed += 1
        log.warning("malformed kalshi trade message", error=error, **context)

    def _first_time(self, trade_id: str) -> bool:
        if trade_id in self._seen:
            return False
        if len(self._order) >= self._remember:
            self._seen.discard(self._order.popleft())
        self._order.append(trade_id)
        self._seen.add(trade_id)
        return True


class WsRouter:
    """The WebSocket handler: trade frames to the trade feed, the rest to the book feed."""

    def __init__(self, books: Callable[[WsEvent], Awaitable[None]], trades: TradeFeed) -> None:
        self.books = books
        self.trades = trades

    async def __call__(self, event: WsEvent) -> None:
        if type(event) is km.Trade:
            self.trades.on_trade(event)
        elif isinstance(event, km.MalformedMessage) and event.type == CHANNEL:
            self.trades.on_malformed(event)
        else:
            await self.books(event)


class TradeSubscription:
    """Keeps one trade subscription, covering the followed markets and nothing else.

    The state is the client's own record of its active subscriptions (restored
    after a reconnect, updated by our changes). If a restore and a fresh
    subscription overlap, the surplus one is dropped on the next call; the
    feed publishes a trade seen on both only once meanwhile.
    """

    def __init__(self, ws: KalshiWebSocket) -> None:
        self.ws = ws
        self.failures = 0

    def active(self) -> dict[int, set[str]]:
        """Active trade subscriptions: sid -> markets covered."""
        return {
            sid: set(spec.market_tickers or ())
            for sid, spec in self.ws.subscriptions.items()
            if spec.channel == CHANNEL
        }

    async def follow(self, markets: set[str]) -> None:
        """Subscribe to the trades of ``markets`` only; a failure is logged, retried next call."""
        if not self.ws.connected:
            return
        try:
            await self._follow(markets)
        except KalshiError as exc:
            self.failures += 1
            log.warning("trade subscription update failed", error=str(exc))

    async def _follow(self, markets: set[str]) -> None:
        active = self.active()
        keep = min(active) if active and markets else None
        surplus = sorted(sid for sid in active if sid != keep)
        if surplus:
            await self.ws.unsubscribe(surplus)
        if keep is None:
            if markets:
                await self.ws.subscribe(CHANNEL, sorted(markets))
            return
        covered = active[keep]
        dropped, added = sorted(covered - markets), sorted(markets - covered)
        if dropped:
            await self.ws.update_subscription(keep, "delete_markets", dropped)
        if added:
            await self.ws.update_subscription(keep, "add_markets", added)
