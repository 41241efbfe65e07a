"""Kalshi's orderbook channel onto the bus: decode, validate, apply, publish, record.

* :class:`BookFeed` is the WebSocket handler: it turns Kalshi's strings into
  integers (on the price scale of each side's own leg; we subscribe with
  ``use_yes_price``, so NO levels arrive on the YES scale and are flipped
  back), feeds the :class:`~services.ingest.books.BookKeeper`, and hands what
  comes out to the outbox.
* :class:`Outbox` publishes market data in pipelined batches (whatever piled up
  while the previous batch was in flight) and gives it to the recorder.
* :class:`Subscriptions` keeps the WebSocket subscription equal to the markets
  this replica follows, and asks again for snapshots of invalid books: first a
  ``get_snapshot``, then, if none came within ``resubscribe_after_s``, the
  markets are dropped and added again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Protocol

import structlog

from services.ingest.books import BookKeeper
from shared.bus.publisher import Publisher
from shared.kalshi import models as km
from shared.kalshi.errors import KalshiError
from shared.kalshi.ws import Disconnected, KalshiWebSocket, SubscriptionActive, WsEvent
from shared.messages import Level, MarketData, MarketDataBatch, Side
from shared.money import ONE_DOLLAR, Count, Micros, parse_count, parse_dollars
from shared.streams import MARKET_DATA, shard_of

log = structlog.get_logger("ingest")

CHANNEL = "orderbook_delta"
HOP_RECEIVED = "ingest.rx"
MAX_BATCH = 500
"""Most market-data messages in one stream entry."""
YIELD_AT = 32
"""A burst of WebSocket messages is read without a pause; once this many wait to be
published, the reader lets the outbox run (else the first waits for the whole burst)."""


class Recording(Protocol):
    def record(self, messages: Iterable[MarketData], batch_ns: int) -> None:
        """One batch as published (``batch_ns``: when), each message stamped on receipt."""


class Outbox:
    """Market data waiting to be published; publishes in batches, never drops."""

    def __init__(self, publisher: Publisher, recorder: Recording | None = None) -> None:
        self.publisher = publisher
        self.recorder = recorder
        self._pending: list[MarketData] = []
        self._wake = asyncio.Event()
        self.published = 0

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def put(self, messages: list[MarketData], received_ns: int) -> None:
        if not messages:
            return
        for message in messages:
            message.stamp(HOP_RECEIVED, received_ns)
        self._pending.extend(messages)
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._wake.wait()
            await self.flush()

    async def flush(self) -> None:
        self._wake.clear()
        while self._pending:
            pending, self._pending = self._pending, []
            if self.recorder is not None:  # a replay reads what was published together
                self.recorder.record(pending, time.time_ns())
            batches = batch_by_shard(pending, self.publisher.shards)
            await self.publisher.publish_many(
                MARKET_DATA, batches, events=[batch.items[0].event for batch in batches]
            )
            self.published += len(pending)


def batch_by_shard(messages: list[MarketData], shards: int) -> list[MarketDataBatch]:
    """Market data grouped by event shard (order kept within a shard), in capped batches."""
    by_shard: dict[int, list[MarketData]] = {}
    for item in messages:
        by_shard.setdefault(shard_of(item.event, shards), []).append(item)
    return [
        MarketDataBatch(items=items[start : start + MAX_BATCH])
        for items in by_shard.values()
        for start in range(0, len(items), MAX_BATCH)
    ]


class BookFeed:
    """The WebSocket handler of the orderbook channel."""

    def __init__(self, keeper: BookKeeper, outbox: Outbox) -> None:
        self.keeper = keeper
        self.outbox = outbox
        self.sid: int | None = None
        self._prices: dict[str, Micros] = {}
        self._counts: dict[str, Count] = {}
        self.deltas = 0
        self.malformed = 0
        self.closing = False
        """Set when we close the connection ourselves: its loss is then no news."""

    def price(self, text: str, side: str) -> Micros:
        price = self._prices.get(text)
        if price is None:
            price = self._prices[text] = parse_dollars(text)
        return ONE_DOLLAR - price if side == "no" else price

    def count(self, text: str) -> Count:
        count = self._counts.get(text)
        if count is None:
            count = self._counts[text] = parse_count(text)
        return count

    def levels(self, wire: list[km.Level] | None, side: str) -> list[Level]:
        return [Level(self.price(p, side), self.count(c)) for p, c in wire or ()]

    async def __call__(self, event: WsEvent) -> None:
        received = time.time_ns()
        if type(event) is km.OrderbookDelta:
            self.deltas += 1
            msg = event.msg
            side = Side.YES if msg.side == "yes" else Side.NO
            out = self.keeper.on_delta(
                event.sid,
                event.seq,
                msg.market_ticker,
                side,
                self.price(msg.price_dollars, msg.side),
                self.count(msg.delta_fp),
                (msg.ts_ms or 0) * 1_000_000,
            )
        elif type(event) is km.OrderbookSnapshot:
            snap = event.msg
            out = self.keeper.on_snapshot(
                event.sid,
                event.seq,
                snap.market_ticker,
                self.levels(snap.yes_dollars_fp, "yes"),
                self.levels(snap.no_dollars_fp, "no"),
            )
        else:
            out = self._lifecycle(event)
        self.outbox.put(out, received)
        if self.outbox.backlog >= YIELD_AT:
            await asyncio.sleep(0)

    def _lifecycle(self, event: WsEvent) -> list[MarketData]:
        if isinstance(event, Disconnected):
            report = log.info if self.closing else log.warning
            report("kalshi websocket closed, every book invalid", reason=event.reason)
            self.sid = None
            return self.keeper.on_connection_lost(f"connection lost: {event.reason}")
        if isinstance(event, SubscriptionActive) and event.spec.channel == CHANNEL:
            self.sid = event.sid
        elif isinstance(event, km.MalformedMessage | km.UnknownMessage):
            self.malformed += 1
            log.warning("undecodable kalshi message", error=str(event))
        return []


class Subscriptions:
    """Keeps the orderbook subscription equal to the followed markets, and books fresh."""

    def __init__(
        self, ws: KalshiWebSocket, feed: BookFeed, *, resubscribe_after_s: float = 1.0
    ) -> None:
        self.ws = ws
        self.feed = feed
        self.resubscribe_after_s = resubscribe_after_s
        self.subscribed: set[str] = set()
        self._asked: dict[str, float] = {}
        self.resubscribes = 0

    async def follow(self, markets: set[str]) -> None:
        """Subscribe to ``markets`` and to nothing else."""
        if not self.ws.connected:
            return
        sid = self.feed.sid
        added, dropped = sorted(markets - self.subscribed), sorted(self.subscribed - markets)
        if sid is None:
            if markets:
                await self.ws.subscribe(CHANNEL, sorted(markets), use_yes_price=True)
                self.subscribed = set(markets)
            return
        if dropped:
            await self.ws.update_subscription(sid, "delete_markets", dropped)
        if added:
            await self.ws.update_subscription(sid, "add_markets", added)
        self.subscribed = set(markets)

    async def repair(self) -> None:
        """Ask for snapshots of invalid books; resubscribe those that got none in time."""
        sid = self.feed.sid
        if sid is None or not self.ws.connected:
            return
        now = time.monotonic()
        waiting = [
            m for m in self.feed.keeper.awaiting_snapshot().get(sid, []) if m in self.subscribed
        ]
        fresh = [m for m in waiting if m not in self._asked]
        late = [
            m
            for m in waiting
            if m in self._asked and now - self._asked[m] > self.resubscribe_after_s
        ]
        for market in set(self._asked) - set(waiting):
            del self._asked[market]
        try:
            if fresh:
                await self.ws.update_subscription(sid, "get_snapshot", fresh)
            if late:
                self.resubscribes += 1
                log.warning("no snapshot in time, resubscribing", markets=len(late))
                await self.ws.update_subscription(sid, "delete_markets", late)
                await self.ws.update_subscription(sid, "add_markets", late)
        except KalshiError as exc:
            log.warning("snapshot request failed", error=str(exc))
            return
        for market in fresh + late:
            self._asked[market] = now
