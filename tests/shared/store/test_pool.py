"""Opening pools and creating the database."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from shared.store import StoreUnavailable, ensure_database, open_pool
from shared.store.pool import describe
from tests.conftest import admin_database_url


@pytest.fixture
def missing_database() -> Iterator[str]:
    """The name of a database that does not exist yet; dropped afterwards."""
    name = f"test_missing_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(admin_database_url(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def as_url(conninfo: str) -> str:
    info = conninfo_to_dict(conninfo)
    user = info.get("user", "postgres")
    host = info.get("host", "127.0.0.1")
    port = info.get("port", "5432")
    if str(host).startswith("/"):
        return f"postgresql://{user}@/{info['dbname']}?host={host}&port={port}"
    return f"postgresql://{user}@{host}:{port}/{info['dbname']}"


def database_exists(name: str) -> bool:
    with psycopg.connect(admin_database_url()) as conn:
        cur = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
        return cur.fetchone() == (1,)


@pytest.mark.parametrize("form", ["conninfo", "url"])
async def test_ensure_database_creates_a_missing_database(missing_database: str, form: str) -> None:
    conninfo = make_conninfo(admin_database_url(), dbname=missing_database)
    target = conninfo if form == "conninfo" else as_url(conninfo)
    assert not database_exists(missing_database)

    assert await ensure_database(target) is True
    assert database_exists(missing_database)
    assert await ensure_database(target) is False

    async with await psycopg.AsyncConnection.connect(target) as conn:
        cur = await conn.execute("SELECT current_database()")
        assert await cur.fetchone() == (missing_database,)


async def test_ensure_database_leaves_an_existing_database_alone(database_url: str) -> None:
    assert await ensure_database(database_url) is False


async def test_open_pool_is_ready(database_url: str) -> None:
    pool = await open_pool(database_url, min_size=2, max_size=4)
    try:
        assert pool.get_stats()["pool_size"] == 2
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT 41 + 1")
            assert await cur.fetchone() == (42,)
    finally:
        await pool.close()


async def test_open_pool_fails_clearly_when_the_server_is_unreachable() -> None:
    url = "postgresql://postgres:secret@127.0.0.1:1/nowhere"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=r"cannot connect to Postgres at .*port=1") as info:
        await open_pool(url, timeout_s=1.0)
    assert time.monotonic() - started < 10
    assert "secret" not in str(info.value)
    assert "refused" in str(info.value).lower()


def test_describe_hides_the_password() -> None:
    assert "hunter2" not in describe("postgresql://bob:hunter2@db:5432/x")
    assert "dbname=x" in describe("postgresql://bob:hunter2@db:5432/x")


async def test_a_pool_stopped_while_opening_leaves_no_workers_behind():
    """A service stopped before Postgres answered must not keep reconnecting forever."""
    others = asyncio.all_tasks()
    opening = asyncio.create_task(open_pool("postgresql://postgres@127.0.0.1:1/none", timeout_s=5))
    await asyncio.sleep(0.3)  # the pool's workers are retrying by now
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    await asyncio.sleep(0.1)
    assert asyncio.all_tasks() - others - {asyncio.current_task()} == set()


async def backend_pid(pool) -> int:
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
        assert row is not None
        return int(row[0])


def terminate(pid: int) -> None:
    with psycopg.connect(admin_database_url(), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


async def test_a_connection_that_died_while_idle_is_replaced_not_handed_out(database_url):
    pool = await open_pool(database_url, min_size=1, max_size=1, check_after_idle_s=0.05)
    try:
        dead = await backend_pid(pool)
        terminate(dead)
        await asyncio.sleep(0.2)  # idle longer than check_after_idle_s: checked when taken
        assert await backend_pid(pool) != dead
    finally:
        await pool.close()


async def test_a_busy_connection_is_not_pinged_and_a_break_in_use_is_the_callers_to_retry(
    database_url,
):
    pool = await open_pool(database_url, min_size=1, max_size=1, check_after_idle_s=60)
    try:
        dead = await backend_pid(pool)
        terminate(dead)
        await asyncio.sleep(0.1)
        with pytest.raises(psycopg.OperationalError):  # no round trip spent checking it
            await backend_pid(pool)
        assert await backend_pid(pool) != dead  # the broken one was not returned to the pool
    finally:
        await pool.close()
