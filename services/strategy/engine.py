"""The strategy itself, without I/O: messages in, ranked signals out.

The service feeds it from the bus, the backtester from recorded data; both pass
the clock (``now_ns``), so a replay gives the very same signals. Books come
from the market-data stream and are used only while trusted; nothing is
signalled while the Kalshi connection is stale. Each event is scanned when one
of its books or one of its models' inputs changes: at once when a best bid moved
(``TopOfBook``: that is where arbitrage appears), otherwise at most ``scan_hz``
times a second, changes inside that window scanned when it ends (:meth:`tick`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

import structlog

from services.strategy.models import Observations
from services.strategy.signals import arb_signal, model_signal
from shared.arbitrage import EventTable, Opportunity, scan
from shared.fees import FeeError, taker_rate
from shared.kelly import kelly_multiplier, size_buy
from shared.marketbooks import MarketBooks
from shared.messages import (
    FedOdds,
    FeedStatus,
    MarketData,
    MarketInfo,
    Observation,
    PortfolioState,
    Side,
    Signal,
    TopOfBook,
    VenueBook,
    WeatherObservation,
)
from shared.money import COUNT_PER_CONTRACT, Micros
from shared.strategy_config import StrategySettings

log = structlog.get_logger("strategy")

KALSHI_FEED: Final = "kalshi"
TRADEABLE: Final = frozenset({"active", "open"})
NS_PER_S: Final = 1_000_000_000
OBSERVATION_TYPES: Final = (WeatherObservation, FedOdds, VenueBook, FeedStatus)


def _everything(_event: str) -> bool:
    return True


class StrategyEngine:
    """Books, observations and the catalog of one strategy replica; emits signals."""

    def __init__(
        self,
        settings: StrategySettings,
        *,
        current_upper_bp: int | None = None,
        owns: Callable[[str], bool] = _everything,
    ) -> None:
        self.settings = settings
        self.kelly = settings.kelly()
        self.books = MarketBooks()
        self.observations = Observations(settings, current_upper_bp)
        self.catalog: dict[str, MarketInfo] = {}
        self.owns = owns
        self.bankroll: Micros = settings.bankroll
        self.recovery_mode = False
        self.kalshi_fresh = True
        self.interval_ns = int(NS_PER_S / settings.scan_hz)
        self.ttl_ns = int(settings.signal_ttl_s * NS_PER_S)
        self.cooldown_ns = int(settings.cooldown_s * NS_PER_S)
        self._table: EventTable | None = None
        self._event_index: dict[str, int] = {}
        self._events_of_key: dict[str, set[str]] = {}
        self._last_scan: dict[str, int] = {}
        self._pending: set[str] = set()
        self._recent: dict[tuple[object, ...], int] = {}
        self.scans = 0
        self.emitted = 0

    # --- inputs -------------------------------------------------------------------------

    def on_markets(self, infos: Iterable[MarketInfo]) -> None:
        for info in infos:
            if self.catalog.get(info.market) == info:
                continue
            self.catalog[info.market] = info
            self.books.set_market(info)
            self._table = None

    def set_owner(self, owns: Callable[[str], bool]) -> None:
        """The events this replica scans changed (shards moved)."""
        self.owns = owns
        self._table = None

    def on_portfolio(self, state: PortfolioState) -> None:
        if state.nav > 0:
            self.bankroll = state.nav
        self.recovery_mode = state.recovery_mode

    def on_market_data(self, items: Iterable[MarketData], now_ns: int) -> list[Signal]:
        changed: set[str] = set()
        top_moved: set[str] = set()
        table = self._table
        for item in items:
            if isinstance(item, TopOfBook):
                top_moved.add(item.event)
            market = self.books.apply(item)
            if market is None:
                continue
            changed.add(item.event)
            if table is not None:
                table.update(market, self.books.book(market))
        return self._request(changed, now_ns, urgent=changed & top_moved)

    def remember(self, observation: Observation) -> set[str]:
        """Take in an observation without scanning (history); returns the keys it moved."""
        if isinstance(observation, FeedStatus) and observation.feed == KALSHI_FEED:
            self.kalshi_fresh = observation.fresh
            return set()
        return self.observations.apply(observation)

    def on_observation(self, observation: Observation, now_ns: int) -> list[Signal]:
        keys = self.remember(observation)
        if not keys:
            return []
        self._ensure_table()
        events: set[str] = set()
        for key in keys:
            events |= self._events_of_key.get(key, set())
        return self._request(events, now_ns)

    def tick(self, now_ns: int) -> list[Signal]:
        """Scan the events whose throttle window has ended since they changed."""
        due = {e for e in self._pending if now_ns >= self._last_scan.get(e, 0) + self.interval_ns}
        self._pending -= due
        return self._scan(due, now_ns)

    @property
    def pending(self) -> frozenset[str]:
        """Events changed inside their throttle window, waiting for :meth:`tick`."""
        return frozenset(self._pending)

    def next_due_ns(self) -> int | None:
        """When the earliest throttled scan comes due (None: nothing waits)."""
        if not self._pending:
            return None
        return min(self._last_scan.get(e, 0) for e in self._pending) + self.interval_ns

    # --- scanning -----------------------------------------------------------------------

    def _request(
        self, events: set[str], now_ns: int, urgent: frozenset[str] | set[str] = frozenset()
    ) -> list[Signal]:
        due: set[str] = set()
        for event in events:
            if event in urgent or now_ns >= self._last_scan.get(event, 0) + self.interval_ns:
                due.add(event)
                self._pending.discard(event)
            else:
                self._pending.add(event)
        return self._scan(due, now_ns)

    def _scan(self, events: set[str], now_ns: int) -> list[Signal]:
        if not events or not self.kalshi_fresh:
            return []
        table = self._ensure_table()
        owned = sorted(e for e in events if self.owns(e))  # same order in every process
        if not owned:
            return []
        self.scans += 1
        for event in owned:
            self._last_scan[event] = now_ns
        signals = self._model_signals(owned, now_ns)
        if self.settings.arbitrage:
            signals += self._arb_signals(table, owned, now_ns)
        fresh = [s for s in signals if self._not_recent(s, now_ns)]
        fresh.sort(key=lambda s: s.score, reverse=True)
        self.emitted += len(fresh)
        return fresh

    def _not_recent(self, signal: Signal, now_ns: int) -> bool:
        """The same legs are not signalled again while the last one may be in flight."""
        key = (signal.kind, *((leg.market, leg.side) for leg in signal.legs))
        last = self._recent.get(key)
        if last is not None and now_ns < last + self.cooldown_ns:
            return False
        self._recent[key] = now_ns
        return True

    def _arb_signals(self, table: EventTable, events: list[str], now_ns: int) -> list[Signal]:
        index = self._event_index
        wanted = [index[e] for e in events if e in index]
        if not wanted:
            return []
        budget = int(self.bankroll * kelly_multiplier(self.recovery_mode, self.kelly))
        found = scan(table, events=wanted, budget=budget)
        return [
            arb_signal(o, self._versions(o), self.bankroll, now_ns, self.ttl_ns)
            for o in found
            if self._clears_min_edge(o)
        ]

    def _clears_min_edge(self, opportunity: Opportunity) -> bool:
        payout_per_set = opportunity.payout * COUNT_PER_CONTRACT // opportunity.sets
        return opportunity.edge_per_set >= self.kelly.min_edge * payout_per_set

    def _versions(self, opportunity: Opportunity) -> list[str]:
        return [f"{leg.market}@{self.books.seq(leg.market)}" for leg in opportunity.legs]

    def _model_signals(self, events: list[str], now_ns: int) -> list[Signal]:
        if not self.settings.models:
            return []
        wanted = set(events)
        signals: list[Signal] = []
        for info in self.catalog.values():
            if info.event in wanted and info.status in TRADEABLE:
                signal = self._model_signal(info, now_ns)
                if signal is not None:
                    signals.append(signal)
        return signals

    def _model_signal(self, info: MarketInfo, now_ns: int) -> Signal | None:
        book = self.books.book(info.market)
        if book is None:
            return None
        valuation = self.observations.value(info, now_ns)
        if valuation is None:
            return None
        try:
            rate = taker_rate(info.fee_type, info.fee_multiplier)
        except FeeError as exc:
            log.warning("market skipped: unknown fee schedule", market=info.market, error=str(exc))
            return None
        for side in (Side.YES, Side.NO):
            p = valuation.fair.p_yes if side is Side.YES else valuation.fair.p_no
            size = size_buy(
                p,
                book.asks(side),
                rate,
                self.bankroll,
                recovery_mode=self.recovery_mode,
                config=self.kelly,
            )
            if size.count > 0:
                inputs = [f"{info.market}@{self.books.seq(info.market)}"]
                return model_signal(info, valuation, side, size, inputs, now_ns, self.ttl_ns)
        return None

    # --- the table ----------------------------------------------------------------------

    def _ensure_table(self) -> EventTable:
        if self._table is None:
            infos = [
                info
                for info in self.catalog.values()
                if info.status in TRADEABLE and self.owns(info.event)
            ]
            self._table = EventTable.build(infos)
            self._table.refresh(self.books.trusted())
            self._event_index = {event: i for i, event in enumerate(self._table.events)}
            self._events_of_key = _index(infos)
        return self._table


def _index(infos: Iterable[MarketInfo]) -> dict[str, set[str]]:
    """Events by the keys observations name: series tickers and market tickers."""
    index: dict[str, set[str]] = {}
    for info in infos:
        index.setdefault(info.series, set()).add(info.event)
        index.setdefault(info.market, set()).add(info.event)
    return index
