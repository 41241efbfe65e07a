"""The ASGI application: Kalshi's REST and WebSocket APIs plus the ``/sim`` side door."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, Request, Response, WebSocket
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.simulator import rest, weather_feed
from services.simulator.faults import FaultConfig, FaultConfigError
from services.simulator.state import SimState
from shared.kalshi.signing import AuthError

WS_PATH = "/trade-api/ws/v2"
SWEEP_INTERVAL_S = 0.25

BackgroundTask = Callable[[SimState], Coroutine[Any, Any, None]]


def create_app(state: SimState, tasks: list[BackgroundTask] | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        running = [asyncio.create_task(_sweep(state))]
        running += [asyncio.create_task(task(state)) for task in tasks or []]
        try:
            yield
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    app = FastAPI(title="Kalshi simulator", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.sim = state
    app.include_router(rest.router)
    app.include_router(weather_feed.router)
    _add_error_handlers(app)
    _add_sim_routes(app)

    @app.websocket(WS_PATH)
    async def websocket(ws: WebSocket) -> None:
        try:
            key_id = state.auth.check(ws.headers, "GET", WS_PATH)
        except AuthError:
            await ws.send_denial_response(
                rest.json_response(rest.error_body("authentication_error", "bad signature"), 401)
            )
            return
        await ws.accept()
        user_id = state.exchange.ledger[key_id].user_id
        await state.hub.serve(state.hub.connection(ws, key_id, user_id))

    return app


async def _sweep(state: SimState) -> None:
    """Expire orders on time even when nobody trades."""
    while True:
        await asyncio.sleep(SWEEP_INTERVAL_S)
        state.exchange.expire_due()
        state.commit()


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(rest.KalshiError)
    async def kalshi_error(_: Request, exc: rest.KalshiError) -> Response:
        body = exc.body if exc.body is not None else rest.error_body(exc.code, exc.message)
        return rest.json_response(body, exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = "not_found" if exc.status_code == 404 else "bad_request"
        return rest.json_response(rest.error_body(code, str(exc.detail)), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return rest.json_response(rest.error_body("invalid_parameters", str(exc)), 400)


def _add_sim_routes(app: FastAPI) -> None:
    state: SimState = app.state.sim

    @app.post("/sim/faults")
    async def set_faults(request: Request) -> Response:
        body = await request.json()
        try:
            config = FaultConfig.from_json(body if isinstance(body, dict) else {})
        except FaultConfigError as exc:
            return rest.json_response(rest.error_body("invalid_parameters", str(exc)), 400)
        state.faults.set(config)
        if state.faults.take_disconnect():
            await state.hub.disconnect_all()
        return rest.json_response({"faults": asdict(config)})

    @app.delete("/sim/faults")
    async def clear_faults() -> Response:
        state.faults.clear()
        return rest.json_response({"faults": asdict(state.faults.config)})

    @app.get("/sim/faults")
    async def get_faults() -> Response:
        return rest.json_response({"faults": asdict(state.faults.config)})

    @app.get("/sim/faults/log")
    async def fault_log() -> Response:
        return rest.json_response({"log": [asdict(r) for r in state.faults.log]})

    @app.get("/sim/truth")
    async def truth() -> Response:
        return rest.json_response(truth_json(state))

    @app.post("/sim/settle")
    async def settle(request: Request) -> Response:
        """Settle a market now, by the given result or by the hidden truth."""
        body = await request.json()
        ticker = body.get("ticker") if isinstance(body, dict) else None
        if ticker not in state.exchange.markets:
            return rest.json_response(rest.error_body("not_found", "unknown ticker"), 404)
        result = body.get("result") or (
            state.scenario.result_of(ticker) if state.scenario else None
        )
        if result not in ("yes", "no"):
            return rest.json_response(rest.error_body("invalid_parameters", "result needed"), 400)
        state.exchange.settle(ticker, result)
        state.commit()
        return rest.json_response({"ticker": ticker, "result": result})

    @app.get("/sim/health")
    async def health() -> Response:
        return rest.json_response({"ok": True, "markets": len(state.exchange.markets)})


def truth_json(state: SimState) -> dict[str, Any]:
    scenario = getattr(state, "scenario", None)
    if scenario is None:
        return {"mispricings": [], "fair_values": {}, "hidden": {}}
    truth: dict[str, Any] = scenario.truth_json()
    return truth
