"""Tick to order across processes: strategy, risk and execution (paper) as their own processes.

This process plays ingest: it publishes the catalog, a fresh-feed heartbeat
every 200 ms, and market-data batches stamped with ingest's receive hop. Every
batch turns one event's three brackets into an arbitrage (their YES asks sum
to 75 cents), so each one travels md -> strategy -> signal -> risk -> intent ->
execution, which hands the orders to the paper venue. Latency is the order's
``execution.send`` hop minus the batch's ``ingest.rx`` hop, both wall clock on
this machine, read back from the ``orders`` stream: three Redis hops and three
processes. Postgres is a database of its own, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from typing import Any, Final

import numpy as np
import psycopg
from psycopg import sql

from bench.figures import Figure
from bench.strategy import arbitrage_books, brackets
from shared.bus.codec import Codec
from shared.bus.connection import connect_redis
from shared.bus.publisher import Publisher
from shared.messages import Heartbeat, OrderEvent
from shared.streams import HEARTBEATS, MARKET_DATA, MARKETS, ORDERS, stream_key

EVENTS: Final = 200
RATE_PER_S: Final = 20
DURATION_S: Final = 30.0
SERVICES: Final = ("strategy", "risk", "execution")


def _redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def _admin_url() -> str:
    return os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _database(name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(_admin_url())
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


def _env(prefix: str, database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": _redis_url(),
        "DATABASE_URL": database_url,
        "KHV_KEY_PREFIX": prefix,
        "KHV_BUS__SHARDS": "1",
        "KHV_LOG_LEVEL": "WARNING",
        "KHV_METRICS__ENABLED": "false",
        "KHV_STRATEGY__MODELS": "[]",
        "KHV_STRATEGY__COOLDOWN_S": "0",
        "KHV_RISK__SUBMIT_RATE_PER_S": "10000",
        "KHV_RISK__SUBMIT_BURST": "10000",
        "KHV_RISK__MAX_OPEN_ORDERS": "100000",
    }


async def _beats(publisher: Publisher, stop: asyncio.Event) -> None:
    while not stop.is_set():
        beat = Heartbeat(
            service="ingest",
            instance="bench",
            version="bench",
            role="active",
            ts_ns=time.time_ns(),
            info={"kalshi_feed": "fresh"},
        )
        await publisher.publish(HEARTBEATS, beat)
        await asyncio.sleep(0.2)


async def _drive(prefix: str) -> tuple[list[int], int, dict[str, list[int]]]:
    redis: Any = connect_redis(_redis_url())
    publisher = Publisher(redis, prefix, shards=1, hop="ingest")
    events = [brackets(f"KXBENCH-{n}") for n in range(EVENTS)]
    await publisher.publish_many(MARKETS, [i for infos in events for i in infos])
    stop = asyncio.Event()
    beats = asyncio.create_task(_beats(publisher, stop))
    try:
        await asyncio.sleep(6.0)  # processes start, take leases, read the catalog, see the feed
        sent = 0
        deadline = time.monotonic() + DURATION_S
        while time.monotonic() < deadline:
            infos = events[sent % EVENTS]
            sent += 1
            await publisher.publish(MARKET_DATA, arbitrage_books(infos, sent), event=infos[0].event)
            await asyncio.sleep(1 / RATE_PER_S)
        await asyncio.sleep(2.0)
        codec = Codec(ORDERS)
        samples = []
        legs: dict[str, list[int]] = {}
        for _, fields in await redis.xrange(stream_key(prefix, ORDERS)):
            event = codec.decode_entry(fields)
            assert isinstance(event, OrderEvent)
            hops = {hop.name: hop.ts_ns for hop in event.hops}
            if "execution.send" in hops and "ingest.rx" in hops:
                samples.append(hops["execution.send"] - hops["ingest.rx"])
                for before, after in zip(event.hops, event.hops[1:], strict=False):
                    legs.setdefault(f"{before.name}->{after.name}", []).append(
                        after.ts_ns - before.ts_ns
                    )
        return samples, sent, legs
    finally:
        stop.set()
        await beats
        await redis.aclose()


async def _forget(prefix: str) -> None:
    """The bench's keys, once the processes reading them are gone."""
    redis: Any = connect_redis(_redis_url())
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def run() -> list[Figure]:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    with psycopg.connect(_admin_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    env = _env(prefix, _database(name))
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", f"services.{service}", "--instance", "bench"],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for service in SERVICES
    ]
    try:
        samples, sent, legs = asyncio.run(_drive(prefix))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(15)
        asyncio.run(_forget(prefix))
        with psycopg.connect(_admin_url(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    if not samples:
        raise RuntimeError("no order reached the venue: the pipeline is broken")
    p50, p99, p999 = np.percentile(samples, [50, 99, 99.9]) / 1e6
    note = f"{len(samples)} orders from {sent} arbitrage books; strategy, risk, execution processes"
    return [
        Figure("tick_to_order_p50_ms", float(p50), "ms", note),
        Figure("tick_to_order_p99_ms", float(p99), "ms", ""),
        Figure("tick_to_order_p999_ms", float(p999), "ms", ""),
        *(
            Figure(
                f"hop_{name.replace('->', '_to_').replace('.', '_')}_p50_ms",
                float(np.percentile(values, 50)) / 1e6,
                "ms",
                "median of this hop",
            )
            for name, values in legs.items()
        ),
    ]


if __name__ == "__main__":
    from bench.figures import print_table

    print_table(run())
