"""Schema migrations: idempotent, serialised, and the schema they build."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from shared.store import migrate, open_pool, timescale_available
from shared.store.migrations import (
    BRIN_STEP,
    TIMESCALE_STEP,
    TIMESERIES_TABLES,
    MigrationError,
    available_migrations,
)

Conn = AsyncConnection[TupleRow]


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[Conn]:
    connection = await AsyncConnection.connect(database_url)
    yield connection
    await connection.close()


async def rows(
    conn: Conn, query: str, params: tuple[object, ...] | None = None
) -> list[tuple[Any, ...]]:
    cur = await conn.execute(query, params)
    result = await cur.fetchall()
    await conn.rollback()
    return result


async def tables(conn: Conn) -> list[tuple[Any, ...]]:
    return await rows(
        conn,
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
    )


async def expected_step(conn: Conn) -> str:
    available = await timescale_available(conn)
    await conn.rollback()
    return TIMESCALE_STEP if available else BRIN_STEP


VERSIONS = [version for version, _ in available_migrations()]


def test_packaged_migrations_are_numbered_in_order() -> None:
    versions = [version for version, _ in available_migrations()]
    assert versions[0] == "0001_init"
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)


async def test_migrating_twice_is_migrating_once(conn: Conn) -> None:
    step = await expected_step(conn)
    assert await migrate(conn) == [*VERSIONS, step]
    schema = await tables(conn)
    recorded = await rows(conn, "SELECT version, applied_at FROM schema_migrations ORDER BY 1")

    assert await migrate(conn) == []

    assert await tables(conn) == schema
    assert await rows(conn, "SELECT version, applied_at FROM schema_migrations ORDER BY 1") == (
        recorded
    )
    assert sorted(version for version, _ in recorded) == sorted([*VERSIONS, step])


async def test_concurrent_migrations_apply_each_version_once(database_url: str) -> None:
    pool = await open_pool(database_url, min_size=3, max_size=3)
    try:
        results = await asyncio.gather(*(migrate(pool) for _ in range(3)))
    finally:
        await pool.close()
    applied = [version for result in results for version in result]
    assert len(applied) == len(VERSIONS) + 1
    assert applied[0] == "0001_init"
    assert sorted(len(result) for result in results) == [0, 0, len(VERSIONS) + 1]


async def test_migrate_refuses_a_connection_inside_a_transaction(conn: Conn) -> None:
    await conn.execute("SELECT 1")
    with pytest.raises(MigrationError, match="idle connection"):
        await migrate(conn)


async def test_failed_migration_is_not_recorded_and_names_itself(
    conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    await migrate(conn)
    broken = [*available_migrations(), ("9999_broken", b"CREATE TABLE markets (x int)")]
    monkeypatch.setattr("shared.store.migrations.available_migrations", lambda: broken)
    with pytest.raises(MigrationError, match="9999_broken"):
        await migrate(conn)
    versions = [v for (v,) in await rows(conn, "SELECT version FROM schema_migrations")]
    assert "9999_broken" not in versions
    # the advisory lock was released: another session can take it at once
    async with await AsyncConnection.connect(conn.info.dsn) as other:
        cur = await other.execute("SELECT pg_try_advisory_lock(%s)", (0x6B68765F6D696772,))
        assert await cur.fetchone() == (True,)


async def test_time_series_tables_have_brin_indexes_without_timescale(conn: Conn) -> None:
    if await timescale_available(conn):
        pytest.skip("TimescaleDB is available here: hypertables instead of BRIN indexes")
    await conn.rollback()
    await migrate(conn)
    found = await rows(
        conn,
        "SELECT tablename, indexdef FROM pg_indexes"
        " WHERE schemaname = 'public' AND indexdef LIKE '%USING brin%'",
    )
    assert sorted(table for table, _ in found) == sorted(TIMESERIES_TABLES)
    assert all(str(indexdef).endswith("USING brin (ts)") for _, indexdef in found)


async def test_time_series_tables_become_hypertables_with_timescale(conn: Conn) -> None:
    if not await timescale_available(conn):
        pytest.skip("TimescaleDB is not available on this server")
    await conn.rollback()
    await migrate(conn)
    found = await rows(conn, "SELECT hypertable_name FROM timescaledb_information.hypertables")
    assert sorted(name for (name,) in found) == sorted(TIMESERIES_TABLES)
    jobs = await rows(
        conn,
        "SELECT hypertable_name, proc_name FROM timescaledb_information.jobs"
        " WHERE hypertable_name IS NOT NULL",
    )
    assert ("book_deltas", "policy_retention") in jobs
    assert ("audit_trail", "policy_retention") not in jobs
    assert ("book_deltas", "policy_compression") in jobs


async def test_unique_keys_of_time_series_tables_include_ts(conn: Conn) -> None:
    await migrate(conn)
    keys = await rows(
        conn,
        "SELECT c.relname, i.indexrelid::regclass::text,"
        " array(SELECT a.attname FROM pg_attribute a"
        "       WHERE a.attrelid = c.oid AND a.attnum = ANY(i.indkey))"
        " FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid"
        " WHERE i.indisunique AND c.relname = ANY(%s)",
        (list(TIMESERIES_TABLES),),
    )
    assert {table for table, _, _ in keys} == set(TIMESERIES_TABLES)
    for table, index, columns in keys:
        assert "ts" in columns, f"{index} of {table} lacks ts"


async def test_money_and_counts_are_integers(conn: Conn) -> None:
    await migrate(conn)
    columns = await rows(
        conn,
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public'"
        " AND (column_name LIKE '%\\_micros' OR column_name LIKE '%\\_centi')",
    )
    assert len(columns) > 20
    assert {data_type for _, _, data_type in columns} == {"bigint"}
    times = await rows(
        conn,
        "SELECT data_type FROM information_schema.columns WHERE table_schema = 'public'"
        " AND (column_name = 'ts' OR column_name LIKE '%\\_at' OR column_name LIKE '%\\_time')",
    )
    assert {data_type for (data_type,) in times} == {"timestamp with time zone"}


async def test_trade_log_joins_fills_with_their_order_and_signal(conn: Conn) -> None:
    await migrate(conn)
    now = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO signals (signal_id, ts, strategy, kind, event, legs, edge_micros,"
            " model_p, kelly_fraction, confidence, ev_micros, aroc, size_centi)"
            " VALUES ('sig1', %s, 'weather', 'model', 'EV', '[]', 30000, 0.61, 0.2, 0.9,"
            " 12000, 3.5, 1000)",
            (now,),
        )
        await conn.execute(
            "INSERT INTO orders (client_order_id, order_id, intent_id, signal_id, market, side,"
            " action, price_micros, count_centi, route, status, kelly_fraction)"
            " VALUES ('c1', 'o1', 'i1', 'sig1', 'M', 'yes', 'buy', 560000, 1000, 'maker',"
            " 'filled', 0.1)"
        )
        for trade_id, client_order_id in (("t1", "c1"), ("t2", "unknown")):
            await conn.execute(
                "INSERT INTO fills (trade_id, order_id, client_order_id, market, side, action,"
                " price_micros, count_centi, fee_micros, is_taker, ts)"
                " VALUES (%s, 'o1', %s, 'M', 'yes', 'buy', 560000, 1000, 17000, false, %s)",
                (trade_id, client_order_id, now),
            )
    log = await rows(
        conn,
        "SELECT trade_id, signal_id, strategy, kelly_fraction, ev_micros, aroc, ts"
        " FROM trade_log ORDER BY trade_id",
    )
    assert log == [
        ("t1", "sig1", "weather", 0.1, 12000, 3.5, now),
        ("t2", None, None, None, None, None, now),
    ]
