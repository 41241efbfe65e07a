"""The FastAPI gateway: health and service status (issue #8 adds the rest)."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from shared.bus.codec import Codec
from shared.config import Settings
from shared.messages import Heartbeat
from shared.streams import HEARTBEATS, stream_key

HEARTBEAT_WINDOW = 500
"""How many recent heartbeats /api/status looks at."""


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


def create_app(settings: Settings, redis: aioredis.Redis) -> FastAPI:
    app = FastAPI(title="Kalshi HV bot gateway", version="0.1.0")

    @app.get("/api/health")
    async def health() -> JSONResponse:
        checks = {
            "redis": await redis_ok(redis),
            "postgres": await postgres_ok(settings.database_url),
        }
        status = 200 if all(checks.values()) else 503
        return JSONResponse({"ok": status == 200, "checks": checks}, status_code=status)

    @app.get("/api/status")
    async def status() -> dict[str, Any]:
        now = time.time_ns()
        beats = await latest_heartbeats(redis, settings.key_prefix)
        return {
            "mode": settings.mode,
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
        }

    return app
