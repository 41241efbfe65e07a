"""BatchWriter: every row exactly once, in batches, whatever happens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.types.json import Jsonb

from shared.store import (
    BatchWriter,
    BufferFull,
    Pool,
    WriterFailed,
    migrate,
    open_pool,
    ts_from_ns,
)
from shared.store.writer import backoff_delay

COLUMNS = ("ts", "market", "side", "price_micros", "delta_centi", "seq")
KEY = ("market", "ts", "seq", "side", "price_micros")
T0_NS = 1_735_689_600_000_000_000  # 2025-01-01T00:00:00Z


def delta(seq: int) -> tuple[object, ...]:
    """A book delta row, identified by ``seq``."""
    return (ts_from_ns(T0_NS + seq * 1_000), "KXHIGHNY-25JAN01-B40", "yes", 10_000, 100, seq)


def deltas(start: int, count: int) -> list[tuple[object, ...]]:
    return [delta(seq) for seq in range(start, start + count)]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    opened = await open_pool(database_url, max_size=4)
    await migrate(opened)
    yield opened
    await opened.close()


async def stored_seqs(pool: Pool) -> list[int]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT seq FROM book_deltas ORDER BY seq")
        return [seq for (seq,) in await cur.fetchall()]


def make_writer(pool: Pool, **options: object) -> BatchWriter:
    return BatchWriter(pool, "book_deltas", COLUMNS, conflict_key=KEY, **options)  # type: ignore[arg-type]


async def test_writes_50000_rows_exactly_once(pool: Pool) -> None:
    writer = make_writer(pool, max_rows=5000, max_delay_s=0.05)
    writer.start()
    for seq in range(50_000):
        writer.add(delta(seq))
        if seq % 1000 == 999:
            await asyncio.sleep(0)  # let the background task run, as a service would
    await writer.aclose()

    assert await stored_seqs(pool) == list(range(50_000))
    assert writer.rows_written == 50_000
    assert writer.duplicates == 0
    assert writer.retries == 0
    assert writer.pending == 0
    assert 10 <= writer.batches <= 60  # batched, not row by row


async def test_flush_returns_once_rows_are_durable(pool: Pool) -> None:
    writer = make_writer(pool, max_rows=1000)
    writer.add_many(deltas(0, 2500))
    assert await stored_seqs(pool) == []  # add() never touches the database
    await writer.flush()
    assert await stored_seqs(pool) == list(range(2500))
    assert writer.batches == 3


async def test_background_writer_writes_within_max_delay(pool: Pool) -> None:
    writer = make_writer(pool, max_rows=1000, max_delay_s=0.05)
    writer.start()
    try:
        writer.add(delta(7))
        for _ in range(100):
            if writer.rows_written:
                break
            await asyncio.sleep(0.02)
        assert await stored_seqs(pool) == [7]
    finally:
        await writer.aclose()


async def test_retry_after_an_ambiguous_commit_does_not_double_rows(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = make_writer(pool, max_rows=1000)
    real_write = writer._write_once
    commits_lost = 0

    async def commit_lands_but_ack_is_lost(rows: list[Sequence[object]]) -> int:
        nonlocal commits_lost
        inserted = await real_write(rows)
        if commits_lost == 0:
            commits_lost += 1
            raise psycopg.OperationalError("simulated: connection lost after COMMIT was sent")
        return inserted

    monkeypatch.setattr(writer, "_write_once", commit_lands_but_ack_is_lost)
    writer.add_many(deltas(0, 3000))
    await writer.flush()

    assert await stored_seqs(pool) == list(range(3000))
    assert writer.retries == 1
    assert writer.duplicates == 1000  # the whole first batch was replayed, and skipped
    assert writer.rows_written == 3000


async def test_without_conflict_key_any_unique_key_dedupes(pool: Pool) -> None:
    writer = BatchWriter(pool, "book_deltas", COLUMNS, max_rows=100)
    writer.add_many(deltas(0, 150))
    writer.add_many(deltas(100, 100))
    await writer.flush()
    assert await stored_seqs(pool) == list(range(200))
    assert writer.duplicates == 50


async def test_full_buffer_refuses_rows_instead_of_dropping(pool: Pool) -> None:
    writer = make_writer(pool, max_rows=5, max_buffer=10)
    writer.add_many(deltas(0, 8))
    with pytest.raises(BufferFull, match="max_buffer=10"):
        writer.add_many(deltas(8, 3))
    writer.add_many(deltas(8, 2))
    with pytest.raises(BufferFull):
        writer.add(delta(10))
    assert writer.pending == 10
    await writer.flush()
    writer.add(delta(10))
    await writer.flush()
    assert await stored_seqs(pool) == list(range(11))


async def test_rows_of_the_wrong_width_are_refused_at_add(pool: Pool) -> None:
    writer = make_writer(pool)
    with pytest.raises(ValueError, match="row has 2 values"):
        writer.add(("a", "b"))
    assert writer.pending == 0


async def test_errors_a_retry_cannot_fix_stop_the_writer_and_keep_rows(pool: Pool) -> None:
    writer = BatchWriter(pool, "book_deltas", (*COLUMNS[:-1], "no_such_column"), max_rows=10)
    writer.add_many(deltas(0, 25))
    with pytest.raises(WriterFailed, match="no_such_column"):
        await writer.flush()
    assert writer.pending == 25
    assert writer.retries == 0
    with pytest.raises(WriterFailed):
        writer.add(delta(99))
    with pytest.raises(WriterFailed):
        await writer.aclose()


async def test_background_failure_surfaces_in_aclose(pool: Pool) -> None:
    writer = BatchWriter(pool, "no_such_table", ("x",), max_delay_s=0.01)
    writer.start()
    writer.add((1,))
    with pytest.raises(WriterFailed, match="no_such_table"):
        await asyncio.wait_for(writer.aclose(), 10)


def test_ts_from_ns_is_exact_to_the_microsecond() -> None:
    assert ts_from_ns(T0_NS + 123_456_789) == datetime(2025, 1, 1, 0, 0, 0, 123_456, tzinfo=UTC)
    assert ts_from_ns(1_999) == datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC)


def test_backoff_doubles_with_jitter_up_to_a_cap() -> None:
    delays = [backoff_delay(attempt) for attempt in range(1, 20)]
    assert 0.025 <= delays[0] <= 0.05
    assert all(delay <= 5.0 for delay in delays)
    assert delays[-1] >= 2.5


async def test_json_and_array_columns_go_through_copy(pool: Pool) -> None:
    writer = BatchWriter(
        pool,
        "signals",
        (
            *("signal_id", "ts", "strategy", "kind", "event", "legs", "edge_micros", "model_p"),
            *("kelly_fraction", "confidence", "ev_micros", "aroc", "size_centi", "reasons"),
        ),
        conflict_key=("signal_id",),
    )
    legs = [{"market": "M", "side": "yes", "action": "buy", "price": 560_000, "count": 1000}]
    row = ("s1", ts_from_ns(T0_NS), "arb", "dutch", "EV", Jsonb(legs), 30_000, 0.6)
    writer.add((*row, 0.25, 0.9, 12_000, 3.5, 1000, ["cheap", "liquid"]))
    await writer.flush()
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT legs, reasons, edge_micros FROM signals")
        assert await cur.fetchall() == [(legs, ["cheap", "liquid"], 30_000)]
