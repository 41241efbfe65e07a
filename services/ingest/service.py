"""The ingest process: Kalshi books and outside signals onto the bus, recorded to Postgres.

Replicas split the events by shard (``docker compose up --scale ingest=2``):
each follows the open markets of the events on the shards it holds. The outside
feeds (NWS, Fed odds, Polymarket) run on one replica at a time, the holder of
the ``ingest:feeds`` lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog

from services.ingest.books import BookKeeper, MarketRef
from services.ingest.catalog import followed, grid_of
from services.ingest.discovery import Discovery
from services.ingest.fed import FedPoller
from services.ingest.feeds import FeedState
from services.ingest.market_data import BookFeed, Outbox, Subscriptions
from services.ingest.newcomers import Newcomers, republish_for_newcomers
from services.ingest.nws import NwsPoller
from services.ingest.polymarket import PolymarketFeed
from services.ingest.recorder import Recorder
from services.ingest.trades import TradeFeed, TradeSubscription, WsRouter
from shared import metrics
from shared.bus.follower import NOW, Follower
from shared.bus.lease import Lease, run_as_leader
from shared.kalshi.errors import KalshiError
from shared.kalshi.rest import KalshiRest
from shared.kalshi.signing import Signer, load_private_key
from shared.kalshi.ws import KalshiWebSocket
from shared.messages import Message
from shared.runtime import ServiceContext, ServiceError, run_until_stopped, service_main
from shared.store.migrations import open_migrated
from shared.store.pool import Pool
from shared.streams import HEARTBEATS, OBSERVATIONS

log = structlog.get_logger("ingest")

DESCRIPTION = (
    "Ingest: Kalshi order books (sequence-checked, never published when untrusted), the "
    "trades of the markets it follows, and outside signals (NWS, Fed odds, Polymarket) onto "
    "the bus, books recorded to Postgres."
)
SYNC_EVERY_S = 0.2
KALSHI_FEED = "kalshi"


def load_signer(ctx: ServiceContext) -> Signer:
    settings = ctx.settings
    if settings.kalshi_key_id is None or settings.kalshi_private_key_path is None:
        raise ServiceError(
            "Kalshi's WebSocket needs a signed connection: set KALSHI_KEY_ID and "
            "KALSHI_PRIVATE_KEY_PATH (make run does this for the simulator)"
        )
    key = load_private_key(settings.kalshi_private_key_path)
    return Signer(settings.kalshi_key_id.get_secret_value(), key)


async def connect_store(ctx: ServiceContext) -> Pool:
    """Wait for Postgres (saying so), then bring its schema up to date."""
    return await open_migrated(ctx.settings.database_url, what="ingest")


async def every(seconds: float, stop: asyncio.Event, job: Callable[[], Awaitable[None]]) -> None:
    """Run ``job`` every ``seconds`` until stopped; a failing run is logged, not fatal."""
    while not stop.is_set():
        try:
            await job()
        except (KalshiError, OSError) as exc:
            log.warning("periodic job failed", job=getattr(job, "__name__", "?"), error=str(exc))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await stop.wait()


def liveness_ping_s(stale_after_s: float) -> float:
    """Our own ping interval: its pongs prove the connection alive well within
    ``stale_after_s`` even when no book moves (Kalshi's own pings come only every 10 s,
    which would make a quiet connection flap between stale and fresh)."""
    return stale_after_s / 3


class Ingest:
    """The parts of one ingest process and the loops that drive them."""

    def __init__(self, ctx: ServiceContext, signer: Signer, pool: Pool) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.recorder = Recorder(pool) if settings.ingest.record else None
        self.keeper = BookKeeper()
        self.outbox = Outbox(ctx.publisher, self.recorder)
        self.feed = BookFeed(self.keeper, self.outbox)
        self.trades = TradeFeed(self.outbox)
        self.ws = KalshiWebSocket.from_settings(
            settings.kalshi,
            signer,
            WsRouter(self.feed, self.trades),
            ping_interval_s=liveness_ping_s(settings.ingest.stale_after_s),
        )
        self.rest = KalshiRest.from_settings(settings.kalshi, signer)
        self.discovery = Discovery(self.rest, ctx.publisher, pool, settings.ingest.series)
        self.subscriptions = Subscriptions(
            self.ws, self.feed, resubscribe_after_s=settings.ingest.resubscribe_after_s
        )
        self.trade_subscription = TradeSubscription(self.ws)
        self.freshness = FeedState(
            feed=KALSHI_FEED,
            stale_after_ns=int(settings.ingest.stale_after_s * 1e9),
            heartbeat_ns=10 * 1_000_000_000,
            started_ns=time.time_ns(),
        )
        self.followed: set[str] = set()
        self.newcomers = Newcomers()
        self.books_wanted = asyncio.Event()
        self.heartbeats = Follower(
            ctx.redis, settings.key_prefix, HEARTBEATS, self.on_heartbeats, start=NOW
        )
        metrics.KALSHI.watch_rest(self.rest, "ingest")
        metrics.KALSHI.watch_ws(self.ws, "ingest")
        self.totals: list[tuple[metrics.CounterFrom, Callable[[], int]]] = [
            (metrics.CounterFrom(metrics.DELTAS), lambda: self.feed.deltas),
            (metrics.CounterFrom(metrics.GAPS), lambda: self.keeper.gaps),
            (metrics.CounterFrom(metrics.MD_ITEMS), lambda: self.outbox.published),
            (metrics.CounterFrom(metrics.TRADES), lambda: self.trades.published),
        ]

    async def discover(self) -> None:
        await self.discovery.refresh()

    async def sync(self) -> None:
        """Follow the markets of our shards, repair invalid books, watch the connection."""
        settings = self.ctx.settings
        wanted = followed(
            self.discovery.catalog.values(),
            self.ctx.owned_shards,
            settings.bus.shards,
            settings.ingest.max_markets,
        )
        for market in self.followed - wanted:
            self.keeper.forget(market)
            self.trades.forget(market)
        for market in wanted - self.followed:
            info = self.discovery.catalog[market]
            self.keeper.track(MarketRef(market, info.event, grid_of(info)))
            self.trades.track(market, info.event)
        self.followed = wanted
        # trades first: by the time the books are valid, both subscriptions are answered
        await self.trade_subscription.follow(wanted)
        await self.subscriptions.follow(wanted)
        await self.subscriptions.repair()
        await self.watch_connection()
        self.ctx.info.update(self.info())
        self.export()

    async def watch_connection(self) -> None:
        now = time.time_ns()
        if self.ws.connected and not self.ws.stale(self.ctx.settings.ingest.stale_after_s):
            status = self.freshness.on_message(now)
        else:
            status = self.freshness.on_failure(now, "no message and no ping from kalshi")
        if status is not None:
            await self.ctx.publisher.publish(OBSERVATIONS, status)

    async def republish_snapshots(self) -> None:
        self.outbox.put(list(self.keeper.snapshots()), time.time_ns())

    def on_heartbeats(self, messages: list[Message]) -> None:
        names = self.newcomers.arrived(messages)
        if names:
            log.info("books to be republished for newcomers", newcomers=names)
            self.books_wanted.set()

    def info(self) -> dict[str, str]:
        valid = sum(self.keeper.is_valid(m) for m in self.followed)
        return {
            "markets": str(len(self.followed)),
            "books_valid": str(valid),
            "deltas": str(self.feed.deltas),
            "published": str(self.outbox.published),
            "trades": str(self.trades.published),
            "gaps": str(self.keeper.gaps),
            "kalshi_feed": {True: "fresh", False: "stale", None: "starting"}[self.freshness.fresh],
        }

    def export(self) -> None:
        """Prometheus: books by state, the Kalshi feed's freshness, the running totals."""
        valid = sum(self.keeper.is_valid(m) for m in self.followed)
        stale = self.freshness.fresh is False  # valid books on a stale feed are not current
        metrics.MARKETS_FOLLOWED.set(len(self.followed))
        metrics.BOOKS.labels("valid").set(0 if stale else valid)
        metrics.BOOKS.labels("stale").set(valid if stale else 0)
        metrics.BOOKS.labels("invalid").set(len(self.followed) - valid)
        if self.freshness.fresh is not None:
            metrics.FEED_FRESH.labels(KALSHI_FEED).set(0 if stale else 1)
        if self.ws.last_message_monotonic:
            silence = time.monotonic() - self.ws.last_message_monotonic
            metrics.FEED_SILENCE.labels(KALSHI_FEED).set(silence)
        for counter, total in self.totals:
            counter.update(total())

    def loops(self) -> list[Coroutine[Any, Any, None]]:
        stop, settings = self.ctx.stop, self.ctx.settings.ingest
        return [
            self.outbox.run(stop),
            every(settings.discovery_interval_s, stop, self.discover),
            every(SYNC_EVERY_S, stop, self.sync),
            every(settings.snapshot_interval_s, stop, self.republish_snapshots),
            self.heartbeats.run(stop),
            republish_for_newcomers(self.books_wanted, stop, self.republish_snapshots),
            outside_feeds(self.ctx),
        ]

    async def run(self) -> None:
        if self.recorder is not None:
            self.recorder.start()
        await self.ws.start()
        try:
            await run_until_stopped(self.ctx.stop, *self.loops())
        finally:
            self.feed.closing = True
            await self.ws.close()
            await self.rest.aclose()
            await self.outbox.flush()
            if self.recorder is not None:
                await asyncio.wait_for(self.recorder.aclose(), timeout=10)


async def outside_feeds(ctx: ServiceContext) -> None:
    """NWS, Fed odds and Polymarket, on whichever replica holds the feeds lease."""
    feeds = ctx.settings.feeds
    jobs: list[Callable[[], Coroutine[Any, Any, None]]] = []
    if feeds.nws.enabled:
        jobs.append(lambda: NwsPoller(feeds.nws, ctx.publisher).run(ctx.stop))
    if feeds.fed.enabled:
        jobs.append(lambda: FedPoller(feeds.fed, ctx.publisher).run(ctx.stop))
    if feeds.polymarket.enabled:
        jobs.append(lambda: PolymarketFeed(feeds.polymarket, ctx.publisher).run(ctx.stop))
    if not jobs:
        await ctx.stop.wait()
        return

    async def active() -> None:
        await run_until_stopped(ctx.stop, *(job() for job in jobs))

    lease = Lease(
        ctx.redis,
        f"{ctx.settings.key_prefix}lease:ingest:feeds",
        ctx.instance,
        ctx.settings.bus.lease_ttl_ms,
    )
    await run_as_leader(lease, ctx.stop, active)


async def run(ctx: ServiceContext) -> None:
    signer = load_signer(ctx)
    pool = await connect_store(ctx)
    try:
        await Ingest(ctx, signer, pool).run()
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> int:
    return service_main("ingest", DESCRIPTION, run, role="sharded", argv=argv)
