"""Polymarket feed: books of mapped tokens over the public market WebSocket, as VenueBooks.

Connects to ``feeds.polymarket.ws_url``, subscribes to every mapped token
(``{"assets_ids": [...], "type": "market"}``), sends a text ``PING`` every
``ping_interval_s`` (the server drops quiet clients), keeps each token's book
(:class:`shared.polymarket.BookKeeper`) and publishes a ``VenueBook`` (YES
prices) for the Kalshi market mapped to a token whenever its book changes, at
most ``max_updates_per_s`` per market (the last state always goes out).
Any frame, ``PONG`` included, proves the feed alive; a dropped connection
makes it STALE at once (the books stop being current) and is retried with
backoff; the server sends fresh ``book`` snapshots on every subscribe.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from services.ingest.feeds import NS_PER_S, ClockNs, FeedWatch
from shared.backoff import Backoff
from shared.bus.publisher import Publisher
from shared.feeds_config import PolymarketSettings
from shared.polymarket import (
    BookKeeper,
    MarketLink,
    PolymarketFormatError,
    parse_clob_frame,
    venue_book,
)
from shared.runtime import run_until_stopped
from shared.streams import OBSERVATIONS

log = structlog.get_logger("ingest.polymarket")

FEED = "polymarket"
CONNECT_ERRORS = (OSError, TimeoutError, WebSocketException)
MAX_FRAME_BYTES = 16 * 2**20
"""The first frame carries the books of every subscribed token at once."""


class Throttle:
    """At most one send per key per interval; a change inside the interval waits for its end."""

    def __init__(self, min_interval_ns: int) -> None:
        self.min_interval_ns = min_interval_ns
        self.last_sent: dict[str, int] = {}
        self.pending: set[str] = set()

    def offer(self, key: str, now_ns: int) -> bool:
        """True: send now (and it is recorded as sent). False: it is pending."""
        if now_ns - self.last_sent.get(key, -self.min_interval_ns) >= self.min_interval_ns:
            self.last_sent[key] = now_ns
            self.pending.discard(key)
            return True
        self.pending.add(key)
        return False

    def next_due_ns(self) -> int | None:
        if not self.pending:
            return None
        return min(self.last_sent[key] + self.min_interval_ns for key in self.pending)

    def take_due(self, now_ns: int) -> list[str]:
        due = [k for k in self.pending if now_ns - self.last_sent[k] >= self.min_interval_ns]
        for key in due:
            self.pending.discard(key)
            self.last_sent[key] = now_ns
        return sorted(due)


class PolymarketFeed:
    def __init__(
        self,
        settings: PolymarketSettings,
        publisher: Publisher,
        *,
        clock_ns: ClockNs = time.time_ns,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.clock_ns = clock_ns
        self.links = {link.kalshi_market: link for link in settings.links()}
        self.markets_of_token: dict[str, list[MarketLink]] = defaultdict(list)
        for link in self.links.values():
            self.markets_of_token[link.token_id].append(link)
        self.books = BookKeeper()
        self.throttle = Throttle(int(NS_PER_S / settings.max_updates_per_s))
        self._flush_wanted = asyncio.Event()
        self.watch = FeedWatch(
            publisher,
            FEED,
            stale_after_s=settings.stale_after_s,
            heartbeat_s=settings.heartbeat_s,
            clock_ns=clock_ns,
        )

    def info(self) -> dict[str, str]:
        return {FEED: self.watch.label}

    async def run(self, stop: asyncio.Event) -> None:
        await run_until_stopped(stop, self._connect_forever(), self._flush(), self.watch.watch())

    async def _connect_forever(self) -> None:
        delay = Backoff(self.settings.retry.base_s, self.settings.retry.cap_s)
        while True:
            try:
                async with connect(
                    self.settings.ws_url, ping_interval=None, max_size=MAX_FRAME_BYTES
                ) as ws:
                    await self._session(ws, delay)
                reason = "connection closed"
            except CONNECT_ERRORS as exc:
                reason = f"connection lost: {exc!r}"
            self.books.clear()
            await self.watch.fail(reason)
            wait_s = delay.next()
            log.warning("polymarket disconnected", reason=reason, retry_s=wait_s)
            await asyncio.sleep(wait_s)

    async def _session(self, ws: ClientConnection, delay: Backoff) -> None:
        tokens = sorted(self.markets_of_token)
        await ws.send(json.dumps({"assets_ids": tokens, "type": "market"}))
        pinger = asyncio.create_task(self._ping(ws))
        try:
            async for frame in ws:
                delay.reset()
                await self._on_frame(frame if isinstance(frame, str) else frame.decode())
        finally:
            pinger.cancel()
            await asyncio.gather(pinger, return_exceptions=True)

    async def _ping(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self.settings.ping_interval_s)
            await ws.send("PING")

    async def _on_frame(self, frame: str) -> None:
        await self.watch.beat()
        if frame.strip() == "PONG":
            return
        try:
            events = parse_clob_frame(json.loads(frame))
        except (ValueError, PolymarketFormatError) as exc:
            log.warning("polymarket frame skipped", error=str(exc), frame=frame[:200])
            return
        changed = {event.asset_id for event in events if self.books.apply(event)}
        for token in sorted(changed):
            for link in self.markets_of_token.get(token, []):
                await self._offer(link.kalshi_market)

    async def _offer(self, market: str) -> None:
        if self.throttle.offer(market, self.clock_ns()):
            await self._publish(market)
        else:
            self._flush_wanted.set()

    async def _flush(self) -> None:
        """Send what the throttle held back, when its interval has passed."""
        while True:
            await self._flush_wanted.wait()
            self._flush_wanted.clear()
            while (due_ns := self.throttle.next_due_ns()) is not None:
                await asyncio.sleep(max(0, due_ns - self.clock_ns()) / NS_PER_S)
                for market in self.throttle.take_due(self.clock_ns()):
                    await self._publish(market)

    async def _publish(self, market: str) -> None:
        link = self.links[market]
        book = self.books.books.get(link.token_id)
        if book is not None:
            await self.publisher.publish(OBSERVATIONS, venue_book(book, link, self.clock_ns()))
