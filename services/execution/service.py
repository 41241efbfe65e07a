"""The execution process: approved intents to exchange orders, fills to the ledger.

One active instance (a Redis lease; a standby takes over). ``mode: paper`` (the
default) fills on paper against the live books; ``mode: live`` sends real
orders through Kalshi's V2 endpoints (pointed at the simulator, with a
simulator account, it runs the real order path with no money).

On start: the ledger is rebuilt from Postgres; orders left SENT or UNKNOWN by
a previous run are resolved by a lookup (never sent again); orders still
resting from a previous run are canceled (their signals are stale); the venue
reconciles with the exchange before anything is sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final

import structlog

from services.execution.live import LiveVenue
from services.execution.paper import PaperVenue, rates_of
from services.execution.records import RESTING, UNRESOLVED, ExecutionStore
from services.execution.router import Router, RouterConfig
from services.execution.settlement import Settler
from services.execution.venue import ReportedStates, Venue, VenueOrder, order_event
from shared import metrics
from shared.bus.consumer import Consumer, Delivery
from shared.bus.follower import LAST, Follower
from shared.fees import FeeRate
from shared.kalshi.rest import KalshiRest
from shared.kalshi.signing import Signer, load_private_key
from shared.ledger import Ledger
from shared.marketbooks import MarketBooks
from shared.messages import (
    Command,
    ControlCommand,
    Fill,
    Hop,
    Leg,
    MarketDataBatch,
    MarketInfo,
    MarketSettled,
    Message,
    OrderIntent,
    OrderStatus,
    PortfolioState,
    TradingState,
)
from shared.money import cents
from shared.risk import TradingStateMachine
from shared.runtime import ServiceContext, ServiceError, consumer, run_until_stopped, service_main
from shared.store.migrations import open_migrated
from shared.streams import (
    CONTROL,
    FILLS,
    INTENTS,
    MARKET_DATA,
    MARKETS,
    ORDERS,
    PORTFOLIO,
    StreamSpec,
)

log = structlog.get_logger("execution")

DESCRIPTION = (
    "Execution: approved intents to orders (maker or sniper) on a paper or live venue; "
    "fills to the ledger in Postgres (one active instance)."
)
GROUP: Final = "execution"


def signer_of(ctx: ServiceContext) -> Signer | None:
    settings = ctx.settings
    if settings.kalshi_key_id is None or settings.kalshi_private_key_path is None:
        return None
    key = load_private_key(settings.kalshi_private_key_path)
    return Signer(settings.kalshi_key_id.get_secret_value(), key)


class Execution:
    """Bus, store and venue wiring around the :class:`Router`."""

    def __init__(self, ctx: ServiceContext, store: ExecutionStore, ledger: Ledger) -> None:
        self.ctx = ctx
        self.store = store
        self.ledger = ledger
        self.books = MarketBooks()
        self.catalog: dict[str, MarketInfo] = {}
        self._reported = ReportedStates()
        self.signer = signer_of(ctx)
        self.venue = self._venue()
        if isinstance(self.venue, LiveVenue):
            metrics.KALSHI.watch_rest(self.venue.rest, "execution")
        config = ctx.settings.execution
        self.router = Router(
            self.venue,
            store,
            self.books,
            self.report,
            RouterConfig(
                config.max_reprices,
                int(config.maker_ttl_s * 1e9),
                cents(config.unwind_slippage_cents),
            ),
        )
        if isinstance(self.venue, LiveVenue):  # a kill or a bad book stops orders in retries
            self.venue.may_send = self.router.may_trade
        redis, prefix, bus = ctx.redis, ctx.settings.key_prefix, ctx.settings.bus
        self.consumers = [
            self._consumer(INTENTS, self.on_intents),
            self._consumer(MARKET_DATA, self.on_market_data, range(bus.shards)),
            self._consumer(CONTROL, self.on_control),
        ]
        self.markets = Follower(redis, prefix, MARKETS, self.on_markets)
        self.portfolio = Follower(redis, prefix, PORTFOLIO, self.on_portfolio, start=LAST)

    def _venue(self) -> Venue:
        if self.ctx.settings.mode == "live":
            if self.signer is None:
                raise ServiceError("mode=live needs KALSHI_KEY_ID and KALSHI_PRIVATE_KEY_PATH")
            log.warning(
                "LIVE TRADING: orders go to the exchange",
                rest_url=self.ctx.settings.kalshi.rest_url,
                env=self.ctx.settings.kalshi.env,
            )
            return LiveVenue.from_settings(self.ctx.settings, self.signer)
        log.info("paper trading: fills against the live books", bankroll_micros=self.ledger.cash)
        return PaperVenue(self.books, self.rates)

    def _consumer(
        self,
        spec: StreamSpec,
        handler: Callable[[list[Delivery]], Awaitable[None]],
        shards: range | None = None,
    ) -> Consumer:
        return consumer(self.ctx, spec, GROUP, handler, shards)

    def rates(self, market: str) -> tuple[FeeRate, FeeRate]:
        return rates_of(self.catalog.get(market))

    # --- what the venue reports (VenueSink) --------------------------------------------

    async def on_fill(self, fill: Fill) -> None:
        if await self.store.record_fill(fill, self.ledger):
            await self.ctx.publisher.publish(FILLS, fill)
            labels = ("taker" if fill.is_taker else "maker", "paper" if fill.paper else "live")
            metrics.FILLS.labels(*labels).inc()
            metrics.FILLED_CONTRACTS.labels(*labels).inc(fill.count / 100)
            metrics.FEES.labels(labels[1]).inc(metrics.dollars(fill.fee))
            log.info(
                "fill",
                market=fill.market,
                side=fill.side.value,
                action=fill.action.value,
                price_micros=fill.price,
                count=fill.count,
                fee_micros=fill.fee,
                paper=fill.paper,
                client_order_id=fill.client_order_id,
            )

    async def on_order(self, order: VenueOrder) -> None:
        self.router.on_order(order)
        leg = self.router.legs.get(order.client_order_id)
        if leg is not None:
            await self.report(order, leg, [])

    async def report(self, order: VenueOrder, leg: Leg, hops: list[Hop]) -> None:
        """Record and publish an order's new state; the same state told twice counts once.

        A live venue tells a state both in its answer and on the order stream.
        """
        if not self._reported.news(order):
            return
        now = time.time_ns()
        await self.store.update(order, now)
        await self.ctx.publisher.publish(ORDERS, order_event(order, leg, hops, now))
        metrics.ORDERS.labels(order.status.value).inc()

    async def on_settled(self, settled: MarketSettled) -> None:
        if await self.store.record_settlement(settled, self.ledger):
            await self.ctx.publisher.publish(FILLS, settled)
            log.info("market settled", market=settled.market, result=settled.result.value)

    # --- bus handlers -----------------------------------------------------------------

    async def on_intents(self, deliveries: list[Delivery]) -> None:
        """A batch's intents run concurrently, one event's in turn.

        No intent waits for another event's round trips; two of the same event
        would race for the same depth (each checked it before the other took
        it) and leave a multi-leg set half filled.
        """
        by_event: dict[str, list[OrderIntent]] = {}
        for delivery in deliveries:
            if isinstance(delivery.message, OrderIntent):
                by_event.setdefault(delivery.message.event, []).append(delivery.message)
        outcomes = await asyncio.gather(
            *(self._execute_in_turn(group) for group in by_event.values()),
            return_exceptions=True,
        )
        failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
        if failure is not None:  # the batch is not acked; its claims keep it from resending
            raise failure
        for sample in self.router.tick_to_order_ns:
            metrics.TICK_TO_ORDER.observe(sample / 1e9)
        self.router.tick_to_order_ns.clear()

    async def _execute_in_turn(self, intents: list[OrderIntent]) -> None:
        for intent in intents:
            await self.router.execute(intent)

    async def on_market_data(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            batch = delivery.message
            if not isinstance(batch, MarketDataBatch):
                continue
            for item in batch.items:
                self.books.apply(item)
            if isinstance(self.venue, PaperVenue):
                await self.venue.on_market_data(batch.items)

    async def on_control(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            command = delivery.message
            if not isinstance(command, ControlCommand) or command.market:
                continue
            if command.command is Command.KILL:
                self.router.operator_halt = True  # before risk says so: no order after this
                canceled = await self.router.cancel_all(f"kill switch by {command.actor}")
                log.warning("kill switch: every resting order canceled", canceled=canceled)
            elif command.command is Command.HALT:
                self.router.operator_halt = True
            elif command.command is Command.RESUME:
                self.router.operator_halt = False

    def on_markets(self, messages: list[Message]) -> None:
        for message in messages:
            if isinstance(message, MarketInfo):
                self.catalog[message.market] = message
                self.books.set_market(message)

    def on_portfolio(self, messages: list[Message]) -> None:
        for message in messages:
            if isinstance(message, PortfolioState):
                self.router.risk_halted = message.trading_state is TradingState.HALTED

    # --- start ------------------------------------------------------------------------

    async def recover(self) -> None:
        """Orders a previous run left behind: resolve the unsure, cancel the resting."""
        record = await self.store.trading_record()
        if record is not None:
            state = TradingStateMachine.from_record(self.ctx.settings.risk, record).system_state
            self.router.risk_halted = state is TradingState.HALTED
        for stored in await self.store.orders(UNRESOLVED):
            self.router.legs[stored.client_order_id] = stored.leg
            found = await self.router.lookup(stored.client_order_id, stored.leg)
            if found is None:
                found = VenueOrder(
                    stored.client_order_id,
                    stored.order_id,
                    stored.leg.market,
                    OrderStatus.CANCELED,
                    stored.filled,
                    0,
                    "never reached the exchange before a restart",
                )
            await self.report(found, stored.leg, [])
        for stored in await self.store.orders(RESTING):
            self.router.legs[stored.client_order_id] = stored.leg
            if self.venue.paper:  # paper orders lived in the previous process only
                gone = VenueOrder(
                    stored.client_order_id,
                    stored.order_id,
                    stored.leg.market,
                    OrderStatus.CANCELED,
                    stored.filled,
                    0,
                    "paper venue restarted",
                )
                await self.report(gone, stored.leg, [])
        if not self.venue.paper:
            await self.router.cancel_all("stale after restart")

    async def fade(self) -> None:
        interval = self.ctx.settings.execution.fade_interval_s
        while not self.ctx.stop.is_set():
            await self.router.fade()
            self.ctx.info.update(
                {
                    "venue": self.venue.name,
                    "ready": str(self.venue.ready),
                    "halted": str(self.router.halted),
                    "makers": str(len(self.router.makers)),
                    "cash_micros": str(self.ledger.cash),
                }
            )
            metrics.EXECUTION_HALTED.set(1 if self.router.halted else 0)
            metrics.MAKERS.set(len(self.router.makers))
            metrics.VENUE_READY.set(1 if self.venue.ready else 0)
            await asyncio.sleep(interval)

    async def run(self) -> None:
        stop = self.ctx.stop
        await self.venue.start(self)
        try:
            await self.venue.reconcile()
            await self.recover()
            settler = self._settler()
            await run_until_stopped(
                stop,
                self.markets.run(stop),
                self.portfolio.run(stop),
                self.consume(),
                self.fade(),
                *([settler.run(stop)] if settler else []),
            )
        finally:
            await self.venue.close()

    def _settler(self) -> Settler | None:
        if self.signer is None:
            log.warning("no Kalshi key: settlements are not polled")
            return None
        rest = KalshiRest.from_settings(self.ctx.settings.kalshi, self.signer)
        metrics.KALSHI.watch_rest(rest, "settlement")
        return Settler(
            rest,
            self.ledger,
            self.catalog,
            self.on_settled,
            paper=self.venue.paper,
            every_s=self.ctx.settings.execution.settle_poll_s,
        )

    async def consume(self) -> None:
        """Fee schedules and price grids come with the catalog: read it whole first."""
        await self.markets.caught_up.wait()
        stop = self.ctx.stop
        await run_until_stopped(stop, *(consumer.run(stop) for consumer in self.consumers))


async def run(ctx: ServiceContext) -> None:
    pool = await open_migrated(ctx.settings.database_url, what="execution")
    try:
        store = ExecutionStore(pool)
        ledger = Ledger.replay(
            ctx.settings.risk.bankroll, await store.fills(), await store.settlements()
        )
        await Execution(ctx, store, ledger).run()
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> int:
    return service_main("execution", DESCRIPTION, run, role="singleton", argv=argv)
