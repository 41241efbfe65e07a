"""The bus against raw redis-py and redis-benchmark, between two processes.

* one-way latency, publish -> handler in another process, p50/p99, for our
  Publisher/Consumer and for bare XADD -> XREADGROUP -> XACK with redis-py;
* throughput of pipelined publishing through to acked consumption;
* redis-benchmark XADD on the same server in the same run, for scale.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import time
import uuid
from typing import Any
from urllib.parse import urlparse

import redis.asyncio as aioredis

from bench.figures import Figure, percentiles_us
from shared.bus.connection import connect_redis
from shared.bus.consumer import Consumer, Delivery
from shared.bus.publisher import Publisher
from shared.messages import Heartbeat
from shared.streams import StreamSpec, stream_key

LATENCY_MESSAGES = 5_000
LATENCY_GAP_S = 0.0005
THROUGHPUT_MESSAGES = 200_000
GROUP = "bench"
HEARTBEATS = StreamSpec("bench", Heartbeat, maxlen=1_000_000)
"""A stream of its own, long enough that nothing is trimmed before it is read."""


def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def _beat(i: int) -> Heartbeat:
    return Heartbeat(service="bench", instance="p", version="0", role="x", ts_ns=i)


# --- the receiving process ---------------------------------------------------------------


def _receiver(mode: str, prefix: str, expected: int, out: mp.Queue[Any]) -> None:
    asyncio.run(_receive(mode, prefix, expected, out))


async def _receive(mode: str, prefix: str, expected: int, out: mp.Queue[Any]) -> None:
    client: Any = connect_redis(redis_url())
    key = stream_key(prefix, HEARTBEATS)
    await client.xgroup_create(key, GROUP, id="0", mkstream=True)
    latencies: list[int] = []
    stop = asyncio.Event()
    out.put("ready")
    if mode == "bus":

        async def handler(batch: list[Delivery]) -> None:
            now = time.time_ns()
            latencies.extend(now - d.message.hops[0].ts_ns for d in batch)
            if len(latencies) >= expected:
                stop.set()

        consumer = Consumer(
            client,
            prefix,
            HEARTBEATS,
            group=GROUP,
            name="r",
            handler=handler,
            batch=1000,
            block_ms=100,
            claim_every_ms=60_000,
        )
        await consumer.run(stop)
    else:
        while len(latencies) < expected:
            reply = await client.xreadgroup(GROUP, "r", {key: ">"}, count=1000, block=100)
            now = time.time_ns()
            for _, entries in reply or []:
                latencies.extend(now - int(fields[b"ts"]) for _, fields in entries)
                await client.xack(key, GROUP, *[entry_id for entry_id, _ in entries])
    out.put((time.time_ns(), latencies))
    await client.aclose()


def _start_receiver(mode: str, prefix: str, expected: int) -> tuple[Any, mp.Queue[Any]]:
    ctx = mp.get_context("spawn")
    out: mp.Queue[Any] = ctx.Queue()
    proc = ctx.Process(target=_receiver, args=(mode, prefix, expected, out), daemon=True)
    proc.start()
    assert out.get(timeout=30) == "ready"
    return proc, out


# --- the sending side ----------------------------------------------------------------------


async def _send_paced(mode: str, client: aioredis.Redis, prefix: str) -> None:
    publisher = Publisher(client, prefix, shards=1, hop="bench")
    key = stream_key(prefix, HEARTBEATS)
    for i in range(LATENCY_MESSAGES):
        if mode == "bus":
            await publisher.publish(HEARTBEATS, _beat(i))
        else:
            await client.xadd(key, {"ts": str(time.time_ns())}, maxlen=100_000, approximate=True)
        await asyncio.sleep(LATENCY_GAP_S)


async def _send_bulk(mode: str, client: aioredis.Redis, prefix: str) -> None:
    publisher = Publisher(client, prefix, shards=1, hop="bench")
    key = stream_key(prefix, HEARTBEATS)
    for start in range(0, THROUGHPUT_MESSAGES, 500):
        if mode == "bus":
            await publisher.publish_many(HEARTBEATS, [_beat(i) for i in range(start, start + 500)])
        else:
            pipe = client.pipeline(transaction=False)
            for _ in range(500):
                pipe.xadd(key, {"ts": str(time.time_ns())}, maxlen=1_000_000, approximate=True)
            await pipe.execute()


async def _cleanup(client: aioredis.Redis, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)


async def _measure(mode: str, bulk: bool) -> tuple[float, list[int]]:
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    expected = THROUGHPUT_MESSAGES if bulk else LATENCY_MESSAGES
    proc, out = _start_receiver(mode, prefix, expected)
    client = connect_redis(redis_url())
    started = time.time_ns()
    await (_send_bulk if bulk else _send_paced)(mode, client, prefix)
    finished, latencies = await asyncio.to_thread(out.get, True, 300)
    proc.join(timeout=10)
    await _cleanup(client, prefix)
    await client.aclose()
    seconds = (finished - started) / 1e9
    return expected / seconds, latencies


def _redis_benchmark() -> list[Figure]:
    """redis-benchmark XADD of a payload like ours: one client unpipelined, and 50 x P16."""
    binary = shutil.which("redis-benchmark")
    url = urlparse(redis_url())
    if binary is None or not url.hostname:
        return []
    key = f"bench:{uuid.uuid4().hex[:8]}:rb"
    command = ["XADD", key, "MAXLEN", "~", "100000", "*", "m", "x" * 120]
    runs = (
        ("redis_benchmark_xadd_1client_per_s", ["-c", "1"], "1 client, unpipelined"),
        ("redis_benchmark_xadd_p16_per_s", ["-c", "50", "-P", "16"], "50 clients, pipeline 16"),
    )
    figures = []
    for name, options, note in runs:
        result = subprocess.run(
            [
                binary,
                "-h",
                url.hostname,
                "-p",
                str(url.port or 6379),
                "-n",
                "100000",
                "-q",
                *options,
                *command,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        match = re.search(r"([\d.]+) requests per second", result.stdout.rsplit("\r", 1)[-1])
        if match:
            figures.append(Figure(name, float(match.group(1)), "msg/s", note))
    subprocess.run(
        [
            binary.replace("redis-benchmark", "redis-cli"),
            "-h",
            url.hostname,
            "-p",
            str(url.port or 6379),
            "DEL",
            key,
        ],
        capture_output=True,
        timeout=30,
    )
    return figures


LATENCY_ROUNDS = 3
"""Raw and bus runs alternate, so drift of this shared machine hits both alike."""


def run() -> list[Figure]:
    figures: list[Figure] = []
    samples: dict[str, list[int]] = {"raw": [], "bus": []}
    for _ in range(LATENCY_ROUNDS):
        for mode in ("raw", "bus"):
            samples[mode] += asyncio.run(_measure(mode, bulk=False))[1]
    lat = {mode: percentiles_us(values, 50, 99) for mode, values in samples.items()}
    for mode in ("raw", "bus"):
        figures += [
            Figure(f"{mode}_oneway_p50_us", lat[mode][0], "us", "XADD -> handler, 2 processes"),
            Figure(f"{mode}_oneway_p99_us", lat[mode][1], "us", ""),
        ]
    for mode in ("raw", "bus"):
        rate, _ = asyncio.run(_measure(mode, bulk=True))
        figures.append(Figure(f"{mode}_throughput_per_s", rate, "msg/s", "pipelined, acked"))
    overhead = 100 * (lat["bus"][0] - lat["raw"][0]) / lat["raw"][0]
    figures.append(Figure("bus_overhead_pct", overhead, "%", "bus p50 over raw redis-py p50"))
    return figures + _redis_benchmark()
