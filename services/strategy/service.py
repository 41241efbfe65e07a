"""The strategy process: the engine fed from the bus, its signals published.

* ``md:{shard}`` of the shards this replica holds, in the ``strategy`` consumer
  group: a batch is acked once the signals it produced are on the bus.
* ``markets``, ``ext`` and ``portfolio`` are followed whole by every replica
  (plain XREAD): the catalog and the observations from the start of their
  streams, the portfolio from its newest entry.

Replicas split the events by shard (``docker compose up --scale strategy=3``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Final

import structlog

from services.strategy.engine import OBSERVATION_TYPES, StrategyEngine
from shared import metrics
from shared.bus.consumer import Delivery
from shared.bus.follower import LAST, Follower
from shared.messages import (
    Hop,
    MarketDataBatch,
    MarketInfo,
    Message,
    PortfolioState,
    Signal,
)
from shared.runtime import ServiceContext, consumer, run_until_stopped, service_main
from shared.streams import MARKET_DATA, MARKETS, OBSERVATIONS, PORTFOLIO, SIGNALS, shard_of

log = structlog.get_logger("strategy")

DESCRIPTION = (
    "Strategy: fair values, fee-adjusted Kelly and the arbitrage scanner; reads books and "
    "outside signals, emits ranked signals (one replica per event shard)."
)
GROUP: Final = "strategy"
TICK_S: Final = 0.01
TICKS_PER_REPORT: Final = 100
RECEIVED_HOP: Final = "ingest.rx"


def upstream_hops(batch: MarketDataBatch) -> list[Hop]:
    """When the batch's first change reached ingest, and when ingest published it."""
    received = next((h for item in batch.items for h in item.hops if h.name == RECEIVED_HOP), None)
    return ([received] if received else []) + list(batch.hops)


class Strategy:
    """Bus wiring around one :class:`StrategyEngine`."""

    def __init__(self, ctx: ServiceContext) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.engine = StrategyEngine(
            settings.strategy, current_upper_bp=settings.feeds.fed.current_upper_bp
        )
        self._owned: set[int] | None = None
        self._waiting_hops: dict[str, list[Hop]] = {}
        """The hops of the first batch that changed each event waiting for a throttled scan."""
        self._ticks = 0
        self._scans = metrics.CounterFrom(metrics.SCANS)
        redis, prefix = ctx.redis, settings.key_prefix
        self.md = consumer(ctx, MARKET_DATA, GROUP, self.on_market_data, ())
        self.markets = Follower(redis, prefix, MARKETS, self.on_markets)
        self.ext = Follower(redis, prefix, OBSERVATIONS, self.on_observations)
        self.portfolio = Follower(redis, prefix, PORTFOLIO, self.on_portfolio, start=LAST)
        self._sync_owner()

    # --- handlers -----------------------------------------------------------------------

    def on_markets(self, messages: list[Message]) -> None:
        self.engine.on_markets(m for m in messages if isinstance(m, MarketInfo))

    async def on_observations(self, messages: list[Message]) -> None:
        live = self.ext.caught_up.is_set()
        now = time.time_ns()
        signals: list[Signal] = []
        for message in messages:
            if not isinstance(message, OBSERVATION_TYPES):
                continue
            if live:
                signals += self.engine.on_observation(message, now)
            else:  # history rebuilds state; only news may trigger a trade
                self.engine.remember(message)
        await self.publish(signals, [])

    def on_portfolio(self, messages: list[Message]) -> None:
        for message in messages:
            if isinstance(message, PortfolioState):
                self.engine.on_portfolio(message)

    async def on_market_data(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            batch = delivery.message
            if not isinstance(batch, MarketDataBatch):
                continue
            signals = self.engine.on_market_data(batch.items, time.time_ns())
            hops = upstream_hops(batch)
            for event in self.engine.pending:
                self._waiting_hops.setdefault(event, hops)
            await self.publish(signals, hops)

    async def publish(self, signals: Sequence[Signal], hops: list[Hop] | None) -> None:
        """``hops`` None: each signal carries the hops of what made its event wait."""
        if not signals:
            return
        for signal in signals:
            signal.hops = list(
                hops if hops is not None else self._waiting_hops.get(signal.event, [])
            )
        await self.ctx.publisher.publish_many(SIGNALS, signals, events=[s.event for s in signals])
        for signal in signals:
            metrics.SIGNALS.labels(signal.strategy, signal.kind).inc()
            log.info(
                "signal",
                signal_id=signal.signal_id,
                kind=signal.kind,
                strategy=signal.strategy,
                event_ticker=signal.event,
                legs=[f"{leg.market}:{leg.side}:{leg.price}x{leg.count}" for leg in signal.legs],
                edge_micros=signal.edge,
                ev_micros=signal.ev,
            )

    # --- loops --------------------------------------------------------------------------

    def _sync_owner(self) -> None:
        owned, shards = set(self.ctx.owned_shards), self.ctx.settings.bus.shards
        if owned == self._owned:
            return
        self._owned = owned
        self.engine.set_owner(lambda event: shard_of(event, shards) in owned)
        self.md.set_shards(owned)
        log.info("events of shards", shards=sorted(owned))

    async def ticks(self) -> None:
        """Throttled scans that came due, and shard changes."""
        while not self.ctx.stop.is_set():
            self._sync_owner()
            await self.publish(self.engine.tick(time.time_ns()), None)
            self._forget_scanned()
            self._ticks += 1
            if self._ticks % TICKS_PER_REPORT == 0:
                self.report()
            await asyncio.sleep(TICK_S)

    def _forget_scanned(self) -> None:
        waiting = self.engine.pending
        for event in [e for e in self._waiting_hops if e not in waiting]:
            del self._waiting_hops[event]

    def report(self) -> None:
        """What the heartbeat and the metrics say of this replica (once a second)."""
        trusted = len(self.engine.books.trusted())
        self.ctx.info.update(
            {
                "scans": str(self.engine.scans),
                "signals": str(self.engine.emitted),
                "markets": str(len(self.engine.catalog)),
                "books_trusted": str(trusted),
            }
        )
        self._scans.update(self.engine.scans)
        metrics.BOOKS_TRUSTED.set(trusted)

    async def run(self) -> None:
        stop = self.ctx.stop
        await run_until_stopped(
            stop,
            self.markets.run(stop),
            self.ext.run(stop),
            self.portfolio.run(stop),
            self._after_catalog(),
            self.ticks(),
        )

    async def _after_catalog(self) -> None:
        """Books need the catalog's price grids: read market data once it is loaded."""
        await self.markets.caught_up.wait()
        await self.md.run(self.ctx.stop)


async def run(ctx: ServiceContext) -> None:
    await Strategy(ctx).run()


def main(argv: list[str] | None = None) -> int:
    return service_main("strategy", DESCRIPTION, run, role="sharded", argv=argv)
