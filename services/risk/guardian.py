"""The guardian without I/O: the portfolio view, the trading state and the checks together.

The service feeds it bus messages and persists what it returns; the backtester
feeds it a replay. Every decision takes the clock as an argument.

An approved signal's orders count as open from the moment of approval (as if
execution had already sent them), so a burst of signals cannot slip past the
limits before execution reports back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from shared.ids import client_order_id, intent_id
from shared.ledger import Ledger
from shared.messages import (
    BookSnapshot,
    BookState,
    BookStatus,
    ControlCommand,
    Fill,
    Heartbeat,
    MarketData,
    MarketInfo,
    OrderEvent,
    OrderIntent,
    OrderLeg,
    OrderStatus,
    PortfolioState,
    Route,
    Signal,
    TopOfBook,
)
from shared.risk import (
    CheckContext,
    PortfolioView,
    RiskLimits,
    TokenBucket,
    TradingStateMachine,
    Transition,
    Verdict,
    check,
    mark_from_book,
)

KALSHI_FEED: Final = "kalshi"
API_ERROR_PREFIX: Final = "api_error"
"""Execution marks order events whose request failed at the API (5xx, timeout) so."""


@dataclass(frozen=True, slots=True)
class Decision:
    """A verdict on one signal and, when approved, the intent to execute."""

    signal: Signal
    verdict: Verdict
    intent: OrderIntent | None


class KalshiFeedWatch:
    """The Kalshi connection is fresh while every live ingest replica says so.

    Ingest heartbeats every second with ``kalshi_feed`` in its info; a replica
    not heard from within ``window_ns`` no longer counts (scaled down or dead:
    its books are already untrusted downstream).
    """

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self._beats: dict[str, tuple[int, bool]] = {}

    def on_heartbeat(self, beat: Heartbeat) -> None:
        if beat.service == "ingest" and beat.role == "active":
            self._beats[beat.instance] = (beat.ts_ns, beat.info.get("kalshi_feed") == "fresh")

    def state(self, now_ns: int) -> tuple[bool, int]:
        """(fresh, newest heartbeat ns); never fresh without a recent heartbeat."""
        live = [(ts, fresh) for ts, fresh in self._beats.values() if now_ns - ts <= self.window_ns]
        if not live:
            newest = max((ts for ts, _ in self._beats.values()), default=0)
            return False, newest
        return all(fresh for _, fresh in live), max(ts for ts, _ in live)


class Guardian:
    """Portfolio view, trading state and checks; decides signals, reports transitions."""

    def __init__(
        self,
        limits: RiskLimits,
        portfolio: PortfolioView,
        trading: TradingStateMachine,
        *,
        maker_strategies: Iterable[str] = (),
        now_ns: int = 0,
    ) -> None:
        self.limits = limits
        self.portfolio = portfolio
        self.trading = trading
        self.maker_strategies = frozenset(maker_strategies)
        self.ctx = CheckContext(
            portfolio=portfolio,
            limits=limits,
            trading=trading,
            rate=TokenBucket.from_limits(limits, now_ns),
            now_ns=now_ns,
        )
        self.feed = KalshiFeedWatch(round(limits.feed_stale_halt_s * 1e9))
        self.approved = 0
        self.rejected = 0

    @classmethod
    def fresh(cls, limits: RiskLimits, now_ns: int = 0) -> Guardian:
        """A guardian with an empty ledger of ``limits.bankroll`` and no halts."""
        ledger = Ledger(limits.bankroll)
        view = PortfolioView(ledger, day_boundary_utc_hour=limits.day_boundary_utc_hour)
        return cls(limits, view, TradingStateMachine(limits), now_ns=now_ns)

    # --- inputs -------------------------------------------------------------------------

    def on_market(self, info: MarketInfo) -> None:
        self.portfolio.on_market(info)

    def on_market_data(self, items: Iterable[MarketData], now_ns: int) -> list[Transition]:
        transitions: list[Transition] = []
        for item in items:
            if isinstance(item, BookSnapshot):
                self.ctx.books[item.market] = BookState.VALID
                yes = item.yes_bids[0].price if item.yes_bids else None
                no = item.no_bids[0].price if item.no_bids else None
                self.portfolio.set_mark(item.market, mark_from_book(yes, no))
            elif isinstance(item, TopOfBook):
                if self.ctx.books.get(item.market) is BookState.VALID:
                    self.portfolio.on_top_of_book(item)
            elif isinstance(item, BookStatus):
                self.ctx.books[item.market] = item.state
                transitions += self.trading.on_book_status(
                    item.market, item.state, now_ns, item.reason
                )
        return transitions

    def on_heartbeat(self, beat: Heartbeat, now_ns: int) -> list[Transition]:
        self.feed.on_heartbeat(beat)
        return self._judge_feed(now_ns)

    def _judge_feed(self, now_ns: int) -> list[Transition]:
        fresh, last_ns = self.feed.state(now_ns)
        self.ctx.feed_fresh = fresh
        return self.trading.on_feed(KALSHI_FEED, fresh, last_ns, now_ns)

    def on_fill(self, fill: Fill) -> bool:
        return self.portfolio.on_fill(fill)

    def on_order(self, event: OrderEvent, now_ns: int) -> list[Transition]:
        self.portfolio.on_order(event)
        if event.status in (OrderStatus.SENT,):
            return []
        return self.trading.on_api_result(not event.reason.startswith(API_ERROR_PREFIX), now_ns)

    def on_command(self, command: ControlCommand, now_ns: int) -> list[Transition]:
        return self.trading.on_command(command, now_ns)

    def clock(self, now_ns: int) -> list[Transition]:
        """Once a second: the day boundary, feed silence, API window, daily loss, drawdown."""
        self.portfolio.roll_day(now_ns)
        transitions = self._judge_feed(now_ns)
        transitions += self.trading.on_clock(now_ns)
        view = self.portfolio
        transitions += self.trading.on_daily_pnl(view.daily_pnl(), view.day_start_nav, now_ns)
        transitions += self.trading.on_drawdown(view.drawdown_ppm(), now_ns)
        self.ctx.forget_expired(now_ns)
        return transitions

    # --- deciding -----------------------------------------------------------------------

    def decide(self, signal: Signal, now_ns: int) -> Decision:
        self.ctx.now_ns = now_ns
        verdict = check(signal, self.ctx)
        if verdict.quiet:
            return Decision(signal, verdict, None)
        self.ctx.record(signal)
        if not verdict.approved:
            self.rejected += 1
            return Decision(signal, verdict, None)
        self.approved += 1
        intent = self.intent(signal)
        for order in intent.orders:
            self.portfolio.on_order(_sent(order, now_ns))
        return Decision(signal, verdict, intent)

    def intent(self, signal: Signal) -> OrderIntent:
        maker = signal.strategy in self.maker_strategies and len(signal.legs) == 1
        return OrderIntent(
            intent_id=intent_id(signal.signal_id),
            signal_id=signal.signal_id,
            strategy=signal.strategy,
            event=signal.event,
            route=Route.MAKER if maker else Route.SNIPER,
            orders=[
                OrderLeg(client_order_id=client_order_id(signal.signal_id, i), leg=leg)
                for i, leg in enumerate(signal.legs)
            ],
            kelly_fraction=signal.kelly_fraction,
            ev=signal.ev,
            aroc=signal.aroc,
            expires_ns=signal.expires_ns,
            hops=list(signal.hops),
        )

    def remember(self, signal_ids: Sequence[tuple[str, int]]) -> None:
        """Signals decided before a restart (id, expires_ns): redeliveries are duplicates."""
        for signal_id, expires_ns in signal_ids:
            self.ctx.seen[signal_id] = expires_ns

    # --- output -------------------------------------------------------------------------

    def state(self, now_ns: int) -> PortfolioState:
        return self.portfolio.state(
            self.trading.system_state,
            self.trading.recovery_mode,
            self.trading.halted_markets,
            now_ns,
        )


def _sent(order: OrderLeg, now_ns: int) -> OrderEvent:
    return OrderEvent(
        client_order_id=order.client_order_id,
        order_id="",
        market=order.leg.market,
        status=OrderStatus.SENT,
        leg=order.leg,
        remaining=order.leg.count,
        ts_ns=now_ns,
    )
