"""The COPY batch writer loses nothing when Postgres restarts under it.

A private server (shared.store.pgserver) is stopped while rows keep coming,
then started again; afterwards every row must be stored exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from shared.store import BatchWriter, Pool, ensure_database, migrate, open_pool, ts_from_ns
from shared.store.pgserver import EmbeddedPostgres, StopMode

COLUMNS = ("ts", "market", "side", "price_micros", "delta_centi", "seq")
KEY = ("market", "ts", "seq", "side", "price_micros")
T0_NS = 1_735_689_600_000_000_000
CHUNK = 200  # rows per add_many
FEED_PAUSE_S = 0.01  # ~20,000 rows per second
OUTAGE_S = 2.0


def chunk(start: int) -> list[tuple[object, ...]]:
    return [
        (ts_from_ns(T0_NS + seq * 1_000), "KXFED-25JAN", "no", 990_000, 1, seq)
        for seq in range(start, start + CHUNK)
    ]


@pytest.fixture
def server() -> Iterator[EmbeddedPostgres]:
    # Not under tmp_path: run as root, the server runs as another user, and
    # every new pytest session closes pytest's temp root to other users again.
    base = Path(tempfile.mkdtemp(prefix="khv-store-test-"))
    postgres = EmbeddedPostgres(base / "pgdata", settings={"fsync": "off"})
    try:
        try:
            postgres.start()
        except Exception as exc:  # whatever the reason, this environment cannot run it
            pytest.skip(f"embedded Postgres cannot start here: {exc}")
        yield postgres
    finally:
        postgres.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


async def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.005)


def test_embedded_server_stops_and_starts_with_the_same_url(server: EmbeddedPostgres) -> None:
    url = server.url
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    server.stop("fast")
    assert not server.is_running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    assert server.start() == url
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert server.restart() == url


class Feeder:
    """Adds CHUNK rows every FEED_PAUSE_S, numbered 0, 1, 2, ... without gaps."""

    def __init__(self, writer: BatchWriter) -> None:
        self.writer = writer
        self.fed = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is None:
            return
        task, self._task = self._task, None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # re-raises BufferFull, had it happened

    async def _run(self) -> None:
        while True:
            self.writer.add_many(chunk(self.fed))
            self.fed += CHUNK
            await asyncio.sleep(FEED_PAUSE_S)


async def stored(pool: Pool) -> tuple[int, int, list[int]]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*), count(DISTINCT seq) FROM book_deltas")
        counts = await cur.fetchone()
        assert counts is not None
        cur = await conn.execute("SELECT seq FROM book_deltas ORDER BY seq")
        return counts[0], counts[1], [seq for (seq,) in await cur.fetchall()]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_batch_writer_loses_nothing_across_a_restart(
    server: EmbeddedPostgres, mode: StopMode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    url = server.url_for("khv_restart")
    await ensure_database(url)
    pool = await open_pool(url, max_size=4)
    writer = BatchWriter(pool, "book_deltas", COLUMNS, conflict_key=KEY, max_rows=2000)
    feeder = Feeder(writer)
    try:
        await migrate(pool)
        writer.start()
        feeder.start()
        await wait_for(lambda: writer.rows_written >= 10_000, 20, "the first writes")
        await wait_for(writer._lock.locked, 5, "a batch in flight")  # stop it mid-batch
        await asyncio.to_thread(server.stop, mode)
        fed_at_stop = feeder.fed
        await asyncio.sleep(OUTAGE_S)
        fed_during_outage = feeder.fed - fed_at_stop
        await asyncio.to_thread(server.start)
        await asyncio.sleep(1.0)
        await feeder.stop()
        await asyncio.wait_for(writer.aclose(), 40)
        count, distinct, seqs = await stored(pool)
    finally:
        await feeder.stop()
        with contextlib.suppress(Exception):  # after a failure: stop, never hang
            await asyncio.wait_for(writer.aclose(), 1)
        await pool.close()

    assert fed_during_outage >= 20 * CHUNK  # rows kept coming while the server was down
    assert count == distinct == feeder.fed
    assert seqs == list(range(feeder.fed))
    # the outage really hit the writer: a batch failed and was retried, or the writer
    # waited for a connection while the pool kept failing to reconnect
    messages = [record.getMessage() for record in caplog.records]
    retried = writer.retries >= 1 and any("retrying" in m for m in messages)
    assert retried or any("error connecting" in m for m in messages)
    assert writer.rows_written == feeder.fed
    assert writer.pending == 0
