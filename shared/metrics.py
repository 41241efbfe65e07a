"""Prometheus metrics of a service: its ``/metrics`` endpoint and the shared histograms.

Each service listens on ``metrics.base_port + N`` (N fixed per service below),
on ``metrics.host``; a port already taken (a second replica on one host) is
logged and metrics are skipped for that process, never fatal.
"""

from __future__ import annotations

from typing import Final

import structlog
from prometheus_client import Histogram, start_http_server

from shared.config import MetricsSettings

log = structlog.get_logger("metrics")

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

TICK_TO_ORDER: Final = Histogram(
    "khv_tick_to_order_seconds",
    "Book change received by ingest to the order handed to the venue",
    buckets=LATENCY_BUCKETS_S,
)


def serve(settings: MetricsSettings, service: str) -> int | None:
    """Start the /metrics endpoint; returns its port, or None when off or taken."""
    if not settings.enabled or service not in PORT_OFFSETS:
        return None
    port = settings.base_port + PORT_OFFSETS[service]
    try:
        start_http_server(port, addr=settings.host)
    except OSError as exc:
        log.warning("metrics endpoint not started", port=port, error=str(exc))
        return None
    log.info("metrics", url=f"http://{settings.host}:{port}/metrics")
    return port
