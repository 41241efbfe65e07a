"""100,000 messages through a group of 3 consumer processes, one killed mid-way:
every message's effect is recorded exactly once."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from shared.bus.publisher import Publisher
from shared.messages import Action, Fill, Side
from shared.streams import FILLS, stream_key
from tests.conftest import redis_url

TOTAL = 100_000
KILL_AFTER = 20_000


def fill(i: int) -> Fill:
    return Fill(
        trade_id=f"t{i}",
        order_id="o",
        client_order_id="c",
        market="M",
        side=Side.YES,
        action=Action.BUY,
        price=500_000,
        count=100,
        fee=20_000,
        is_taker=True,
        ts_ns=i,
    )


def effects(database_url: str) -> tuple[int, int]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT trade_id) FROM effects").fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


def start_worker(
    database_url: str, prefix: str, name: str, log: Path, hang_after: int = 0
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.shared.bus.ledger_worker",
            redis_url(),
            prefix,
            database_url,
            name,
            str(hang_after),
        ],
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),
        env={**os.environ},
    )


def said(worker: subprocess.Popen[bytes], log: Path, expected: bytes) -> None:
    """The worker's next line is ``expected``; else what it wrote to stderr, to see why."""
    assert worker.stdout is not None
    line = worker.stdout.readline().strip()
    assert line == expected, f"worker said {line!r}; its stderr:\n{log.read_text()[-3000:]}"


@pytest.mark.slow
async def test_hundred_thousand_messages_three_consumers_one_killed(
    aredis, key_prefix, database_url, tmp_path
):
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TABLE inbox (trade_id text PRIMARY KEY)")
        conn.execute("CREATE TABLE effects (trade_id text NOT NULL, worker text NOT NULL)")
    publisher = Publisher(aredis, key_prefix, shards=1)
    for start in range(0, TOTAL, 5000):
        await publisher.publish_many(FILLS, [fill(i) for i in range(start, start + 5000)])
    # w0 commits 20 batches of 500, then hangs before its ack and is killed there
    logs = [tmp_path / f"w{i}.log" for i in range(3)]
    workers = [
        start_worker(database_url, key_prefix, f"w{i}", logs[i], KILL_AFTER // 500 if i == 0 else 0)
        for i in range(3)
    ]
    try:
        for worker, log in zip(workers, logs, strict=True):
            said(worker, log, b"ready")
        said(workers[0], logs[0], b"hanging")
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        key = stream_key(key_prefix, FILLS)
        left_behind = await aredis.xpending_range(key, "ledger", "-", "+", 10_000, "w0")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            count, _ = effects(database_url)
            pending = (await aredis.xpending(key, "ledger"))["pending"]
            if count >= TOTAL and pending == 0:
                break
            await asyncio.sleep(0.2)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                worker.wait(timeout=10)
    count, distinct = effects(database_url)
    assert (count, distinct) == (TOTAL, TOTAL)
    assert (await aredis.xpending(key, "ledger"))["pending"] == 0
    assert left_behind, "the killed consumer held no pending entries: reclaim went untested"
    with psycopg.connect(database_url) as conn:
        per_worker = dict(conn.execute("SELECT worker, count(*) FROM effects GROUP BY worker"))
    assert per_worker.get("w1", 0) > 0 and per_worker.get("w2", 0) > 0
