"""The risk process: the only way from a signal to an order.

One active instance (a Redis lease; a standby takes over). On start it rebuilds
its view from Postgres: the trading state (a kill stays in force across any
restart, of risk or of Redis), the ledger from execution's fills and
settlements, the open orders, the peak NAV and the day's first NAV, and the
signals it already decided (a redelivered signal is a quiet duplicate; an
approved, unexpired one has its intent published again, which execution
deduplicates by client order id).

Signals are decided in batches: the intents are published, the decisions
committed to Postgres, the decisions published, then the signals acked. The
intents go first because they are on the path from tick to order; a crash
before the commit leaves an intent whose signal is decided again after the
restart, and its orders (the same client order ids, derived from the signal)
are claimed by execution once, whatever the second decision says.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final

import psycopg
import structlog

from services.risk.guardian import Decision, Guardian
from services.risk.store import RiskStore
from shared import metrics
from shared.bus.consumer import Consumer, Delivery
from shared.bus.follower import NOW, Follower
from shared.config import Settings
from shared.ledger import Ledger
from shared.messages import (
    ControlCommand,
    Fill,
    Heartbeat,
    MarketDataBatch,
    MarketInfo,
    MarketSettled,
    Message,
    OrderEvent,
    PortfolioState,
    Side,
    Signal,
)
from shared.risk import PortfolioView, TradingStateMachine, Transition, day_start_ns
from shared.risk.trading_state import API_ERROR_RATE, CLEARED_BY_RESUME, FEED_STALE_PREFIX
from shared.runtime import ServiceContext, consumer, run_until_stopped, service_main
from shared.store.migrations import open_migrated
from shared.store.pool import Pool
from shared.streams import (
    CONTROL,
    DECISIONS,
    FILLS,
    HEARTBEATS,
    INTENTS,
    MARKET_DATA,
    MARKETS,
    ORDERS,
    PORTFOLIO,
    SIGNALS,
    StreamSpec,
)

log = structlog.get_logger("risk")

DESCRIPTION = (
    "Risk: pre-trade checks on every signal, the portfolio view, trading state and the "
    "kill switch; approved signals become order intents (one active instance)."
)
GROUP: Final = "risk"
CLOCK_S: Final = 1.0
HALT_REASONS: Final = {*CLEARED_BY_RESUME, API_ERROR_RATE, f"{FEED_STALE_PREFIX}kalshi"}
"""Exported as ``khv_risk_halt`` from the start (0 when not in force); others as they occur."""


async def load_guardian(settings: Settings, store: RiskStore, now_ns: int) -> Guardian:
    """The guardian as Postgres remembers it."""
    limits = settings.risk
    record = await store.trading_state()
    trading = (
        TradingStateMachine.from_record(limits, record) if record else TradingStateMachine(limits)
    )
    ledger = Ledger.replay(limits.bankroll, await store.fills(), await store.settlements())
    day_start = day_start_ns(now_ns, limits.day_boundary_utc_hour)
    peak, day_nav = await store.peak_and_day_start(day_start)
    view = PortfolioView(
        ledger,
        day_boundary_utc_hour=limits.day_boundary_utc_hour,
        peak_nav=peak,
        day_start_ns=day_start if day_nav is not None else None,
        day_start_nav=day_nav,
    )
    for order in await store.open_orders():
        view.on_order(order)
    guardian = Guardian(
        limits, view, trading, maker_strategies=settings.risk.maker_strategies, now_ns=now_ns
    )
    seen, _ = await store.recent_decisions(now_ns)
    guardian.remember(seen)
    log.info(
        "risk state restored",
        trading_state=trading.system_state.value,
        halts=sorted(trading.reasons),
        cash_micros=ledger.cash,
        nav_micros=view.nav(),
        open_orders=len(view.open_orders),
        recent_signals=len(seen),
    )
    return guardian


class Risk:
    """Bus and store wiring around one :class:`Guardian`."""

    def __init__(self, ctx: ServiceContext, guardian: Guardian, store: RiskStore) -> None:
        self.ctx = ctx
        self.guardian = guardian
        self.store = store
        self._dirty = True
        self._unsaved: list[Transition] = []
        self._halt_reasons = set(HALT_REASONS)
        settings = ctx.settings
        every_shard = range(settings.bus.shards)
        self.consumers = [
            self._consumer(SIGNALS, self.on_signals, every_shard),
            self._consumer(MARKET_DATA, self.on_market_data, every_shard),
            self._consumer(ORDERS, self.on_orders),
            self._consumer(FILLS, self.on_fills),
            self._consumer(CONTROL, self.on_control),
        ]
        redis, prefix = ctx.redis, settings.key_prefix
        self.markets = Follower(redis, prefix, MARKETS, self.on_markets)
        self.heartbeats = Follower(redis, prefix, HEARTBEATS, self.on_heartbeats, start=NOW)

    def _consumer(
        self,
        spec: StreamSpec,
        handler: Callable[[list[Delivery]], Awaitable[None]],
        shards: range | None = None,
    ) -> Consumer:
        return consumer(self.ctx, spec, GROUP, handler, shards)

    # --- handlers -----------------------------------------------------------------------

    async def on_signals(self, deliveries: list[Delivery]) -> None:
        now = time.time_ns()
        decisions = [
            self.guardian.decide(d.message, now)
            for d in deliveries
            if isinstance(d.message, Signal)
        ]
        loud = [d for d in decisions if not d.verdict.quiet]
        intents = [d.intent for d in loud if d.intent is not None]
        if intents:  # first, for latency: execution claims every order id before sending
            await self.ctx.publisher.publish_many(INTENTS, intents)
        await self.store.record_decisions(loud, now)
        if loud:
            await self.ctx.publisher.publish_many(
                DECISIONS,
                [
                    d.verdict.decision(d.signal.signal_id, d.intent.intent_id if d.intent else "")
                    for d in loud
                ],
            )
            self._dirty = True
        for decision in loud:
            self._log(decision)
        for decision in decisions:
            metrics.DECISIONS.labels(decision.verdict.reason.value).inc()

    @staticmethod
    def _log(decision: Decision) -> None:
        log.info(
            "approved" if decision.verdict.approved else "rejected",
            signal_id=decision.signal.signal_id,
            strategy=decision.signal.strategy,
            event_ticker=decision.signal.event,
            reason=decision.verdict.reason.value,
            detail=decision.verdict.detail,
        )

    async def on_market_data(self, deliveries: list[Delivery]) -> None:
        now = time.time_ns()
        transitions: list[Transition] = []
        for delivery in deliveries:
            if isinstance(delivery.message, MarketDataBatch):
                transitions += self.guardian.on_market_data(delivery.message.items, now)
        await self.apply(transitions)

    async def on_orders(self, deliveries: list[Delivery]) -> None:
        now = time.time_ns()
        transitions: list[Transition] = []
        for delivery in deliveries:
            if isinstance(delivery.message, OrderEvent):
                transitions += self.guardian.on_order(delivery.message, now)
        self._dirty = True
        await self.apply(transitions)

    async def on_fills(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            entry = delivery.message
            if isinstance(entry, Fill):
                self.guardian.on_fill(entry)
            elif isinstance(entry, MarketSettled):
                self.guardian.portfolio.settle(entry.market, entry.result is Side.YES)
        self._dirty = True

    async def on_control(self, deliveries: list[Delivery]) -> None:
        now = time.time_ns()
        for delivery in deliveries:
            command = delivery.message
            if not isinstance(command, ControlCommand):
                continue
            log.warning(
                "operator command",
                command=command.command.value,
                actor=command.actor,
                market=command.market or "system",
                reason=command.reason,
            )
            await self.apply(self.guardian.on_command(command, now), force=True)
            await self.store.record_command(command, now)  # after: a kill must not wait

    def on_markets(self, messages: list[Message]) -> None:
        for message in messages:
            if isinstance(message, MarketInfo):
                self.guardian.on_market(message)

    async def on_heartbeats(self, messages: list[Message]) -> None:
        now = time.time_ns()
        transitions: list[Transition] = []
        for message in messages:
            if isinstance(message, Heartbeat):
                transitions += self.guardian.on_heartbeat(message, now)
        await self.apply(transitions)

    # --- state changes ----------------------------------------------------------------

    async def apply(self, transitions: list[Transition], *, force: bool = False) -> None:
        """Persist and audit transitions, then tell everyone the new state at once.

        The new state is published even when Postgres cannot be written (a halt must
        reach execution now); what was not saved is saved with the next change or the
        next tick of the clock.
        """
        if not transitions and not force and not self._unsaved:
            return
        for t in transitions:
            log.warning(
                "trading state",
                what=t.what,
                subject=t.subject,
                before=t.before,
                after=t.after,
                reason=t.reason,
                actor=t.actor,
            )
        self._unsaved += transitions
        try:
            await self.store.record_transitions(self._unsaved, self.guardian.trading.to_record())
            self._unsaved = []
        except psycopg.Error as exc:
            log.error(
                "trading state not saved yet, retried every second",
                unsaved=len(self._unsaved),
                error=" ".join(str(exc).split()),
            )
        await self.publish_state()

    async def publish_state(self) -> None:
        state = self.guardian.state(time.time_ns())
        await self.ctx.publisher.publish(PORTFOLIO, state)
        self._dirty = False
        self.export(state)
        self.ctx.info.update(
            {
                "trading_state": state.trading_state.value,
                "nav_micros": str(state.nav),
                "approved": str(self.guardian.approved),
                "rejected": str(self.guardian.rejected),
            }
        )

    def export(self, state: PortfolioState) -> None:
        """Prometheus gauges of the trading state and the portfolio (dollars: display only)."""
        reasons = self.guardian.trading.reasons
        self._halt_reasons |= reasons
        for reason in self._halt_reasons:
            metrics.HALT.labels(reason).set(1 if reason in reasons else 0)
        metrics.TRADING_STATE.set(metrics.TRADING_STATE_CODES[state.trading_state.value])
        metrics.HALTED_MARKETS.set(len(state.halted_markets))
        metrics.RECOVERY_MODE.set(1 if state.recovery_mode else 0)
        metrics.NAV.set(metrics.dollars(state.nav))
        metrics.CASH.set(metrics.dollars(state.cash))
        metrics.PEAK_NAV.set(metrics.dollars(state.peak_nav))
        metrics.DAILY_PNL.set(metrics.dollars(state.daily_pnl))
        metrics.DRAWDOWN.set(state.drawdown_ppm / 1_000_000)
        portfolio = self.guardian.portfolio
        metrics.EXPOSURE.set(metrics.dollars(sum(portfolio.exposure_by_market().values())))
        metrics.POSITIONS.set(len(state.positions))
        metrics.OPEN_ORDERS.set(len(portfolio.open_orders))

    # --- loops --------------------------------------------------------------------------

    async def clock(self) -> None:
        while not self.ctx.stop.is_set():
            now = time.time_ns()
            await self.apply(self.guardian.clock(now))
            self.export(self.guardian.state(now))  # marks move NAV between publishes
            await asyncio.sleep(CLOCK_S)

    async def publisher(self) -> None:
        interval = self.ctx.settings.risk.publish_interval_s
        while not self.ctx.stop.is_set():
            if self._dirty:
                await self.publish_state()
            await asyncio.sleep(interval)

    async def snapshots(self) -> None:
        interval = self.ctx.settings.risk.snapshot_interval_s
        while not self.ctx.stop.is_set():
            try:
                await self.store.snapshot(self.guardian.state(time.time_ns()))
            except psycopg.Error as exc:  # a missed snapshot is a gap in the chart only
                log.warning("portfolio snapshot skipped", error=" ".join(str(exc).split()))
            await asyncio.sleep(interval)

    async def consume(self) -> None:
        """Signals are judged against the catalog: read it whole first."""
        await self.markets.caught_up.wait()
        stop = self.ctx.stop
        await run_until_stopped(stop, *(consumer.run(stop) for consumer in self.consumers))

    async def republish_open_intents(self) -> None:
        """Approved, unexpired intents again: a crash may have come before their publish."""
        _, intents = await self.store.recent_decisions(time.time_ns())
        if intents:
            await self.ctx.publisher.publish_many(INTENTS, intents)
            log.info("intents republished after restart", count=len(intents))

    async def run(self) -> None:
        stop = self.ctx.stop
        await self.republish_open_intents()
        # judged before the first publish: nobody may read ACTIVE before the feed is known
        await self.apply(self.guardian.clock(time.time_ns()), force=True)
        await run_until_stopped(
            stop,
            self.markets.run(stop),
            self.heartbeats.run(stop),
            self.consume(),
            self.clock(),
            self.publisher(),
            self.snapshots(),
        )


async def open_store(ctx: ServiceContext) -> Pool:
    return await open_migrated(ctx.settings.database_url, what="risk")


async def run(ctx: ServiceContext) -> None:
    pool = await open_store(ctx)
    try:
        store = RiskStore(pool)
        guardian = await load_guardian(ctx.settings, store, time.time_ns())
        await Risk(ctx, guardian, store).run()
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> int:
    return service_main("risk", DESCRIPTION, run, role="singleton", argv=argv)
