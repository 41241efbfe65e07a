"""shared/metrics.py: the /metrics endpoint, the Kalshi client collector, and the names that
the Grafana dashboard, the alert rules and docs/metrics.md use all being real.

prometheus_client's default registry is process-wide: tests read deltas, or use
label values of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import re
import shutil
import socket
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from shared import metrics
from shared.config import MetricsSettings, load_settings
from shared.kalshi.ratelimit import RateLimiter
from shared.kalshi.rest import KalshiRest
from shared.runtime import ServiceContext, _run
from tests.conftest import redis_url

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "kalshi-bot.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DOC = ROOT / "docs" / "metrics.md"
KHV_NAME = re.compile(r"\bkhv_[a-z0-9_]+")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body: bytes = response.read()
        return body.decode()


@pytest.fixture
def endpoints() -> Iterator[None]:
    yield
    metrics.shutdown()


def settings_for(service: str, port: int) -> MetricsSettings:
    return MetricsSettings(host="127.0.0.1", base_port=port - metrics.PORT_OFFSETS[service])


def exported_names() -> set[str]:
    """Every sample name the registry can expose, whether or not it has samples yet."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
    names: set[str] = set()
    for family in REGISTRY.collect():
        for suffix in suffixes.get(family.type, [""]):
            names.add(family.name + suffix)
        names.update(sample.name for sample in family.samples)
    return names


def test_serve_exposes_the_metric_families_over_http(endpoints):
    port = free_port()
    assert metrics.serve(settings_for("ingest", port), "ingest") == port
    body = scrape(port)
    for name in (
        "khv_tick_to_order_seconds_bucket",
        "khv_bus_published_total",
        "khv_bus_consumed_total",
        "khv_bus_handler_errors_total",
        "khv_bus_consumer_lag",
        "khv_bus_pending",
        "khv_bus_hop_latency_seconds",
        "khv_trading_state",
        "khv_portfolio_nav_dollars",
        "khv_execution_orders_total",
        "khv_kalshi_api_errors_total",
        "khv_kalshi_rate_limit_wait_seconds_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ):
        assert name in body, name


def test_serve_is_off_when_disabled_and_a_taken_port_is_not_fatal(endpoints):
    disabled = MetricsSettings(enabled=False, base_port=free_port())
    assert metrics.serve(disabled, "risk") is None
    assert metrics.serve(MetricsSettings(), "backtest") is None  # no port of its own
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert metrics.serve(settings_for("risk", port), "risk") is None


async def test_every_service_serves_its_metrics_through_the_runtime(endpoints, key_prefix):
    port = free_port()
    settings = load_settings(
        redis_url=redis_url(),
        key_prefix=key_prefix,
        metrics={"host": "127.0.0.1", "base_port": port - metrics.PORT_OFFSETS["dashboard"]},
    )
    instance = f"test-{uuid.uuid4().hex[:8]}"
    scraped: list[str] = []

    async def body(ctx: ServiceContext) -> None:
        # Stop between heartbeats: a cancel landing inside a heartbeat's XADD can be
        # swallowed by redis-py, and send_heartbeats does not check for that yet.
        while ctx.publisher.published == 0:
            await asyncio.sleep(0.01)
        scraped.append(await asyncio.to_thread(scrape, port))
        ctx.stop.set()

    args = argparse.Namespace(instance=instance)
    await _run("dashboard", args, settings, body, "free")
    assert len(scraped) == 1
    assert f'khv_service_info{{instance_name="{instance}",service="dashboard"' in scraped[0]
    active = REGISTRY.get_sample_value(
        "khv_service_role", {"service": "dashboard", "role": "active"}
    )
    assert active == 1.0


def test_kalshi_clients_are_exported_by_client_and_forgotten_when_gone():
    client = f"test-{uuid.uuid4().hex[:8]}"
    rest = KalshiRest("http://127.0.0.1:9", limiter=RateLimiter.for_tier("basic"))
    metrics.KALSHI.watch_rest(rest, client)
    rest.metrics.requests += 7
    rest.metrics.retries += 2
    rest.metrics.errors_by_status[429] += 2
    rest.metrics.errors_by_status[503] += 1
    assert rest.limiter is not None
    rest.limiter.waits += 3
    rest.limiter.waited_s += 1.5

    def value(name: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"client": client, **labels})

    assert value("khv_kalshi_requests_total") == 7
    assert value("khv_kalshi_retries_total") == 2
    assert value("khv_kalshi_api_errors_total", status="429") == 2
    assert value("khv_kalshi_api_errors_total", status="503") == 1
    assert value("khv_kalshi_rate_limit_waits_total") == 3
    assert value("khv_kalshi_rate_limit_wait_seconds_total") == 1.5

    twin = KalshiRest("http://127.0.0.1:9")  # a second client of one name: summed
    metrics.KALSHI.watch_rest(twin, client)
    twin.metrics.requests += 1
    assert value("khv_kalshi_requests_total") == 8

    del rest, twin
    gc.collect()
    assert value("khv_kalshi_requests_total") is None


def test_counter_from_a_running_total():
    counter = metrics.SCANS
    before = REGISTRY.get_sample_value("khv_strategy_scans_total") or 0.0
    follow = metrics.CounterFrom(counter)
    for total in (3, 3, 10):
        follow.update(total)
    assert REGISTRY.get_sample_value("khv_strategy_scans_total") == before + 10


def test_dashboard_and_alerts_use_only_metrics_that_exist():
    known = exported_names() | {"khv_"}  # ``khv_`` alone would be a regex prefix
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    rules = yaml.safe_load(ALERTS.read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    exprs += [rule["expr"] for rule in alerts]
    used = {name for expr in exprs for name in KHV_NAME.findall(expr)}
    assert used, "no khv_ metric on the dashboard"
    assert used - known == set()
    assert {rule["alert"] for rule in alerts} >= {
        "TradingHalted",
        "KalshiFeedStale",
        "ConsumerLagGrowing",
        "HandlerErrors",
        "KalshiApiErrorRate",
    }
    assert all(rule["annotations"]["summary"] for rule in alerts)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_docs_describe_every_family():
    documented = set(KHV_NAME.findall(DOC.read_text()))
    families = {family.name for family in REGISTRY.collect() if family.name.startswith("khv_")}
    families = {
        f"{name}_total" if f"{name}_total" in exported_names() else name for name in families
    }
    assert families - documented == set()


def test_alert_rules_pass_their_unit_tests():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Prometheus) is not installed here")
    result = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=ALERTS.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
