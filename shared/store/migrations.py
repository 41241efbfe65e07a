"""Schema migrations: numbered SQL files, then the time-series step.

``migrations/NNNN_name.sql`` are applied in order, each in its own transaction,
and recorded in ``schema_migrations`` under their file stem (``0001_init``).
Then the time-series tables get their storage: hypertables with compression
and retention policies when the ``timescaledb`` extension is available, plain
tables with BRIN indexes on ``ts`` otherwise. That step is recorded too
(``timeseries-v2:timescaledb`` or ``timeseries-v2:brin``) and is idempotent.

A session advisory lock serialises concurrent ``migrate()`` calls, so services
starting together apply each migration exactly once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from typing import Final

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow

from shared.backoff import Backoff
from shared.store.pool import Pool, StoreUnavailable, ensure_database, open_pool

log = logging.getLogger(__name__)

LOCK_KEY: Final = 0x6B68765F6D696772
"""pg_advisory_lock key of migrations (ASCII "khv_migr")."""

TIMESERIES_TABLES: Final = (
    "market_snapshots",
    "book_deltas",
    "portfolio_snapshots",
    "audit_trail",
    "market_trades",
    "book_status",
)
"""Tables keyed by time; each has a ``ts timestamptz`` column in its unique key."""

TIMESCALE_STEP: Final = "timeseries-v2:timescaledb"
BRIN_STEP: Final = "timeseries-v2:brin"
"""v2 added market_trades and book_status; a v1 database gets them on its next start."""

_SEGMENT_BY: Final[Mapping[str, str]] = {
    "market_snapshots": "market",
    "book_deltas": "market",
    "market_trades": "market",
}
_FILE_NAME = re.compile(r"^(\d{4}_[a-z0-9_]+)\.sql$")

Connection = AsyncConnection[TupleRow]


def _default_retention() -> dict[str, timedelta | None]:
    return {"book_deltas": timedelta(days=90)}


@dataclass(frozen=True)
class TimescalePolicy:
    """How TimescaleDB stores the time-series tables (ignored without TimescaleDB).

    Tables missing from ``retain`` are kept forever. Policies are set when the
    time-series step first runs; change them later with TimescaleDB's own
    ``remove_*_policy`` / ``add_*_policy``.
    """

    chunk_interval: timedelta = timedelta(days=1)
    compress_after: timedelta | None = timedelta(days=7)
    retain: Mapping[str, timedelta | None] = field(default_factory=_default_retention)


class MigrationError(RuntimeError):
    """A migration could not be applied; the message names it."""


def available_migrations() -> list[tuple[str, bytes]]:
    """The packaged SQL migrations as (version, sql), in order."""
    folder = resources.files(__package__ or "shared.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is not None:
            found.append((match.group(1), entry.read_bytes()))
    return sorted(found)


async def migrate(target: Connection | Pool, *, policy: TimescalePolicy | None = None) -> list[str]:
    """Bring the schema up to date; return the versions applied by this call."""
    if isinstance(target, AsyncConnection):
        return await _migrate(target, policy or TimescalePolicy())
    async with target.connection() as conn:
        return await _migrate(conn, policy or TimescalePolicy())


async def timescale_available(conn: Connection) -> bool:
    """Whether the server can install the ``timescaledb`` extension."""
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')"
    )
    row = await cur.fetchone()
    return bool(row and row[0])


async def applied_migrations(conn: Connection) -> list[str]:
    """Versions recorded in ``schema_migrations``, in order."""
    cur = await conn.execute("SELECT version FROM schema_migrations ORDER BY version")
    return [str(version) for (version,) in await cur.fetchall()]


async def _migrate(conn: Connection, policy: TimescalePolicy) -> list[str]:
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise MigrationError("migrate() needs an idle connection (commit or roll back first)")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        async with conn.transaction():
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = set(await applied_migrations(conn))
        applied = await _apply_files(conn, done)
        step = await _apply_timeseries(conn, done, policy)
        return applied + ([step] if step else [])
    finally:
        if not conn.closed:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


async def _apply_files(conn: Connection, done: set[str]) -> list[str]:
    applied = []
    for version, text in available_migrations():
        if version in done:
            continue
        try:
            async with conn.transaction():
                await conn.execute(text)
                await _record(conn, version)
        except psycopg.Error as exc:
            raise MigrationError(f"migration {version} failed: {exc}") from exc
        log.info("applied migration %s", version)
        applied.append(version)
    return applied


async def _apply_timeseries(
    conn: Connection, done: set[str], policy: TimescalePolicy
) -> str | None:
    if TIMESCALE_STEP in done:
        return None
    async with conn.transaction():
        available = await timescale_available(conn)
    if available and await _try_timescale(conn, policy):
        return TIMESCALE_STEP
    if BRIN_STEP in done:
        return None
    async with conn.transaction():
        for table in TIMESERIES_TABLES:
            await conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING brin (ts)").format(
                    sql.Identifier(f"{table}_ts_brin"), sql.Identifier(table)
                )
            )
        await _record(conn, BRIN_STEP)
    log.info("time-series tables are plain tables with BRIN indexes (no TimescaleDB)")
    return BRIN_STEP


async def _try_timescale(conn: Connection, policy: TimescalePolicy) -> bool:
    try:
        async with conn.transaction():
            await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            for table in TIMESERIES_TABLES:
                await _make_hypertable(conn, table, policy)
            await _record(conn, TIMESCALE_STEP)
    except psycopg.Error as exc:
        # Installed but unusable, typically not in shared_preload_libraries.
        log.warning("TimescaleDB is available but could not be set up, using plain tables: %s", exc)
        return False
    log.info("time-series tables are TimescaleDB hypertables")
    return True


async def _is_hypertable(conn: Connection, table: str) -> bool:
    found = await (
        await conn.execute(
            "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = %s",
            (table,),
        )
    ).fetchone()
    return found is not None


async def _make_hypertable(conn: Connection, table: str, policy: TimescalePolicy) -> None:
    if await _is_hypertable(conn, table):  # made by an earlier version of this step
        return
    await conn.execute(
        sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(f"{table}_ts_brin"))
    )
    await conn.execute(
        "SELECT create_hypertable(%s::regclass, 'ts', chunk_time_interval => %s,"
        " if_not_exists => TRUE, migrate_data => TRUE)",
        (table, policy.chunk_interval),
    )
    if policy.compress_after is not None:
        await _enable_compression(conn, table, policy.compress_after)
    retain = policy.retain.get(table)
    if retain is not None:
        await conn.execute(
            "SELECT add_retention_policy(%s::regclass, drop_after => %s, if_not_exists => TRUE)",
            (table, retain),
        )


async def _enable_compression(conn: Connection, table: str, after: timedelta) -> None:
    options: list[sql.Composable] = [
        sql.SQL("timescaledb.compress"),
        sql.SQL("timescaledb.compress_orderby = 'ts DESC'"),
    ]
    segment_by = _SEGMENT_BY.get(table)
    if segment_by is not None:
        options.append(
            sql.SQL("timescaledb.compress_segmentby = {}").format(sql.Literal(segment_by))
        )
    await conn.execute(
        sql.SQL("ALTER TABLE {} SET ({})").format(
            sql.Identifier(table), sql.SQL(", ").join(options)
        )
    )
    await conn.execute(
        "SELECT add_compression_policy(%s::regclass, compress_after => %s, if_not_exists => TRUE)",
        (table, after),
    )


async def _record(conn: Connection, version: str) -> None:
    await conn.execute(
        "INSERT INTO schema_migrations (version) VALUES (%s) ON CONFLICT DO NOTHING", (version,)
    )


async def open_migrated(url: str, *, max_size: int = 4, what: str = "service") -> Pool:
    """Wait for Postgres (saying so, with backoff), open a pool, bring the schema up to date."""
    backoff = Backoff(base_s=1.0, cap_s=30.0)
    while True:
        try:
            await ensure_database(url)
            pool = await open_pool(url, max_size=max_size)
        except StoreUnavailable as exc:
            log.warning("%s waiting for postgres: %s", what, exc)
            await backoff.wait()
            continue
        try:
            await migrate(pool)
            return pool
        except BaseException as exc:
            await pool.close()  # a failed or cancelled start leaves no pool behind
            if not isinstance(exc, StoreUnavailable):
                raise
            log.warning("%s waiting for postgres: %s", what, exc)
            await backoff.wait()
