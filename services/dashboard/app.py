"""The FastAPI gateway: the REST API, the live WebSocket, the controls and the web UI.

Money is an integer with its unit in the field name (``*_micros``: micro-dollars;
``*_centi``: hundredths of a contract). Controls need ``Authorization: Bearer
$DASHBOARD_TOKEN``; without a configured token they are off (403). The gateway
binds 127.0.0.1 unless told otherwise and allows no wildcard CORS.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import psycopg
import redis.asyncio as aioredis
import structlog
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, WebSocket
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field
from starlette.websockets import WebSocketDisconnect

from services.dashboard import backtests, queries
from services.dashboard.hub import Hub
from services.dashboard.view import BusView, portfolio_json, positions_json
from shared.bus.codec import Codec
from shared.bus.publisher import Publisher
from shared.config import Settings
from shared.messages import Command, ControlCommand, Heartbeat
from shared.store.migrations import open_migrated
from shared.store.pool import Pool
from shared.store.writer import ts_from_ns
from shared.streams import CONTROL, HEARTBEATS, stream_key

log = structlog.get_logger("dashboard")

HEARTBEAT_WINDOW: Final = 500
"""How many recent heartbeats /api/status looks at."""
STATIC: Final = Path(__file__).parent / "static"
PORTFOLIO_EVERY_S: Final = 0.1
HEALTH_EVERY_S: Final = 1.0
ARTIFACT_HEADERS: Final = {
    # a run's files are data, never code that could act with the gateway's origin;
    # downloads stay allowed for the page's links to its CSV files
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; sandbox allow-downloads"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
CONTROLS_OFF: Final = (
    "controls are disabled: start the dashboard with DASHBOARD_TOKEN set (docs/operations.md)"
)


async def redis_ok(redis: aioredis.Redis) -> bool:
    try:
        return bool(await redis.ping())
    except Exception:
        return False


async def postgres_ok(url: str) -> bool:
    try:
        async with await psycopg.AsyncConnection.connect(url, connect_timeout=2) as conn:
            await conn.execute("SELECT 1")
        return True
    except Exception:
        return False


async def latest_heartbeats(redis: aioredis.Redis, prefix: str) -> dict[str, Heartbeat]:
    codec = Codec(HEARTBEATS)
    client: Any = redis
    entries = await client.xrevrange(stream_key(prefix, HEARTBEATS), count=HEARTBEAT_WINDOW)
    latest: dict[str, Heartbeat] = {}
    for _, fields in entries:
        beat = codec.decode_entry(fields)
        assert isinstance(beat, Heartbeat)
        latest.setdefault(f"{beat.service}/{beat.instance}", beat)
    return latest


class ControlBody(BaseModel):
    reason: str = Field("", max_length=500)
    market: str = Field("", max_length=200)


class Gateway:
    """The parts every route uses."""

    def __init__(
        self, settings: Settings, redis: aioredis.Redis, pool: Pool | None, view: BusView
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.pool = pool
        self.view = view
        self.publisher = Publisher(redis, settings.key_prefix, shards=1, hop="dashboard")
        token = settings.dashboard_token
        self.token = None if token is None else token.get_secret_value()

    def store(self) -> Pool:
        if self.pool is None:
            raise HTTPException(503, "Postgres is not reachable yet")
        return self.pool

    async def status(self) -> dict[str, Any]:
        now = time.time_ns()
        beats = await latest_heartbeats(self.redis, self.settings.key_prefix)
        feeds: dict[str, str] = {
            name: "fresh" if ok else "stale" for name, ok in self.view.feeds.items()
        }
        ingest = [b for b in beats.values() if b.service == "ingest" and b.role == "active"]
        kalshi = [b.info.get("kalshi_feed", "starting") for b in ingest]
        feeds["kalshi"] = "stale" if "stale" in kalshi else ("fresh" if kalshi else "starting")
        portfolio = self.view.portfolio
        return {
            "mode": self.settings.mode,
            "trading_state": portfolio.trading_state.value if portfolio else "unknown",
            "controls_enabled": self.token is not None,
            "uptime_s": int(time.monotonic() - self.view.started),
            "halted_markets": list(portfolio.halted_markets) if portfolio else [],
            "services": [
                {
                    "service": beat.service,
                    "instance": beat.instance,
                    "role": beat.role,
                    "version": beat.version,
                    "heartbeat_age_ms": (now - beat.ts_ns) // 1_000_000,
                    "info": beat.info,
                }
                for beat in sorted(beats.values(), key=lambda b: (b.service, b.instance))
            ],
            "feeds": feeds,
            "tick_to_order_p50_ms": self.view.tick_to_order_p50_ms(),
            "api_error_rate": self.view.api_error_rate(),
            "active_strategies": self.view.active_strategies(),
        }

    def authorize(self, authorization: str | None) -> None:
        if self.token is None:
            raise HTTPException(403, CONTROLS_OFF)
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given, self.token):
            raise HTTPException(
                401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
            )

    async def control(self, command: Command, body: ControlBody, client: str) -> str:
        message = ControlCommand(
            command_id=uuid.uuid4().hex,
            command=command,
            actor=f"dashboard:{client}",
            reason=body.reason,
            market="" if command is Command.KILL else body.market,
            ts_ns=time.time_ns(),
        )
        await self.publisher.publish(CONTROL, message)
        log.warning(
            "control command sent",
            command=command.value,
            actor=message.actor,
            market=message.market or "system",
            reason=body.reason,
        )
        if self.pool is not None:
            with contextlib.suppress(psycopg.Error):
                await self._audit(message)
        return message.command_id

    async def _audit(self, message: ControlCommand) -> None:
        assert self.pool is not None
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO audit_trail (ts, id, actor, action, subject, reason, detail)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (
                    ts_from_ns(message.ts_ns),
                    f"request:{message.command_id}",
                    message.actor,
                    f"request:{message.command.value}",
                    message.market or "system",
                    message.reason,
                    Jsonb({"command_id": message.command_id}),
                ),
            )


def create_app(
    settings: Settings,
    redis: aioredis.Redis,
    pool: Pool | None = None,
    view: BusView | None = None,
    hub: Hub | None = None,
) -> FastAPI:
    hub = hub or Hub()
    view = view or BusView(settings, redis, hub)
    gateway = Gateway(settings, redis, pool, view)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(view.run(stop), name="bus-view"),
            asyncio.create_task(_pump(gateway, hub, stop), name="ws-pump"),
        ]
        if gateway.pool is None:
            tasks.append(asyncio.create_task(_connect_store(gateway), name="store"))
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if gateway.pool is not None and pool is None:
                await gateway.pool.close()

    app = FastAPI(
        title="Kalshi HV bot gateway",
        version="0.2.0",
        lifespan=lifespan,
        description=(
            "Money is integer micro-dollars (*_micros), counts integer hundredths (*_centi)."
        ),
    )
    if settings.dashboard.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[o for o in settings.dashboard.cors_origins if o != "*"],
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.state.gateway = gateway
    _routes(app, gateway, hub)
    _backtest_routes(app, settings.dashboard.backtests_dir)
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


Limit = Annotated[int, Query(ge=1, le=5000)]
Days = Annotated[int, Query(ge=1, le=365)]
ControlAction = Literal["kill", "halt", "reduce", "resume"]


async def authorized(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> str:
    """The caller's address, once its bearer token checked out (403 with controls off)."""
    gateway: Gateway = request.app.state.gateway
    gateway.authorize(authorization)
    return request.client.host if request.client else "unknown"


Caller = Annotated[str, Depends(authorized)]


def _routes(app: FastAPI, gateway: Gateway, hub: Hub) -> None:
    view = gateway.view

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/health")
    async def health() -> JSONResponse:
        checks = {
            "redis": await redis_ok(gateway.redis),
            "postgres": await postgres_ok(gateway.settings.database_url),
        }
        status = 200 if all(checks.values()) else 503
        return JSONResponse({"ok": status == 200, "checks": checks}, status_code=status)

    @app.get("/api/status")
    async def status() -> dict[str, Any]:
        return await gateway.status()

    @app.get("/api/portfolio")
    async def portfolio() -> dict[str, Any]:
        if view.portfolio is None:
            raise HTTPException(404, "risk has not published a portfolio yet")
        return portfolio_json(view.portfolio)

    @app.get("/api/positions")
    async def positions() -> dict[str, Any]:
        return {"positions": positions_json(view.portfolio) if view.portfolio else []}

    @app.get("/api/orders")
    async def orders() -> dict[str, Any]:
        return {"orders": await queries.open_orders(gateway.store())}

    @app.get("/api/fills")
    async def fills(limit: Limit = 100) -> dict[str, Any]:
        return {"fills": await queries.fills(gateway.store(), limit)}

    @app.get("/api/signals")
    async def signals(limit: Limit = 50) -> dict[str, Any]:
        return {"signals": await queries.signals(gateway.store(), limit)}

    @app.get("/api/markets")
    async def markets() -> dict[str, Any]:
        return {
            "markets": [
                {"market": i.market, "event": i.event, "title": i.title, "status": i.status}
                for i in sorted(view.markets.values(), key=lambda i: i.market)
            ]
        }

    @app.get("/api/markets/{ticker}/book")
    async def book(ticker: str) -> dict[str, Any]:
        found = view.book_json(ticker)
        if found is None:
            raise HTTPException(404, f"no book seen for {ticker}")
        return found

    @app.get("/api/equity")
    async def equity(limit: Limit = 2000) -> dict[str, Any]:
        return {"points": await queries.equity(gateway.store(), limit)}

    @app.get("/api/audit")
    async def audit(limit: Limit = 100, before: datetime | None = None) -> dict[str, Any]:
        return await queries.audit(gateway.store(), limit, before)

    @app.get("/api/profit")
    async def profit() -> dict[str, Any]:
        return await queries.profit(gateway.store(), gateway.settings.risk.bankroll)

    @app.get("/api/daily")
    async def daily(days: Days = 7) -> dict[str, Any]:
        return {"days": await queries.daily(gateway.store(), days)}

    @app.post("/api/control/{action}", status_code=202)
    async def control(
        action: ControlAction, caller: Caller, body: ControlBody | None = None
    ) -> dict[str, str]:
        command_id = await gateway.control(Command(action), body or ControlBody(), caller)
        return {"command_id": command_id}

    @app.websocket("/ws")
    async def live(socket: WebSocket) -> None:
        await socket.accept()
        client = hub.join()
        try:
            await socket.send_json({"type": "health", "data": await gateway.status()})
            while True:
                await socket.send_json(await client.queue.get())
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            hub.leave(client)


def _backtest_routes(app: FastAPI, root: Path) -> None:
    """Read-only, like every GET: backtest runs under ``root`` (services/dashboard/backtests.py).

    Plain ``def`` routes: FastAPI runs them in its thread pool, off the event loop.
    """

    @app.exception_handler(backtests.BacktestError)
    async def refused(_: Request, exc: backtests.BacktestError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.get("/api/backtests")
    def runs() -> dict[str, Any]:
        return {"backtests": backtests.list_runs(root)}

    @app.get("/api/backtests/{name}")
    def report(name: str) -> dict[str, Any]:
        return backtests.read_report(root, name)

    @app.get("/backtests/{name}/{file}")
    def artifact(name: str, file: str) -> FileResponse:
        return FileResponse(backtests.artifact(root, name, file), headers=ARTIFACT_HEADERS)


async def _connect_store(gateway: Gateway) -> None:
    """Postgres when it comes: until then the store-backed routes answer 503."""
    gateway.pool = await open_migrated(gateway.settings.database_url, what="dashboard")


async def _pump(gateway: Gateway, hub: Hub, stop: asyncio.Event) -> None:
    """Portfolio every 100 ms when it changed, health and slow-client snapshots every second."""
    last_portfolio = None
    next_health = 0.0
    while not stop.is_set():
        state = gateway.view.portfolio
        if state is not None and state is not last_portfolio:
            hub.publish("portfolio", portfolio_json(state))
            last_portfolio = state
        if time.monotonic() >= next_health and hub.clients:
            next_health = time.monotonic() + HEALTH_EVERY_S
            with contextlib.suppress(Exception):  # Redis away: the next second tries again
                status = await gateway.status()
                hub.publish("health", status)
                hub.snapshot(
                    {"status": status, "portfolio": portfolio_json(state) if state else None}
                )
        await asyncio.sleep(PORTFOLIO_EVERY_S)
