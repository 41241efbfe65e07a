"""Prometheus metrics of every service: each family defined once here, and the /metrics endpoint.

Each service listens on ``metrics.base_port + N`` (N fixed per service below),
on ``metrics.host``; a port already taken (a second replica on one host) is
logged and metrics are skipped for that process, never fatal. ``shared.runtime``
starts the endpoint for every service; docs/metrics.md lists every family.

Labels are bounded: service, stream (the stream's name, shards summed), group,
hop, reason, status, strategy, kind, state, feed, client, liquidity, venue. No
metric carries a market, an order or a signal id.
Money gauges are in dollars as floats, for display only: the ledger itself is
integer micro-dollars (shared/money.py) and never reads these.

The default registry is process-wide, and it also carries prometheus_client's
process collector (``process_resident_memory_bytes``, ``process_cpu_seconds_total``,
open fds) and the Python GC and platform collectors.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import (
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from shared.config import MetricsSettings

if TYPE_CHECKING:
    from shared.kalshi.rest import KalshiRest
    from shared.kalshi.ws import KalshiWebSocket

log = structlog.get_logger("metrics")
disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series

PORT_OFFSETS: Final = {
    "ingest": 1,
    "strategy": 2,
    "risk": 3,
    "execution": 4,
    "dashboard": 5,
    "simulator": 6,
}
LATENCY_BUCKETS_S: Final = (
    0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip
HOP_BUCKETS_S: Final = (*LATENCY_BUCKETS_S, 2.5, 5.0, 15.0, 60.0)
"""A hop includes the time a message waited in its stream: lag shows up here too."""
SAMPLE_EVERY_S: Final = 5.0
"""How often a consumer samples its group's lag and pending entries (XINFO GROUPS)."""

TICK_TO_ORDER: Final = Histogram(
    "khv_tick_to_order_seconds",
    "Book change received by ingest to the order handed to the venue",
    buckets=LATENCY_BUCKETS_S,
)

# --- every service (shared/runtime.py) ---------------------------------------------------

SERVICE_INFO: Final = Gauge(
    "khv_service_info",
    "Always 1: the service, its instance name on the bus (--instance) and its version",
    ["service", "instance_name", "version"],
)
SERVICE_ROLE: Final = Gauge(
    "khv_service_role",
    "1 for the role this instance is in (starting, active, standby), 0 for the others",
    ["service", "role"],
)
ROLES: Final = ("starting", "active", "standby")

# --- the bus (shared/bus) ------------------------------------------------------------------

PUBLISHED: Final = Counter(
    "khv_bus_published", "Messages appended to a stream", ["service", "stream"]
)
OBSERVER_DROPPED: Final = Counter(
    "khv_bus_observer_dropped",
    "Messages an observer publisher dropped (queue full or Redis down)",
    ["service", "stream"],
)
CONSUMED: Final = Counter(
    "khv_bus_consumed", "Messages handled and acked by a consumer group", ["stream", "group"]
)
HANDLER_ERRORS: Final = Counter(
    "khv_bus_handler_errors",
    "Handler failures (a message is dead-lettered after bus.max_failures of them)",
    ["stream", "group"],
)
HANDLER_RETRIES: Final = Counter(
    "khv_bus_handler_retries",
    "Handler retries because a dependency (Redis, Postgres) was unavailable",
    ["stream", "group"],
)
DEAD_LETTERED: Final = Counter(
    "khv_bus_dead_lettered",
    "Messages sent to the dead-letter stream (undecodable or failing)",
    ["stream", "group"],
)
RECLAIMED: Final = Counter(
    "khv_bus_reclaimed",
    "Entries taken over from a dead consumer of the group (XAUTOCLAIM)",
    ["stream", "group"],
)
HANDLER_SECONDS: Final = Histogram(
    "khv_bus_handler_seconds",
    "Time a handler took for one batch",
    ["stream", "group"],
    buckets=HOP_BUCKETS_S,
)
HOP_LATENCY: Final = Histogram(
    "khv_bus_hop_latency_seconds",
    "Previous hop's publish to this consumer's read, per hop pair (e.g. ingest->strategy)",
    ["hop"],
    buckets=HOP_BUCKETS_S,
)
CONSUMER_LAG: Final = Gauge(
    "khv_bus_consumer_lag",
    "Entries in the stream not yet delivered to the group (XINFO GROUPS lag)",
    ["stream", "group"],
)
PENDING: Final = Gauge(
    "khv_bus_pending",
    "Entries delivered to the group and not yet acked (XINFO GROUPS pending)",
    ["stream", "group"],
)

# --- ingest ---------------------------------------------------------------------------------

BOOKS: Final = Gauge(
    "khv_ingest_books",
    "Books followed, by state: valid, invalid, stale (valid but the Kalshi feed is stale)",
    ["state"],
)
MARKETS_FOLLOWED: Final = Gauge("khv_ingest_markets", "Markets this ingest replica follows")
DELTAS: Final = Counter("khv_ingest_deltas", "Order-book deltas received from Kalshi")
GAPS: Final = Counter(
    "khv_ingest_gaps", "Sequence faults (gap, duplicate, reorder): books invalidated"
)
MD_ITEMS: Final = Counter(
    "khv_ingest_md_items_published", "Market-data items (snapshots, deltas, statuses) published"
)
TRADES: Final = Counter("khv_ingest_trades_published", "Exchange trades published")
FEED_FRESH: Final = Gauge("khv_feed_fresh", "1 while a feed is fresh, 0 once stale", ["feed"])
FEED_SILENCE: Final = Gauge(
    "khv_feed_silence_seconds", "Seconds since a feed's last message, pings included", ["feed"]
)

# --- strategy -------------------------------------------------------------------------------

SIGNALS: Final = Counter(
    "khv_strategy_signals", "Signals emitted, by strategy and kind", ["strategy", "kind"]
)
SCANS: Final = Counter("khv_strategy_scans", "Arbitrage scans run")
BOOKS_TRUSTED: Final = Gauge("khv_strategy_books_trusted", "Books strategy holds as VALID")

# --- risk -------------------------------------------------------------------------------------

DECISIONS: Final = Counter(
    "khv_risk_decisions", "Risk decisions by reason code (approved is one)", ["reason"]
)
TRADING_STATE: Final = Gauge(
    "khv_trading_state", "System trading state: 0 active, 1 reducing, 2 halted"
)
TRADING_STATE_CODES: Final = {"active": 0, "reducing": 1, "halted": 2}
HALT: Final = Gauge("khv_risk_halt", "1 while a halt reason is in force, else 0", ["reason"])
HALTED_MARKETS: Final = Gauge("khv_risk_halted_markets", "Markets halted on their own")
RECOVERY_MODE: Final = Gauge("khv_risk_recovery_mode", "1 while in drawdown recovery mode")
NAV: Final = Gauge("khv_portfolio_nav_dollars", "Net asset value (display; ledger is integer)")
CASH: Final = Gauge("khv_portfolio_cash_dollars", "Cash (display; ledger is integer)")
PEAK_NAV: Final = Gauge("khv_portfolio_peak_nav_dollars", "Peak NAV (display)")
DAILY_PNL: Final = Gauge("khv_portfolio_daily_pnl_dollars", "P&L since the day boundary")
DRAWDOWN: Final = Gauge("khv_portfolio_drawdown_ratio", "Drawdown from peak NAV, 0..1")
EXPOSURE: Final = Gauge(
    "khv_portfolio_exposure_dollars", "What can be lost: held cost plus open buy notional"
)
POSITIONS: Final = Gauge("khv_portfolio_positions", "Markets with a position")
OPEN_ORDERS: Final = Gauge("khv_risk_open_orders", "Our open orders as risk sees them")

# --- execution ------------------------------------------------------------------------------

ORDERS: Final = Counter(
    "khv_execution_orders", "Order state changes reported, by new status", ["status"]
)
FILLS: Final = Counter(
    "khv_execution_fills", "Fills recorded in the ledger", ["liquidity", "venue"]
)
FILLED_CONTRACTS: Final = Counter(
    "khv_execution_filled_contracts", "Contracts filled", ["liquidity", "venue"]
)
FEES: Final = Counter("khv_execution_fees_dollars", "Exchange fees paid (display)", ["venue"])
EXECUTION_HALTED: Final = Gauge("khv_execution_halted", "1 while execution sends no new orders")
MAKERS: Final = Gauge("khv_execution_makers", "Maker orders execution is working")
VENUE_READY: Final = Gauge("khv_execution_venue_ready", "1 when the venue accepts orders")


def dollars(micros: int) -> float:
    """Micro-dollars as a float for a gauge: display only."""
    return micros / 1_000_000


class CounterFrom:
    """Feeds a Prometheus counter from a running total kept elsewhere (``feed.deltas``)."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.last = 0

    def update(self, total: int) -> None:
        if total > self.last:
            self.counter.inc(total - self.last)
        self.last = total


# --- the Kalshi client ------------------------------------------------------------------------


_Family = CounterMetricFamily | GaugeMetricFamily


class KalshiCollector:
    """Exports the counters the Kalshi clients keep (``RestMetrics``, the rate limiter, the
    WebSocket), labelled by ``client`` (who uses it: ``ingest``, ``execution``, ...).

    Clients are held weakly and read at each scrape; clients of one name are summed.
    """

    def __init__(self) -> None:
        self._rest: weakref.WeakKeyDictionary[KalshiRest, str] = weakref.WeakKeyDictionary()
        self._ws: weakref.WeakKeyDictionary[KalshiWebSocket, str] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def watch_rest(self, rest: KalshiRest, client: str) -> None:
        with self._lock:
            self._rest[rest] = client

    def watch_ws(self, ws: KalshiWebSocket, client: str) -> None:
        with self._lock:
            self._ws[ws] = client

    def describe(self) -> Iterable[Metric]:
        return [family for family, _ in self._families().values()]

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            rests, sockets = list(self._rest.items()), list(self._ws.items())
        families = self._families()

        def add(name: str, value: float, *labels: str) -> None:
            values = families[name][1]
            values[labels] = values.get(labels, 0.0) + value

        for rest, client in rests:
            m = rest.metrics
            add("requests", m.requests, client)
            add("retries", m.retries, client)
            add("transport_errors", m.transport_errors, client)
            add("order_state_unknown", m.order_state_unknown, client)
            for status, count in m.errors_by_status.items():
                add("api_errors", count, client, str(status))
            if rest.limiter is not None:
                add("rate_limit_waits", rest.limiter.waits, client)
                add("rate_limit_wait_seconds", rest.limiter.waited_s, client)
        for ws, client in sockets:
            add("ws_connections", ws.connections, client)
            add("ws_connect_failures", ws.connect_failures, client)
            add("ws_handler_errors", ws.handler_errors, client)
            add("ws_connected", 1.0 if ws.connected else 0.0, client)
        out: list[Metric] = []
        for family, values in families.values():
            for labels, value in sorted(values.items()):
                family.add_metric(list(labels), value)
            out.append(family)
        return out

    @staticmethod
    def _families() -> dict[str, tuple[_Family, dict[tuple[str, ...], float]]]:
        families: dict[str, tuple[_Family, dict[tuple[str, ...], float]]] = {}
        for key, doc in KALSHI_FAMILIES.items():
            name = f"khv_kalshi_{key}"
            labels = ["client", "status"] if key == "api_errors" else ["client"]
            kind = GaugeMetricFamily if key == "ws_connected" else CounterMetricFamily
            family = kind(name, doc, labels=labels)
            families[key] = (family, {})
        return families


KALSHI_FAMILIES: Final = {
    "requests": "REST requests sent (each attempt)",
    "retries": "REST attempts retried (5xx, 429, transport error)",
    "transport_errors": "REST attempts that got no HTTP answer",
    "order_state_unknown": "Order calls whose outcome is unknown (resolved by lookup)",
    "api_errors": "REST answers >= 400, by HTTP status",
    "rate_limit_waits": "Requests that waited for client-side rate-limit tokens",
    "rate_limit_wait_seconds": "Seconds spent waiting for rate-limit tokens",
    "ws_connections": "WebSocket connections opened",
    "ws_connect_failures": "WebSocket connection attempts that failed",
    "ws_handler_errors": "WebSocket messages whose handler raised",
    "ws_connected": "1 while the WebSocket is connected (a gauge)",
}
"""``khv_kalshi_<key>``: counters with a ``client`` label (``api_errors`` also ``status``)."""


KALSHI: Final = KalshiCollector()
REGISTRY.register(KALSHI)


# --- the endpoint -------------------------------------------------------------------------------

_servers: list[tuple[WSGIServer, threading.Thread]] = []


def serve(settings: MetricsSettings, service: str) -> int | None:
    """Start the /metrics endpoint; returns its port, or None when off or taken."""
    if not settings.enabled or service not in PORT_OFFSETS:
        return None
    return serve_on(settings.host, settings.base_port + PORT_OFFSETS[service])


def serve_on(host: str, port: int) -> int | None:
    """The /metrics endpoint on one address (a daemon thread); None if the port is taken."""
    try:
        _servers.append(start_http_server(port, addr=host))
    except OSError as exc:
        log.warning("metrics endpoint not started", port=port, error=str(exc))
        return None
    log.info("metrics", url=f"http://{host}:{port}/metrics")
    return port


def shutdown() -> None:
    """Stop every endpoint this process started (tests; a service just exits)."""
    while _servers:
        server, thread = _servers.pop()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
