"""Running services in the test process: settings against a simulator, contexts, tasks."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from services.execution import service as execution_service
from services.ingest.service import Ingest, connect_store, load_signer
from services.risk import service as risk_service
from services.simulator.server import SimulatorServer
from services.strategy.service import Strategy
from shared.bus.codec import Codec
from shared.bus.publisher import Publisher
from shared.config import Settings, load_settings
from shared.kalshi.signing import private_pem
from shared.messages import Message
from shared.runtime import ServiceContext, send_heartbeats
from shared.streams import StreamSpec, stream_key
from tests.conftest import redis_url
from tests.services.simulator.kit import KEYS


def stack_settings(
    sim: SimulatorServer, key_prefix: str, database_url: str, tmp_path: Path, **overrides: Any
) -> Settings:
    """Settings of a one-shard stack trading as ``alice`` at the simulator."""
    key = tmp_path / "alice.pem"
    key.write_bytes(private_pem(KEYS["alice"]))
    base: dict[str, Any] = {
        "redis_url": redis_url(),
        "database_url": database_url,
        "key_prefix": key_prefix,
        "kalshi_key_id": "alice",
        "kalshi_private_key_path": str(key),
        "kalshi": {"rest_url": sim.rest_url, "ws_url": sim.ws_url, "tier": "premier"},
        "bus": {"shards": 1},
        "ingest": {"discovery_interval_s": 30, "snapshot_interval_s": 300},
        "feeds": {"nws": {"enabled": False}},
    }
    base.update(overrides)
    return load_settings(**base)


def context(name: str, settings: Settings, redis: aioredis.Redis) -> ServiceContext:
    return ServiceContext(
        name=name,
        instance=f"test-{name}",
        settings=settings,
        redis=redis,
        publisher=Publisher(redis, settings.key_prefix, shards=settings.bus.shards, hop=name),
        stop=asyncio.Event(),
        args=argparse.Namespace(),
        owned_shards=set(range(settings.bus.shards)),
        role="active",
    )


async def wait_until(predicate: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {within_s} s: {what}")


async def stop_all(
    contexts: list[ServiceContext], tasks: list[asyncio.Task[Any]], within_s: float = 30
) -> None:
    for ctx in contexts:
        ctx.stop.set()
    async with asyncio.timeout(within_s):
        await asyncio.gather(*tasks)


def beating(ctx: ServiceContext) -> asyncio.Task[None]:
    """The heartbeats service_main would send for ``ctx`` (risk judges ingest's)."""
    return asyncio.create_task(send_heartbeats(ctx), name=f"{ctx.name}-heartbeats")


def start(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    return asyncio.create_task(coro, name=name)


async def read_stream(
    redis: aioredis.Redis, prefix: str, spec: StreamSpec, shard: int | None = None
) -> list[tuple[str, Message]]:
    """Every message of one stream (one shard of a sharded one), with its entry id."""
    codec = Codec(spec)
    entries = await redis.xrange(stream_key(prefix, spec, shard))
    return [(raw_id.decode(), codec.decode_entry(fields)) for raw_id, fields in entries]


@dataclass
class PaperStack:
    """Ingest, strategy, risk and execution running in this process, trading on paper."""

    ingest: Ingest
    strategy: Strategy
    contexts: dict[str, ServiceContext]


@asynccontextmanager
async def paper_stack(settings: Settings, redis: aioredis.Redis) -> AsyncIterator[PaperStack]:
    """The four trading services, started, with every followed book trusted and risk
    having heard ingest's heartbeats; all stopped on the way out."""
    names = ("ingest", "strategy", "risk", "execution")
    contexts = {name: context(name, settings, redis) for name in names}
    pool = await connect_store(contexts["ingest"])
    ingest = Ingest(contexts["ingest"], load_signer(contexts["ingest"]), pool)
    strategy = Strategy(contexts["strategy"])
    tasks = [
        start(ingest.run(), "ingest"),
        start(strategy.run(), "strategy"),
        start(risk_service.run(contexts["risk"]), "risk"),
        start(execution_service.run(contexts["execution"]), "execution"),
    ]
    beats = beating(contexts["ingest"])
    try:
        await wait_until(
            lambda: (
                bool(ingest.followed)
                and len(strategy.engine.books.trusted()) >= len(ingest.followed)
            ),
            30,
            "books trusted",
        )
        await asyncio.sleep(2.0)  # risk hears ingest's heartbeats
        yield PaperStack(ingest, strategy, contexts)
    finally:
        beats.cancel()
        await stop_all(list(contexts.values()), tasks)
        await pool.close()
