"""The dashboard gateway process: the API, the live WebSocket and the web UI on 127.0.0.1:8000."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
import uvicorn

from services.dashboard.app import create_app
from shared.runtime import ServiceContext, service_main

log = structlog.get_logger("dashboard")

DESCRIPTION = "Dashboard gateway: REST API, live WebSocket, controls (bearer token) and the web UI."


async def run(ctx: ServiceContext) -> None:
    settings = ctx.settings
    if settings.dashboard_token is None:
        log.warning("controls are off: set DASHBOARD_TOKEN to enable kill, halt and resume")
    app = create_app(settings, ctx.redis)
    config = uvicorn.Config(
        app,
        host=settings.dashboard.host,
        port=settings.dashboard.port,
        log_config=None,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    # the runtime owns SIGINT/SIGTERM; uvicorn must not take them over
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    serving = asyncio.create_task(server.serve(), name="uvicorn")
    log.info(
        "dashboard listening", url=f"http://{settings.dashboard.host}:{settings.dashboard.port}"
    )
    try:
        await ctx.stop.wait()
    finally:
        server.should_exit = True
        await serving


def main(argv: list[str] | None = None) -> int:
    return service_main("dashboard", DESCRIPTION, run, role="free", argv=argv)
