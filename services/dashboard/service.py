"""The dashboard gateway process: serves the HTTP API on 127.0.0.1:8000 by default."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
import uvicorn

from services.dashboard.app import create_app
from shared.runtime import ServiceContext, service_main

log = structlog.get_logger("dashboard")

DESCRIPTION = "Dashboard gateway: status, health and (later) the web UI and controls."


async def run(ctx: ServiceContext) -> None:
    settings = ctx.settings
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
    await ctx.stop.wait()
    server.should_exit = True
    await serving


def main(argv: list[str] | None = None) -> int:
    return service_main("dashboard", DESCRIPTION, run, role="free", argv=argv)
