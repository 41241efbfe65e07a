"""The gateway's live view of the bus: latest state for the API, events for the browsers.

Followers (plain XREAD, no group: the gateway must never hold messages back
from the trading services) read the portfolio, fills, signals, decisions,
order events, feed states, the catalog and the market data. Each event is
turned into the JSON the browsers get and a line of the live log.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, Final

import numpy as np
import redis.asyncio as aioredis

from services.dashboard.hub import Hub
from shared.bus.follower import LAST, NOW, Follower
from shared.config import Settings
from shared.marketbooks import MarketBooks
from shared.messages import (
    FeedStatus,
    Fill,
    MarketDataBatch,
    MarketInfo,
    MarketSettled,
    Message,
    OrderEvent,
    PortfolioState,
    RiskDecision,
    Signal,
)
from shared.money import format_count, format_usd
from shared.runtime import run_until_stopped
from shared.streams import (
    DECISIONS,
    FILLS,
    MARKET_DATA,
    MARKETS,
    OBSERVATIONS,
    ORDERS,
    PORTFOLIO,
    SIGNALS,
)

LATENCY_WINDOW: Final = 2_000
API_WINDOW_NS: Final = 60 * 10**9
STRATEGY_WINDOW_NS: Final = 600 * 10**9


def portfolio_json(state: PortfolioState) -> dict[str, Any]:
    return {
        "cash_micros": state.cash,
        "nav_micros": state.nav,
        "peak_nav_micros": state.peak_nav,
        "daily_pnl_micros": state.daily_pnl,
        "drawdown_ppm": state.drawdown_ppm,
        "trading_state": state.trading_state.value,
        "recovery_mode": state.recovery_mode,
        "halted_markets": list(state.halted_markets),
        "ts_ns": state.ts_ns,
    }


def positions_json(state: PortfolioState) -> list[dict[str, Any]]:
    return [
        {
            "market": p.market,
            "yes_centi": p.yes,
            "no_centi": p.no,
            "cost_micros": p.cost,
            "mark_micros": p.mark,
        }
        for p in state.positions
    ]


def fill_json(fill: Fill) -> dict[str, Any]:
    return {
        "trade_id": fill.trade_id,
        "ts": fill.ts_ns,
        "market": fill.market,
        "side": fill.side.value,
        "action": fill.action.value,
        "price_micros": fill.price,
        "count_centi": fill.count,
        "fee_micros": fill.fee,
        "is_taker": fill.is_taker,
        "paper": fill.paper,
    }


def signal_json(signal: Signal, decision: str = "pending") -> dict[str, Any]:
    return {
        "signal_id": signal.signal_id,
        "ts": signal.hops[-1].ts_ns if signal.hops else 0,
        "strategy": signal.strategy,
        "kind": signal.kind,
        "event": signal.event,
        "legs": [
            {
                "market": leg.market,
                "side": leg.side.value,
                "action": leg.action.value,
                "price_micros": leg.price,
                "count_centi": leg.count,
            }
            for leg in signal.legs
        ],
        "edge_micros": signal.edge,
        "ev_micros": signal.ev,
        "model_p": signal.model_p,
        "confidence": signal.confidence,
        "kelly_fraction": signal.kelly_fraction,
        "aroc": signal.aroc,
        "score": signal.score,
        "decision": decision,
    }


def order_json(event: OrderEvent) -> dict[str, Any]:
    return {
        "client_order_id": event.client_order_id,
        "market": event.market,
        "status": event.status.value,
        "filled_centi": event.filled,
        "remaining_centi": event.remaining,
        "reason": event.reason,
        "side": event.leg.side.value,
        "action": event.leg.action.value,
        "price_micros": event.leg.price,
        "count_centi": event.leg.count,
    }


class BusView:
    """Latest state and live events, fed by followers; the API reads, the hub pushes."""

    def __init__(self, settings: Settings, redis: aioredis.Redis, hub: Hub) -> None:
        self.settings = settings
        self.hub = hub
        self.started = time.monotonic()
        self.portfolio: PortfolioState | None = None
        self.books = MarketBooks()
        self.markets: dict[str, MarketInfo] = {}
        self.feeds: dict[str, bool] = {}
        self.latencies: deque[int] = deque(maxlen=LATENCY_WINDOW)
        self.api_results: deque[tuple[int, bool]] = deque()
        self.strategies: dict[str, int] = {}
        self._pending: dict[str, Signal] = {}
        prefix, shards = settings.key_prefix, settings.bus.shards

        def follow(spec: Any, handler: Any, start: str = NOW) -> Follower:
            return Follower(redis, prefix, spec, handler, start=start, shards=shards)

        self.followers = [
            follow(PORTFOLIO, self.on_portfolio, LAST),
            follow(FILLS, self.on_fills),
            follow(SIGNALS, self.on_signals),
            follow(DECISIONS, self.on_decisions),
            follow(ORDERS, self.on_orders),
            follow(OBSERVATIONS, self.on_observations),
            follow(MARKETS, self.on_markets, "0"),
            follow(MARKET_DATA, self.on_market_data),
        ]

    async def run(self, stop: asyncio.Event) -> None:
        await run_until_stopped(stop, *(f.run(stop) for f in self.followers))

    # --- handlers -----------------------------------------------------------------------

    def on_portfolio(self, messages: list[Message]) -> None:
        for message in messages:
            if not isinstance(message, PortfolioState):
                continue
            before = self.portfolio.trading_state if self.portfolio else None
            self.portfolio = message
            if before is not None and before is not message.trading_state:
                level = "CRIT" if message.trading_state.value == "halted" else "WARN"
                self.log(level, f"trading state {before.value} -> {message.trading_state.value}")

    def on_fills(self, messages: list[Message]) -> None:
        for message in messages:
            if isinstance(message, Fill):
                self.hub.publish("fill", fill_json(message))
                self.log(
                    "EXEC",
                    f"fill {message.action.value} {format_count(message.count)} "
                    f"{message.side.value.upper()} {message.market} @ "
                    f"${format_usd(message.price)} fee ${format_usd(message.fee)}"
                    f"{' (paper)' if message.paper else ''}",
                )
            elif isinstance(message, MarketSettled):
                self.log("EXEC", f"{message.market} settled {message.result.value.upper()}")

    def on_signals(self, messages: list[Message]) -> None:
        for message in messages:
            if not isinstance(message, Signal):
                continue
            self._pending[message.signal_id] = message
            if len(self._pending) > 10_000:
                self._pending.pop(next(iter(self._pending)))
            self.strategies[message.strategy] = time.time_ns()
            self.hub.publish("signal", signal_json(message))
            self.log(
                "INFO",
                f"signal {message.kind} {message.event} edge "
                f"${format_usd(message.edge)}/set ev ${format_usd(message.ev)}",
            )

    def on_decisions(self, messages: list[Message]) -> None:
        for message in messages:
            if not isinstance(message, RiskDecision):
                continue
            signal = self._pending.pop(message.signal_id, None)
            decision = "approved" if message.approved else f"rejected:{message.reason}"
            if signal is not None:
                self.hub.publish("signal", signal_json(signal, decision))
            if not message.approved:
                self.log(
                    "WARN", f"risk rejected {message.signal_id}: {message.reason} {message.detail}"
                )

    def on_orders(self, messages: list[Message]) -> None:
        now = time.time_ns()
        for message in messages:
            if not isinstance(message, OrderEvent):
                continue
            self.hub.publish("order", order_json(message))
            hops = {hop.name: hop.ts_ns for hop in message.hops}
            if "execution.send" in hops and "ingest.rx" in hops:
                self.latencies.append(hops["execution.send"] - hops["ingest.rx"])
            if message.status.value != "sent":
                self.api_results.append((now, not message.reason.startswith("api_error")))
            leg = message.leg
            self.log(
                "EXEC",
                f"order {message.status.value} {leg.action.value} {format_count(leg.count)} "
                f"{leg.side.value.upper()} {message.market} @ ${format_usd(leg.price)}"
                f"{': ' + message.reason if message.reason else ''}",
            )

    def on_observations(self, messages: list[Message]) -> None:
        for message in messages:
            if isinstance(message, FeedStatus):
                if self.feeds.get(message.feed) is not message.fresh:
                    level = "INFO" if message.fresh else "WARN"
                    self.log(level, f"feed {message.feed} {'fresh' if message.fresh else 'STALE'}")
                self.feeds[message.feed] = message.fresh

    def on_markets(self, messages: list[Message]) -> None:
        for message in messages:
            if isinstance(message, MarketInfo):
                self.markets[message.market] = message
                self.books.set_market(message)

    def on_market_data(self, messages: list[Message]) -> None:
        for message in messages:
            if isinstance(message, MarketDataBatch):
                for item in message.items:
                    self.books.apply(item)

    def log(self, level: str, text: str) -> None:
        self.hub.publish("log", {"ts": time.time_ns(), "level": level, "text": text})

    # --- summaries ----------------------------------------------------------------------

    def tick_to_order_p50_ms(self) -> float | None:
        if not self.latencies:
            return None
        return float(np.percentile(np.fromiter(self.latencies, dtype=np.int64), 50)) / 1e6

    def api_error_rate(self) -> float | None:
        cutoff = time.time_ns() - API_WINDOW_NS
        while self.api_results and self.api_results[0][0] < cutoff:
            self.api_results.popleft()
        if not self.api_results:
            return None
        errors = sum(1 for _, ok in self.api_results if not ok)
        return errors / len(self.api_results)

    def active_strategies(self) -> list[str]:
        cutoff = time.time_ns() - STRATEGY_WINDOW_NS
        return sorted(name for name, seen in self.strategies.items() if seen >= cutoff)

    def book_json(self, market: str) -> dict[str, Any] | None:
        book = self.books.book(market)
        state = self.books.state(market)
        if book is None:
            return None if state is None else _book_dict(market, state.value, [], [])
        yes, no = book.levels()
        return _book_dict(market, "valid", _pairs(yes), _pairs(no))


def _pairs(levels: Iterable[Any]) -> list[list[int]]:
    return [[level.price, level.count] for level in levels]


def _book_dict(
    market: str, state: str, yes: list[list[int]], no: list[list[int]]
) -> dict[str, Any]:
    return {"market": market, "state": state, "yes_bids": yes, "no_bids": no}
