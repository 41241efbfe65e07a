"""A Redis restart in the middle of traffic: publishers and consumers reconnect and
nothing is lost (a private redis-server with an append-only file, so it can restart)."""

import asyncio
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from shared.bus.consumer import Consumer, Delivery
from shared.bus.publisher import Publisher
from shared.messages import Heartbeat
from shared.streams import HEARTBEATS

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not on PATH")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert REDIS_SERVER is not None
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private redis did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.mark.slow
async def test_redis_restart_loses_nothing(private_redis):
    url = f"redis://127.0.0.1:{private_redis.port}/0"
    client = aioredis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    seen: set[int] = set()

    async def handler(batch: list[Delivery]) -> None:
        seen.update(d.message.ts_ns for d in batch)  # type: ignore[attr-defined]

    consumer = Consumer(
        client,
        "t:",
        HEARTBEATS,
        group="g",
        name="c",
        handler=handler,
        batch=100,
        block_ms=100,
        claim_idle_ms=500,
        claim_every_ms=200,
    )
    publisher = Publisher(client, "t:", shards=1)
    stop = asyncio.Event()
    consuming = asyncio.create_task(consumer.run(stop))

    async def produce() -> None:
        for i in range(600):
            await publisher.publish(
                HEARTBEATS, Heartbeat(service="s", instance="i", version="0", role="r", ts_ns=i)
            )
            await asyncio.sleep(0.002)

    producing = asyncio.create_task(produce())
    await asyncio.sleep(0.4)
    await asyncio.to_thread(private_redis.stop)
    await asyncio.sleep(1.0)
    await asyncio.to_thread(private_redis.start)
    await asyncio.wait_for(producing, 60)
    for _ in range(300):
        if len(seen) == 600:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(consuming, 10)
    await client.aclose()
    assert seen == set(range(600))
