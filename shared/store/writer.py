"""Batched, idempotent, restart-proof inserts of high-rate rows.

:class:`BatchWriter` buffers rows in memory and writes them in batches with
``COPY``. One batch is one transaction: COPY into a temporary table, then
``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` into the real one. So a batch
may be retried freely: if a commit landed but its acknowledgement was lost,
the retry inserts nothing twice.

Guarantees:

* nothing is dropped: a batch leaves memory only once its transaction has
  committed; on connection or server errors it is retried, with exponential
  backoff and jitter, until it lands;
* nothing is doubled, as long as the table has a unique key (``conflict_key``)
  that identifies a row;
* rows are written in the order they were added, batch after batch;
* ``add()`` never waits for the database; when the buffer is full it raises
  :class:`BufferFull` instead of dropping anything.

Errors that a retry cannot fix (bad data, a missing table: anything that is not
a connection, server-state or serialization error) stop the writer; the rows
stay buffered and ``add()``, ``flush()`` and ``aclose()`` raise
:class:`WriterFailed`.

The writer belongs to one event loop and is not thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NoReturn, TypeAlias

import psycopg
from psycopg import sql
from psycopg_pool import PoolClosed

from shared.backoff import Backoff
from shared.store.pool import Pool

log = logging.getLogger(__name__)

Row: TypeAlias = Sequence[Any]

TRANSIENT_ERRORS: Final = (psycopg.OperationalError,)
"""Errors after which the same batch is simply tried again: lost connections,
servers shutting down or starting up, pool timeouts, deadlocks and
serialization failures (psycopg makes all of them OperationalError)."""

BACKOFF_BASE_S: Final = 0.05
BACKOFF_CAP_S: Final = 5.0
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def ts_from_ns(ns: int) -> datetime:
    """A bus timestamp (ns since the epoch) as the timestamptz we store, exact to the µs."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def backoff_delay(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): doubling, capped, jittered."""
    return Backoff(BACKOFF_BASE_S, BACKOFF_CAP_S).delay(attempt)


class BufferFull(RuntimeError):
    """More rows are waiting than the writer may hold; the rows were not added."""


class WriterFailed(RuntimeError):
    """The writer hit an error that retrying cannot fix; its rows are still buffered."""


class BatchWriter:
    """Buffers rows for ``table`` and writes them in COPY batches (see the module doc)."""

    def __init__(
        self,
        pool: Pool,
        table: str,
        columns: Sequence[str],
        *,
        conflict_key: Sequence[str] | None = None,
        max_rows: int = 5000,
        max_delay_s: float = 0.2,
        max_buffer: int = 1_000_000,
    ) -> None:
        if not columns:
            raise ValueError("BatchWriter needs at least one column")
        if not 0 < max_rows <= max_buffer:
            raise ValueError(f"need 0 < max_rows <= max_buffer, got {max_rows}, {max_buffer}")
        self.table = table
        self.columns = tuple(columns)
        self.conflict_key = tuple(conflict_key) if conflict_key is not None else None
        self.max_rows = max_rows
        self.max_delay_s = max_delay_s
        self.max_buffer = max_buffer
        self.rows_written = 0
        """Rows of committed batches (including rows the conflict key skipped)."""
        self.duplicates = 0
        """Rows the conflict key skipped because they were already in the table."""
        self.batches = 0
        self.retries = 0
        self._pool = pool
        self._buffer: deque[Row] = deque()
        self._batch: list[Row] = []  # taken from the buffer, not yet committed
        self._added = 0
        self._durable = 0
        self._lock = asyncio.Lock()
        self._wakeup = asyncio.Event()
        self._failure: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._statements = _Statements(table, self.columns, self.conflict_key)

    # --- adding rows (never waits) ------------------------------------------------

    @property
    def pending(self) -> int:
        """Rows added but not yet committed."""
        return len(self._buffer) + len(self._batch)

    def add(self, row: Row) -> None:
        """Queue one row (values in ``columns`` order)."""
        self._check_can_add(1)
        self._check_width(row)
        self._buffer.append(row)
        self._added += 1
        self._maybe_wake()

    def add_many(self, rows: Iterable[Row]) -> None:
        """Queue several rows; all of them or, on error, none."""
        batch = list(rows)
        self._check_can_add(len(batch))
        for row in batch:
            self._check_width(row)
        self._buffer.extend(batch)
        self._added += len(batch)
        self._maybe_wake()

    # --- writing ------------------------------------------------------------------

    async def flush(self) -> None:
        """Return once every row added before this call is committed."""
        target = self._added
        while True:
            self._raise_if_failed()
            async with self._lock:
                if self._durable >= target:
                    return
                if not self.pending:
                    raise RuntimeError(f"batch writer for {self.table} lost count of its rows")
                await self._write_batch()

    async def run(self, stop: asyncio.Event) -> None:
        """Write batches in the background until ``stop`` is set, then flush the rest."""
        while not stop.is_set():
            if len(self._buffer) < self.max_rows:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.max_delay_s):
                        await self._wakeup.wait()
            self._wakeup.clear()
            await self.flush()
        await self.flush()

    def start(self) -> None:
        """Run :meth:`run` as a background task until :meth:`aclose`."""
        if self._task is not None:
            raise RuntimeError(f"batch writer for {self.table} is already started")
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self.run(self._stop), name=f"batch-writer:{self.table}")

    async def aclose(self) -> None:
        """Stop the background task, if any, after writing everything buffered."""
        if self._task is None:
            await self.flush()
            return
        assert self._stop is not None
        self._stop.set()
        self._wakeup.set()
        task, self._task = self._task, None
        await task

    # --- internals ----------------------------------------------------------------

    def _check_can_add(self, count: int) -> None:
        self._raise_if_failed()
        if self.pending + count > self.max_buffer:
            raise BufferFull(
                f"batch writer for {self.table}: {self.pending} rows are waiting, "
                f"adding {count} would exceed max_buffer={self.max_buffer}; is Postgres down?"
            )

    def _check_width(self, row: Row) -> None:
        if len(row) != len(self.columns):
            raise ValueError(
                f"batch writer for {self.table}: row has {len(row)} values, "
                f"columns are {self.columns}"
            )

    def _maybe_wake(self) -> None:
        if len(self._buffer) >= self.max_rows:
            self._wakeup.set()

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise WriterFailed(
                f"batch writer for {self.table} stopped: {self._failure}"
            ) from self._failure

    async def _write_batch(self) -> None:
        """Write the current batch, retrying until it commits. Holds the lock."""
        if not self._batch:
            take = min(self.max_rows, len(self._buffer))
            self._batch = [self._buffer.popleft() for _ in range(take)]
        if not self._batch:
            return
        inserted = await self._write_with_retries(self._batch)
        self._durable += len(self._batch)
        self.rows_written += len(self._batch)
        self.duplicates += len(self._batch) - inserted
        self.batches += 1
        self._batch = []

    async def _write_with_retries(self, rows: list[Row]) -> int:
        attempt = 0
        while True:
            try:
                inserted = await self._write_once(rows)
            except PoolClosed as exc:
                self._fail(exc, len(rows))
            except TRANSIENT_ERRORS as exc:
                attempt += 1
                self.retries += 1
                delay = backoff_delay(attempt)
                log.warning(
                    "batch writer for %s: writing %d rows failed (attempt %d), retrying in "
                    "%.2f s: %s",
                    self.table,
                    len(rows),
                    attempt,
                    delay,
                    _one_line(exc),
                )
                await asyncio.sleep(delay)
                continue
            except psycopg.Error as exc:
                self._fail(exc, len(rows))
            if attempt:
                log.info("batch writer for %s: batch written after %d retries", self.table, attempt)
            return inserted

    def _fail(self, exc: psycopg.Error, rows: int) -> NoReturn:
        self._failure = exc
        log.error(
            "batch writer for %s: writing %d rows failed and will not be retried; "
            "%d rows stay buffered: %s",
            self.table,
            rows,
            self.pending,
            _one_line(exc),
        )
        raise WriterFailed(f"batch writer for {self.table} stopped: {_one_line(exc)}") from exc

    async def _write_once(self, rows: list[Row]) -> int:
        """One transaction: COPY into a temp table, insert what is new; rows inserted."""
        statements = self._statements
        async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.execute(statements.create_stage)
            async with cur.copy(statements.copy) as copy:
                for row in rows:
                    await copy.write_row(row)
            await cur.execute(statements.insert)
            return max(cur.rowcount, 0)


class _Statements:
    """The SQL of one writer, composed once."""

    STAGE: Final = sql.Identifier("_batch_writer_stage")

    def __init__(self, table: str, columns: tuple[str, ...], key: tuple[str, ...] | None) -> None:
        target = sql.Identifier(*table.split("."))
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        self.create_stage = sql.SQL(
            "CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {cols} FROM {target} WITH NO DATA"
        ).format(stage=self.STAGE, cols=cols, target=target)
        self.copy = sql.SQL("COPY {stage} ({cols}) FROM STDIN").format(stage=self.STAGE, cols=cols)
        conflict = (
            sql.SQL("ON CONFLICT DO NOTHING")
            if key is None
            else sql.SQL("ON CONFLICT ({}) DO NOTHING").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in key)
            )
        )
        self.insert = sql.SQL(
            "INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage} {conflict}"
        ).format(target=target, cols=cols, stage=self.STAGE, conflict=conflict)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
