"""The gateway over real Redis and Postgres: the API, the controls and their token, the
live WebSocket, and a slow browser dropped to snapshots."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import psycopg
import pytest
import redis.asyncio as aioredis
from fastapi.testclient import TestClient

from services.dashboard.app import create_app
from services.dashboard.hub import QUEUE_SIZE, Hub
from shared.bus.codec import Codec
from shared.config import Settings, load_settings
from shared.messages import (
    Action,
    Command,
    ControlCommand,
    Fill,
    PortfolioState,
    Position,
    Side,
    TradingState,
)
from shared.money import dollars
from shared.streams import CONTROL, FILLS, PORTFOLIO, stream_key
from tests.conftest import redis_url

TOKEN = "s3cret-dashboard-token"


def portfolio(state: TradingState = TradingState.ACTIVE) -> PortfolioState:
    return PortfolioState(
        cash=dollars(9_000),
        nav=dollars(10_050),
        peak_nav=dollars(10_100),
        daily_pnl=dollars(50),
        drawdown_ppm=4_951,
        trading_state=state,
        recovery_mode=False,
        positions=[Position(market="KXA-1-T1", yes=500, no=0, cost=dollars(2), mark=450_000)],
        ts_ns=time.time_ns(),
    )


def a_fill() -> Fill:
    return Fill(
        trade_id="t-1",
        order_id="o-1",
        client_order_id="c-1",
        market="KXA-1-T1",
        side=Side.YES,
        action=Action.BUY,
        price=400_000,
        count=500,
        fee=20_000,
        is_taker=True,
        ts_ns=time.time_ns(),
        paper=True,
    )


def publish(settings: Settings, spec, message) -> None:
    async def go() -> None:
        from shared.bus.publisher import Publisher

        client = aioredis.Redis.from_url(redis_url())
        try:
            await Publisher(client, settings.key_prefix, shards=1).publish(spec, message)
        finally:
            await client.aclose()

    asyncio.run(go())


def control_messages(settings: Settings) -> list[ControlCommand]:
    async def go() -> list[ControlCommand]:
        client = aioredis.Redis.from_url(redis_url())
        try:
            entries = await client.xrange(stream_key(settings.key_prefix, CONTROL))
        finally:
            await client.aclose()
        codec = Codec(CONTROL)
        return [codec.decode_entry(fields) for _, fields in entries]  # type: ignore[misc]

    return asyncio.run(go())


@pytest.fixture
def settings(key_prefix, database_url) -> Settings:
    return load_settings(
        redis_url=redis_url(),
        database_url=database_url,
        key_prefix=key_prefix,
        bus={"shards": 1},
        dashboard_token=TOKEN,
    )


@pytest.fixture
def client(settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, aioredis.Redis.from_url(redis_url()))) as client:
        wait_for(lambda: client.get("/api/orders").status_code == 200)  # schema migrated
        yield client


def wait_for(check, within_s: float = 5.0):
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("not within the time")


def test_health_status_and_openapi(client: TestClient):
    health = client.get("/api/health")
    assert health.status_code == 200 and health.json()["checks"] == {
        "redis": True,
        "postgres": True,
    }
    status = client.get("/api/status").json()
    assert status["mode"] == "paper" and status["controls_enabled"] is True
    assert status["feeds"]["kalshi"] == "starting"
    spec = client.get("/openapi.json").json()
    for path in ("/api/portfolio", "/api/fills", "/api/control/{action}", "/api/audit"):
        assert path in spec["paths"]


def test_health_is_503_when_postgres_is_away(settings: Settings):
    away = settings.model_copy(update={"database_url": "postgresql://nobody@127.0.0.1:1/none"})
    with TestClient(create_app(away, aioredis.Redis.from_url(redis_url()))) as client:
        response = client.get("/api/health")
    assert response.status_code == 503 and response.json()["checks"]["postgres"] is False


def test_portfolio_and_positions_follow_the_bus_with_money_in_micros(client, settings):
    assert client.get("/api/portfolio").status_code == 404
    publish(settings, PORTFOLIO, portfolio())
    body = wait_for(
        lambda: (
            client.get("/api/portfolio").json()
            if client.get("/api/portfolio").status_code == 200
            else None
        )
    )
    assert body["nav_micros"] == 10_050_000_000 and body["trading_state"] == "active"
    assert client.get("/api/positions").json()["positions"] == [
        {
            "market": "KXA-1-T1",
            "yes_centi": 500,
            "no_centi": 0,
            "cost_micros": 2_000_000,
            "mark_micros": 450_000,
        }
    ]


def test_controls_need_the_token_and_are_sent_and_audited(client, settings, database_url):
    assert client.post("/api/control/kill").status_code == 401
    wrong = client.post("/api/control/kill", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    ok = client.post(
        "/api/control/kill",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={"reason": "drill"},
    )
    assert ok.status_code == 202
    (command,) = control_messages(settings)
    assert command.command is Command.KILL and command.reason == "drill"
    assert command.actor.startswith("dashboard:")
    with psycopg.connect(database_url) as conn:
        audited = conn.execute("SELECT action, reason FROM audit_trail").fetchall()
    assert audited == [("request:kill", "drill")]
    assert (
        client.post("/api/control/launch", headers={"Authorization": f"Bearer {TOKEN}"}).status_code
        == 422
    )


def test_without_a_configured_token_controls_are_off(settings):
    off = settings.model_copy(update={"dashboard_token": None})
    with TestClient(create_app(off, aioredis.Redis.from_url(redis_url()))) as client:
        response = client.post("/api/control/kill", headers={"Authorization": f"Bearer {TOKEN}"})
        assert client.get("/api/status").json()["controls_enabled"] is False
    assert response.status_code == 403 and "DASHBOARD_TOKEN" in response.json()["detail"]
    assert control_messages(settings) == []


def test_the_websocket_sends_health_then_fills_as_they_happen(client, settings):
    with client.websocket_connect("/ws") as socket:
        assert socket.receive_json()["type"] == "health"
        publish(settings, FILLS, a_fill())
        while True:
            message = socket.receive_json()
            if message["type"] == "fill":
                break
        assert message["data"]["trade_id"] == "t-1" and message["data"]["price_micros"] == 400_000


def test_a_slow_client_is_dropped_to_snapshots_and_others_keep_the_stream():
    hub = Hub()
    slow, quick = hub.join(), hub.join()
    for n in range(QUEUE_SIZE + 10):
        hub.publish("log", {"n": n})
        while not quick.queue.empty():
            quick.queue.get_nowait()
    assert slow.slow and slow.dropped > 0 and not quick.slow
    hub.snapshot({"status": {}, "portfolio": None})
    assert slow.queue.get_nowait()["type"] == "snapshot"
    hub.snapshot({"status": {}, "portfolio": None})  # drained: back on the stream
    assert not slow.slow
