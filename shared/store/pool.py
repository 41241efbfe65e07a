"""Connections to Postgres: an async pool, and creating the database itself.

URLs and key=value conninfo strings both work everywhere, and so do unix
socket hosts (``postgresql://postgres@/db?host=/path/to/socket/dir``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Final, TypeAlias

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

log = logging.getLogger(__name__)

Pool: TypeAlias = AsyncConnectionPool[AsyncConnection[TupleRow]]

ADMIN_DATABASE: Final = "postgres"


class StoreUnavailable(ConnectionError):
    """Postgres cannot be reached; the message says where and why."""


def describe(url: str) -> str:
    """The conninfo without its password, fit for logs and error messages."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparsable conninfo>"
    info.pop("password", None)
    return make_conninfo(**info)  # type: ignore[arg-type]


CHECK_AFTER_IDLE_S: Final = 1.0


class IdleCheck:
    """Check a connection taken from the pool only if it sat idle for a while.

    A check is a round trip; one per statement doubled the cost of execution's
    writes under load. A connection returned moments ago worked moments ago; one
    that sat through a server restart sat idle, and is checked. One that breaks
    in use fails its statement, which the caller retries as transient.
    """

    def __init__(self, idle_s: float = CHECK_AFTER_IDLE_S) -> None:
        self.idle_s = idle_s
        self._returned: weakref.WeakKeyDictionary[AsyncConnection[TupleRow], float] = (
            weakref.WeakKeyDictionary()
        )
        self.checks = 0

    async def returned(self, conn: AsyncConnection[TupleRow]) -> None:
        self._returned[conn] = time.monotonic()

    async def check(self, conn: AsyncConnection[TupleRow]) -> None:
        last = self._returned.get(conn)
        if last is not None and time.monotonic() - last < self.idle_s:
            return
        self.checks += 1
        await AsyncConnectionPool.check_connection(conn)


async def open_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    timeout_s: float = 10.0,
    name: str = "store",
    check_after_idle_s: float = CHECK_AFTER_IDLE_S,
) -> Pool:
    """An opened pool with ``min_size`` connections ready.

    A connection taken from the pool after sitting idle is checked first, so a
    pool survives a server restart: broken connections are replaced, not handed
    out (see IdleCheck). Raises StoreUnavailable when no connection can be made
    within ``timeout_s``.
    """
    idle = IdleCheck(check_after_idle_s)
    pool: Pool = AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        name=name,
        check=idle.check,
        reset=idle.returned,
        kwargs={"connect_timeout": max(1, int(timeout_s))},
    )
    try:
        await pool.open(wait=True, timeout=timeout_s)
    except asyncio.CancelledError:
        await pool.close()  # stopped while opening: no connection workers left behind
        raise
    except PoolTimeout:
        await pool.close()
        reason = (
            await _connect_error(url, timeout_s)
            or "the pool timed out, but a direct connection succeeds"
        )
        raise StoreUnavailable(
            f"cannot connect to Postgres at {describe(url)!r} within {timeout_s:g} s: {reason}"
        ) from None
    return pool


async def ensure_database(url: str, *, timeout_s: float = 10.0) -> bool:
    """Create the database ``url`` names if it does not exist; True if created.

    The database is created from the ``postgres`` database of the same server.
    Safe to call from several processes at once.
    """
    dbname = conninfo_to_dict(url).get("dbname")
    if not dbname or dbname == ADMIN_DATABASE:
        return False
    admin_url = make_conninfo(url, dbname=ADMIN_DATABASE)
    try:
        conn = await AsyncConnection.connect(
            admin_url, autocommit=True, connect_timeout=max(1, int(timeout_s))
        )
    except psycopg.OperationalError as exc:
        if await _connect_error(url, timeout_s) is None:
            return False  # no access to the postgres database, but ours exists
        raise StoreUnavailable(f"cannot connect to {describe(admin_url)!r}: {exc}") from exc
    async with conn:
        return await _create_database(conn, str(dbname))


async def _create_database(conn: AsyncConnection[TupleRow], dbname: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
    if await cur.fetchone() is not None:
        return False
    try:
        await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    except psycopg.errors.DuplicateDatabase:
        return False  # another process created it first
    log.info("created database %s", dbname)
    return True


async def _connect_error(url: str, timeout_s: float) -> str | None:
    """Why a direct connection to ``url`` fails; None if it succeeds."""
    try:
        conn = await AsyncConnection.connect(url, connect_timeout=max(1, int(timeout_s)))
    except psycopg.Error as exc:
        return " ".join(str(exc).split())
    await conn.close()
    return None
