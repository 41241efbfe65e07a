"""Recorded market data through the live strategy, risk and paper execution, on a simulated clock.

Nothing here decides anything: the :class:`StrategyEngine` finds the signals,
the :class:`Guardian` approves or rejects them, the :class:`Router` sends the
orders to a :class:`PaperVenue` that fills them against the replayed books.
This module only does what the bus and the services' loops do live, in the
order they do it:

* each tick's market data reaches risk and execution (books, paper makers),
  then the strategy; the signals it emits are decided as one batch, then the
  approved intents are executed (after ``latency`` when one is modelled);
* risk's one-second clock runs on the simulated clock, with ingest's
  heartbeat saying the Kalshi feed is fresh (a recorded feed outage shows as
  books condemned in the data itself);
* risk publishes the portfolio to strategy (sizing bankroll, recovery mode)
  and execution (halted or not) every ``publish_interval_s`` when it changed;
* execution fades and reprices resting makers every ``fade_interval_s``.

The only randomness is the optional latency jitter, drawn from ``seed``: the
same recording, settings and seed give the same results, byte for byte.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Final

import structlog

from services.backtest.clock import NS_PER_S, Pacer, SimClock, Timers
from services.backtest.recording import Recording, Tick
from services.backtest.records import MemoryClaims
from services.execution.paper import PaperVenue, rates_of
from services.execution.router import Router, RouterConfig
from services.execution.venue import ReportedStates, VenueOrder, order_event
from services.risk.guardian import Guardian
from services.strategy.engine import StrategyEngine
from shared.config import Settings
from shared.fees import FeeRate
from shared.ledger import Ledger
from shared.messages import (
    Fill,
    Heartbeat,
    Hop,
    Leg,
    MarketInfo,
    MarketSettled,
    OrderIntent,
    OrderStatus,
    Side,
    Signal,
    TopOfBook,
    TradingState,
)
from shared.money import Micros, cents
from shared.performance import EquityPoint
from shared.risk import PortfolioView, TradingStateMachine, Transition, mark_from_book

log = structlog.get_logger("backtest")

TOTAL: Final = "total"
DECIDED_YES: Final = cents(99)
DECIDED_NO: Final = cents(1)
FEED_INSTANCE: Final = "replay"
PROGRESS_EVERY: Final = 1000


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    """How the replay runs (the trading settings come from :class:`Settings`)."""

    seed: int = 0
    latency_ns: int = 0
    """From a book change to the orders it causes reaching the venue."""
    jitter_ns: int = 0
    """Extra latency, uniform in [0, jitter_ns], drawn from ``seed``."""
    speed: float = 0.0
    """Real time x speed; 0 replays as fast as possible."""
    equity_interval_ns: int = 60 * NS_PER_S
    """NAV is sampled this often, and at every fill."""
    settle_decided: bool = True
    """At the end, settle what is still held where the market had decided: a last
    mark at 99 cents or more is a YES, at 1 cent or less a NO (the data says no result)."""


@dataclass(frozen=True, slots=True)
class SignalRecord:
    ts_ns: int
    signal: Signal
    approved: bool
    reason: str


@dataclass(frozen=True, slots=True)
class FillRecord:
    fill: Fill
    strategy: str
    signal_id: str
    route: str


@dataclass(slots=True)
class Results:
    """Everything a replay produced, for the report."""

    bankroll: Micros
    start_ns: int = 0
    end_ns: int = 0
    ticks: int = 0
    items: int = 0
    signals: list[SignalRecord] = field(default_factory=list)
    fills: list[FillRecord] = field(default_factory=list)
    orders: dict[str, OrderStatus] = field(default_factory=dict)
    transitions: list[tuple[int, Transition]] = field(default_factory=list)
    settled: list[MarketSettled] = field(default_factory=list)
    inferred: list[MarketSettled] = field(default_factory=list)
    """Settlements read from the last marks at the end (``settle_decided``)."""
    curves: dict[str, list[EquityPoint]] = field(default_factory=dict)
    ledgers: dict[str, Ledger] = field(default_factory=dict)
    """The ledger of record (``total``) and one per strategy, each from the bankroll."""
    marks: dict[str, Micros] = field(default_factory=dict)


Progress = Callable[[int], object]
"""Told how many ticks were replayed since it was last called."""


class Replay:
    """One replay of one recording under one set of settings."""

    def __init__(self, settings: Settings, markets: Iterable[MarketInfo], config: ReplayConfig):
        self.settings = settings
        self.config = config
        self.clock = SimClock()
        self.timers = Timers(self.clock)
        self.pacer = Pacer(config.speed)
        self.rng = random.Random(config.seed)
        self.catalog: dict[str, MarketInfo] = {}
        self.engine = StrategyEngine(
            settings.strategy, current_upper_bp=settings.feeds.fed.current_upper_bp
        )
        self.guardian = _guardian(settings)
        self.books = self.engine.books  # one copy: every service applies the same messages
        self.claims = MemoryClaims()
        self.venue = PaperVenue(self.books, self.rates, clock=self.clock)
        execution = settings.execution
        self.router = Router(
            self.venue,
            self.claims,
            self.books,
            self.report,
            RouterConfig(
                execution.max_reprices,
                int(execution.maker_ttl_s * NS_PER_S),
                cents(execution.unwind_slippage_cents),
            ),
            clock=self.clock,
        )
        self.results = Results(bankroll=settings.risk.bankroll)
        self._started = False
        self.ledger = self._ledger(TOTAL)
        self._reported = ReportedStates()
        self._last_marks: dict[str, Micros] = {}
        self._dirty = True
        self._scan_at: int | None = None
        self._fading = False
        self.on_markets(markets)

    # --- running ----------------------------------------------------------------------

    async def run(self, recording: Recording, progress: Progress | None = None) -> Results:
        await self.venue.start(self)
        async for tick in _each(recording.ticks):
            await self.step(tick)
            if progress is not None and self.results.ticks % PROGRESS_EVERY == 0:
                progress(PROGRESS_EVERY)
        if progress is not None:
            progress(self.results.ticks % PROGRESS_EVERY)
        await self.finish()
        return self.results

    async def step(self, tick: Tick) -> None:
        """Everything due before ``tick``, then the tick itself."""
        if not self._started:
            self._start(tick.ts_ns)
        await self.pacer.wait_for(tick.ts_ns)
        await self.timers.run_until(tick.ts_ns - 1)
        self.clock.advance(tick.ts_ns)
        self.results.ticks += 1
        self.results.items += len(tick.items)
        await self.on_market_data(tick)
        for settled in tick.settled:
            self.settle(settled)

    async def finish(self) -> None:
        """Timers up to the last tick, resting makers canceled, the last NAV taken."""
        await self.timers.run_until(self.clock.now_ns)
        await self.router.cancel_all("end of replay")
        if self.config.settle_decided:
            self._settle_decided()
        self.sample()
        self.results.end_ns = self.clock.now_ns
        self.results.marks = dict(self.guardian.portfolio.marks)
        await self.venue.close()

    def _settle_decided(self) -> None:
        for market in sorted(self.ledger.holdings):
            mark = self._last_marks.get(market)
            if mark is None or DECIDED_NO < mark < DECIDED_YES:
                continue
            result = Side.YES if mark >= DECIDED_YES else Side.NO
            settled = MarketSettled(market=market, result=result, ts_ns=self.clock.now_ns)
            self.settle(settled)
            self.results.inferred.append(settled)

    def _start(self, ts_ns: int) -> None:
        self._started = True
        self.clock.now_ns = ts_ns
        self.results.start_ns = ts_ns
        for name, ledger in self.results.ledgers.items():
            self.results.curves[name] = [EquityPoint(ts_ns, ledger.nav({}))]
        self.guardian.ctx.rate.last_ns = ts_ns
        self._beat()
        self.sample()
        self._every(NS_PER_S, self._risk_clock)
        self._every(int(self.settings.risk.publish_interval_s * NS_PER_S), self._publish)
        self._every(self.config.equity_interval_ns, self._sample)

    def _every(self, period_ns: int, job: Callable[[], None]) -> None:
        async def tick() -> None:
            job()
            self.timers.at(self.clock.now_ns + period_ns, tick)

        self.timers.at(self.clock.now_ns + period_ns, tick)

    # --- market data ------------------------------------------------------------------

    def on_markets(self, markets: Iterable[MarketInfo]) -> None:
        infos = list(markets)
        for info in infos:
            self.catalog[info.market] = info
            self.books.set_market(info)
            self.guardian.on_market(info)
        self.engine.on_markets(infos)

    def rates(self, market: str) -> tuple[FeeRate, FeeRate]:
        return rates_of(self.catalog.get(market))

    async def on_market_data(self, tick: Tick) -> None:
        now = self.clock.now_ns
        self._transitions(self.guardian.on_market_data(tick.items, now))
        for item in tick.items:
            if isinstance(item, TopOfBook):
                self._remember_mark(item)
        await self.venue.on_market_data(tick.items)
        await self.decide(self.engine.on_market_data(tick.items, now))
        self._arm_scan()

    def _remember_mark(self, top: TopOfBook) -> None:
        """The last mark a market had (risk forgets it when the book empties)."""
        yes = None if top.yes_bid is None else top.yes_bid.price
        no = None if top.no_bid is None else top.no_bid.price
        mark = mark_from_book(yes, no)
        if mark is not None:
            self._last_marks[top.market] = mark

    def settle(self, settled: MarketSettled) -> None:
        yes_won = settled.result is Side.YES
        for ledger in self.results.ledgers.values():
            if ledger is not self.ledger:
                ledger.settle(settled.market, yes_won)
        if self.ledger.settle(settled.market, yes_won) is not None:
            self.guardian.portfolio.settle(settled.market, yes_won)
            self.results.settled.append(settled)
            self._dirty = True
            self.sample()

    # --- strategy and risk ------------------------------------------------------------

    async def decide(self, signals: list[Signal]) -> None:
        """Risk judges the batch, then execution gets the approved intents (as live)."""
        now = self.clock.now_ns
        intents: list[OrderIntent] = []
        for signal in signals:
            decision = self.guardian.decide(signal, now)
            if decision.verdict.quiet:
                continue
            verdict = decision.verdict
            self.results.signals.append(
                SignalRecord(now, signal, verdict.approved, verdict.reason.value)
            )
            if decision.intent is not None:
                intents.append(decision.intent)
            self._dirty = True
        for intent in intents:
            delay = self._latency()
            if delay == 0:
                await self.execute(intent)
            else:
                self.timers.at(now + delay, partial(self.execute, intent))

    def _latency(self) -> int:
        jitter = self.rng.randint(0, self.config.jitter_ns) if self.config.jitter_ns else 0
        return self.config.latency_ns + jitter

    async def execute(self, intent: OrderIntent) -> None:
        await self.router.execute(intent)
        self._arm_fade()

    async def _scan(self) -> None:
        self._scan_at = None
        await self.decide(self.engine.tick(self.clock.now_ns))
        self._arm_scan()

    def _arm_scan(self) -> None:
        due = self.engine.next_due_ns()
        if due is not None and (self._scan_at is None or due < self._scan_at):
            self._scan_at = due
            self.timers.at(due, self._scan)

    def _risk_clock(self) -> None:
        now = self.clock.now_ns
        self._beat()
        self._transitions(self.guardian.clock(now))

    def _beat(self) -> None:
        beat = Heartbeat(
            service="ingest",
            instance=FEED_INSTANCE,
            version="replay",
            role="active",
            ts_ns=self.clock.now_ns,
            info={"kalshi_feed": "fresh"},
        )
        self._transitions(self.guardian.on_heartbeat(beat, self.clock.now_ns))

    def _transitions(self, transitions: list[Transition]) -> None:
        if not transitions:
            return
        now = self.clock.now_ns
        self.results.transitions += [(now, t) for t in transitions]
        self._dirty = True
        self._publish()

    def _publish(self) -> None:
        """Risk's portfolio message, as strategy and execution read it."""
        if not self._dirty:
            return
        self._dirty = False
        state = self.guardian.state(self.clock.now_ns)
        self.engine.on_portfolio(state)
        self.router.risk_halted = state.trading_state is TradingState.HALTED

    # --- execution --------------------------------------------------------------------

    def _arm_fade(self) -> None:
        if self.router.makers and not self._fading:
            self._fading = True
            period = int(self.settings.execution.fade_interval_s * NS_PER_S)
            self.timers.at(self.clock.now_ns + period, self._fade)

    async def _fade(self) -> None:
        self._fading = False
        await self.router.fade()
        self._arm_fade()

    async def on_fill(self, fill: Fill) -> None:
        """The venue's fill: into the ledger of record, risk's view and its strategy's ledger."""
        if not self.ledger.apply(fill):
            return
        self.guardian.on_fill(fill)
        claimed = self.claims.orders.get(fill.client_order_id)
        strategy = claimed.intent.strategy if claimed else "unknown"
        self._ledger(strategy).apply(fill)
        self.results.fills.append(
            FillRecord(
                fill,
                strategy,
                claimed.intent.signal_id if claimed else "",
                claimed.route if claimed else "",
            )
        )
        self._dirty = True
        self.sample()

    async def on_order(self, order: VenueOrder) -> None:
        self.router.on_order(order)
        leg = self.router.legs.get(order.client_order_id)
        if leg is not None:
            await self.report(order, leg, [])

    async def report(self, order: VenueOrder, leg: Leg, hops: list[Hop]) -> None:
        """An order's new state to risk; the same state told twice counts once (as live)."""
        if not self._reported.news(order):
            return
        self.results.orders[order.client_order_id] = order.status
        now = self.clock.now_ns
        self._transitions(self.guardian.on_order(order_event(order, leg, hops, now), now))
        self._dirty = True

    # --- equity -----------------------------------------------------------------------

    def _ledger(self, strategy: str) -> Ledger:
        ledger = self.results.ledgers.get(strategy)
        if ledger is None:
            ledger = self.results.ledgers[strategy] = Ledger(self.results.bankroll)
            start = [EquityPoint(self.results.start_ns, ledger.nav({}))] if self._started else []
            self.results.curves[strategy] = start
        return ledger

    def _sample(self) -> None:
        self.sample()

    def sample(self) -> None:
        """Every ledger's NAV now, at the marks risk holds (the same marks live)."""
        now = self.clock.now_ns
        marks = self.guardian.portfolio.marks
        for name, ledger in self.results.ledgers.items():
            curve = self.results.curves[name]
            point = EquityPoint(now, ledger.nav(marks))
            if curve and curve[-1].ts_ns == now:
                curve[-1] = point
            else:
                curve.append(point)


async def _each(ticks: Iterable[Tick] | AsyncIterable[Tick]) -> AsyncIterator[Tick]:
    if isinstance(ticks, AsyncIterable):
        async for tick in ticks:
            yield tick
    else:
        for tick in ticks:
            yield tick


def _guardian(settings: Settings) -> Guardian:
    limits = settings.risk
    ledger = Ledger(limits.bankroll)
    view = PortfolioView(ledger, day_boundary_utc_hour=limits.day_boundary_utc_hour)
    return Guardian(
        limits, view, TradingStateMachine(limits), maker_strategies=limits.maker_strategies
    )
