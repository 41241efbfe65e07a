"""Simulated traders: market makers around the hidden fair value, noise takers,
and the injector of mispricings (each logged with its ground truth).

Mispricings are made the way they happen: a market maker quotes from a wrong
fair value for a while. ``bracket_sum`` lowers every bracket of one day so
their asks sum below $1 after fees; ``ladder_inversion`` lifts a higher
threshold above a lower one; ``stale_quote`` moves one market's quotes far
from fair value. A window ends when it expires (``ended_by: "expired"``) or as
soon as someone outside the agents trades against the mispriced quote
(``ended_by: "traded"``, with ``traded_by``): the maker, picked off, quotes
around fair again. The noise taker leaves mispriced markets alone.

The loop runs in fixed 50 ms ticks on deadlines (a slow tick does not slow the
flow down) and spends a budget of book changes per tick, so the flow rate is
what was asked for and the sequence of decisions depends only on the seed and
the number of ticks; with the ``tick`` clock (scenario time moves 50 ms per
tick) timestamps repeat too, so one seed gives byte-identical feeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from services.simulator.engine import OrderError, OrderRequest
from services.simulator.model import (
    BookSide,
    ExchangeEvent,
    Fill,
    MarketStatus,
    OrderStatus,
    SelfTradePrevention,
    TimeInForce,
    ceil_to_grid,
    floor_to_grid,
)
from services.simulator.scenarios import Scenario
from services.simulator.state import SimState
from shared import fees
from shared.money import COUNT_PER_CONTRACT, ONE_DOLLAR, dollars

TICK_S: Final = 0.05
TICK_MS: Final = 50
TICKS_PER_S: Final = 20
MAX_LAG_S: Final = 1.0
"""A loop further behind its deadlines than this starts afresh instead of bursting."""
SPARE_SHARE: Final = 1.0
"""At least this much of a step's duration is left idle after it, for the clients."""
MAKER: Final = "sim-market-maker"
TAKER: Final = "sim-noise-taker"
AGENT_CASH: Final = dollars(1_000_000_000)
HALF_SPREAD: Final = 0.02
WINDOW_S: Final = 20.0
MAX_ACTIONS_PER_TICK: Final = 5_000
KINDS: Final = ("bracket_sum", "ladder_inversion", "stale_quote")


@dataclass
class Window:
    record: dict[str, Any]
    biases: dict[str, float]
    ends_at_ms: int
    exposed: set[tuple[str, BookSide]] = field(default_factory=set)
    """The maker's mispriced quotes someone can profit from: (ticker, side)."""
    traded: tuple[int, str] | None = None
    """(time, account) of the first outside trade against an exposed quote."""


@dataclass
class Agents:
    state: SimState
    scenario: Scenario
    flow_rate: float
    mispricing_rate: float
    seed: int
    window_s: float = WINDOW_S
    rng: random.Random = field(init=False)
    quotes: dict[tuple[str, BookSide], str] = field(default_factory=dict)
    bias: dict[str, float] = field(default_factory=dict)
    windows: list[Window] = field(default_factory=list)
    _budget: float = 0.0
    _ticks: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed + 1)
        exchange = self.state.exchange
        for name in (MAKER, TAKER):
            if name not in exchange.ledger:
                exchange.open_account(name, AGENT_CASH, keep_history=False)
        self.state.observers.append(self._observe)

    @property
    def tickers(self) -> list[str]:
        return [
            t for t, m in self.state.exchange.markets.items() if m.status is MarketStatus.ACTIVE
        ]

    def quote_all(self) -> None:
        for ticker in self.tickers:
            if ticker in self.scenario.fair:
                self.requote(ticker)
        self.state.commit()

    # --- one tick -----------------------------------------------------------------------

    def step(self) -> None:
        if self.state.tick_clock is not None:
            self.state.tick_clock.advance(TICK_MS)
        now = self.state.clock_ms()
        self._ticks += 1
        if self._ticks % TICKS_PER_S == 0:
            self.scenario.update(now)
            self._close_due(now)
        self._end_windows(now)
        if self.rng.random() < self.mispricing_rate * TICK_S:
            self.inject(self.rng.choice(KINDS))
        per_tick = self.flow_rate * TICK_S
        self._budget = min(self._budget + per_tick, max(2 * per_tick, 2.0))  # no catch-up bursts
        tickers = [t for t in self.tickers if t in self.scenario.fair]
        actions = 0
        while self._budget >= 1 and tickers and actions < MAX_ACTIONS_PER_TICK:
            ticker = self.rng.choice(tickers)
            if self.rng.random() < 0.7:
                self.requote(ticker, jitter=True)
            elif ticker not in self.bias:
                self.take(ticker)
            produced = self.state.commit()
            self._budget -= produced  # an action that changed no book is free
            actions += 1
        self.state.commit()

    def requote(self, ticker: str, *, jitter: bool = False) -> None:
        market = self.state.exchange.markets[ticker]
        fair = self.scenario.fair[ticker] + self.bias.get(ticker, 0.0)
        if jitter:
            fair += self.rng.gauss(0, 0.005)
        half = HALF_SPREAD + (self.rng.random() * 0.01 if jitter else 0.0)
        grid = market.price_ranges
        bid = floor_to_grid(_micros(fair - half), grid)
        ask = ceil_to_grid(_micros(fair + half), grid)
        if bid >= ask:
            bid = floor_to_grid(ask - 1, grid)
        for side, price in ((BookSide.BID, bid), (BookSide.ASK, ask)):
            self._quote(ticker, side, price, market.fractional)

    def _quote(self, ticker: str, side: BookSide, price: int, fractional: bool) -> None:
        exchange = self.state.exchange
        size = self.rng.randint(5, 60) * COUNT_PER_CONTRACT
        if fractional and self.rng.random() < 0.3:
            size += self.rng.randint(1, 99)
        order_id = self.quotes.get((ticker, side))
        order = exchange.orders.get(order_id) if order_id else None
        try:
            if order is not None and order.status is OrderStatus.RESTING:
                if order.yes_price != price or self.rng.random() < 0.5:
                    exchange.amend(MAKER, order.order_id, price, order.filled + size)
                return
            placed = exchange.place(
                MAKER,
                OrderRequest(ticker, side, price, size, TimeInForce.GTC, SelfTradePrevention.MAKER),
            )
            self.quotes[ticker, side] = placed.order_id
        except OrderError:
            pass

    def take(self, ticker: str) -> None:
        market = self.state.exchange.markets[ticker]
        side = self.rng.choice((BookSide.BID, BookSide.ASK))
        fair = self.scenario.fair[ticker]
        limit = fair + 0.05 if side is BookSide.BID else fair - 0.05
        price = (floor_to_grid if side is BookSide.BID else ceil_to_grid)(
            _micros(limit), market.price_ranges
        )
        count = self.rng.randint(1, 10) * COUNT_PER_CONTRACT
        with contextlib.suppress(OrderError):
            self.state.exchange.place(
                TAKER, OrderRequest(ticker, side, price, count, TimeInForce.IOC)
            )

    # --- market lifecycle ---------------------------------------------------------------

    def _close_due(self, now: int) -> None:
        self.scenario.close_due(now)
        self.state.commit()

    # --- mispricings --------------------------------------------------------------------

    def inject(self, kind: str) -> dict[str, Any] | None:
        maker = {
            "bracket_sum": self._bracket_sum,
            "ladder_inversion": self._ladder_inversion,
            "stale_quote": self._stale_quote,
        }[kind]
        biases, truth = maker()
        if not biases:
            return None
        now = self.state.clock_ms()
        record = {
            "id": f"mp-{len(self.scenario.mispricings) + 1}",
            "kind": kind,
            "start_ms": now,
            "end_ms": None,
            "ended_by": None,
            "planned_end_ms": now + int(self.window_s * 1000),
            "markets": sorted(biases),
            "fair_values": {t: round(self.scenario.fair[t], 6) for t in biases},
            **truth,
        }
        for ticker, offset in biases.items():
            self.bias[ticker] = self.bias.get(ticker, 0.0) + offset
            self.requote(ticker)
        record["quotes"] = {t: self._quoted(t) for t in biases}
        exposed = {(t, BookSide(side)) for t, side in record.pop("exposed")}
        record["exposed_quotes"] = sorted(f"{t}:{side.value}" for t, side in exposed)
        self.scenario.mispricings.append(record)
        self.windows.append(Window(record, biases, record["planned_end_ms"], exposed))
        self.state.commit()
        return record

    def _quoted(self, ticker: str) -> dict[str, str | None]:
        book = self.state.exchange.book(ticker)
        best_yes, best_no = book.yes.best(), book.no.best()
        return {
            "yes_bid": f"{best_yes / ONE_DOLLAR:.4f}" if best_yes else None,
            "yes_ask": f"{(ONE_DOLLAR - best_no) / ONE_DOLLAR:.4f}" if best_no else None,
        }

    def _observe(self, events: list[ExchangeEvent]) -> None:
        """Notice the first outside trade against a mispriced quote (it ends the window)."""
        if not self.windows:
            return
        fills = [e for e in events if isinstance(e, Fill)]
        for fill in fills:
            if fill.account != MAKER:
                continue
            for window in self.windows:
                if window.traded is None and (fill.ticker, fill.book_side) in window.exposed:
                    other = next(
                        (f.account for f in fills if f.trade_id == fill.trade_id and f is not fill),
                        "",
                    )
                    if other not in (MAKER, TAKER):
                        window.traded = (fill.ts_ms, other)

    def _end_windows(self, now: int) -> None:
        for window in [w for w in self.windows if w.traded or w.ends_at_ms <= now]:
            self.windows.remove(window)
            if window.traded is not None:
                window.record["end_ms"], window.record["traded_by"] = window.traded
                window.record["ended_by"] = "traded"
            else:
                window.record["end_ms"] = now
                window.record["ended_by"] = "expired"
            for ticker, offset in window.biases.items():
                self.bias[ticker] = self.bias.get(ticker, 0.0) - offset
                if abs(self.bias[ticker]) < 1e-9:
                    del self.bias[ticker]
                if self.state.exchange.markets[ticker].status is MarketStatus.ACTIVE:
                    self.requote(ticker)
        self.state.commit()

    def _active_days(self) -> list[Any]:
        exchange = self.state.exchange
        return [
            d
            for d in self.scenario.city_days
            if all(
                exchange.markets[t].status is MarketStatus.ACTIVE
                for t in exchange.events[d.bracket_event].markets
            )
            and not any(t in self.bias for t in exchange.events[d.bracket_event].markets)
        ]

    def _bracket_sum(self) -> tuple[dict[str, float], dict[str, Any]]:
        days = self._active_days()
        if not days:
            return {}, {}
        day = self.rng.choice(days)
        tickers = self.state.exchange.events[day.bracket_event].markets
        fair = {t: self.scenario.fair[t] for t in tickers}
        target_total = 0.90 - len(tickers) * 0.01  # room for fees and the tick rounding
        spread_total = len(tickers) * (HALF_SPREAD + 0.01)
        scale = max(0.0, (target_total - spread_total) / sum(fair.values()))
        biases = {t: fair[t] * scale - fair[t] for t in tickers}
        return biases, {
            "event_ticker": day.bracket_event,
            "description": "asks of a mutually exclusive, exhaustive day sum below $1 after fees",
            "settles_at_f": day.settled_high,
            "exposed": [(t, "ask") for t in tickers],
        }

    def _ladder_inversion(self) -> tuple[dict[str, float], dict[str, Any]]:
        days = [d for d in self.scenario.city_days if d.ladder_event in self.state.exchange.events]
        if not days:
            return {}, {}
        day = self.rng.choice(days)
        ladder = self.state.exchange.events[day.ladder_event].markets
        index = self.rng.randrange(len(ladder) - 1)
        lower, higher = ladder[index], ladder[index + 1]
        if higher in self.bias or lower in self.bias:
            return {}, {}
        gap = self.scenario.fair[lower] - self.scenario.fair[higher]
        return {higher: gap + 2 * HALF_SPREAD + 0.06}, {
            "event_ticker": day.ladder_event,
            "lower_strike_market": lower,
            "higher_strike_market": higher,
            "description": "P(high > higher strike) bid above the ask of P(high > lower strike)",
            "exposed": [(higher, "bid")],
        }

    def _stale_quote(self) -> tuple[dict[str, float], dict[str, Any]]:
        free = [t for t in self.tickers if t in self.scenario.fair and t not in self.bias]
        if not free:
            return {}, {}
        ticker = self.rng.choice(free)
        fair = self.scenario.fair[ticker]
        offset = -0.15 if fair > 0.5 else 0.15
        return {ticker: offset}, {
            "description": "one market quoted far from its fair value",
            "direction": "too_low" if offset < 0 else "too_high",
            "exposed": [(ticker, "ask" if offset < 0 else "bid")],
        }


def _micros(probability: float) -> int:
    return max(1, min(ONE_DOLLAR - 1, round(probability * ONE_DOLLAR)))


def taker_cost_of_asks(asks: dict[str, int], count: int, fee_type: str, multiplier: str) -> int:
    """Micro-dollars to buy ``count`` of each YES ask, fees included (for truth checks)."""
    rate = fees.taker_rate(fee_type, multiplier)
    return sum(
        price * count // COUNT_PER_CONTRACT + fees.fee(price, count, rate)
        for price in asks.values()
    )


async def run_agents(agents: Agents) -> None:
    agents.quote_all()
    await run_ticks(agents.step)


async def run_ticks(step: Callable[[], None]) -> None:
    """Call ``step`` every 50 ms on deadlines, so time spent in a step is not lost.

    An overloaded loop (steps longer than a tick) still leaves the event loop at
    least as much time as the last step took, for the clients' REST calls and
    WebSocket output: the flow then falls short of the rate asked rather than
    starving the feed.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time()
    took = 0.0
    while True:
        deadline += TICK_S
        delay = deadline - loop.time()
        if delay < -MAX_LAG_S:
            deadline, delay = loop.time(), 0.0
        await asyncio.sleep(max(delay, took * SPARE_SHARE))
        started = loop.time()
        step()
        took = loop.time() - started


def lifecycle_step(state: SimState, scenario: Scenario) -> Callable[[], None]:
    """Without agents: move the tick clock on and close and settle markets on time."""
    ticks = 0

    def step() -> None:
        nonlocal ticks
        ticks += 1
        if state.tick_clock is not None:
            state.tick_clock.advance(TICK_MS)
        if ticks % TICKS_PER_S == 0:
            now = state.clock_ms()
            scenario.update(now)
            scenario.close_due(now)
            state.commit()

    return step
