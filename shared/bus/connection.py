"""Redis connections, and the backoff every bus loop uses when Redis goes away."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.backoff import Backoff

log = structlog.get_logger("bus")

T = TypeVar("T")

TRANSIENT_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
"""Errors after which the same call may succeed once Redis is back."""


def raise_if_cancelling() -> None:
    """Re-raise a cancellation that was swallowed on its way up.

    A cancelled task must stop. redis-py sometimes returns normally from a command
    whose task was cancelled meanwhile, and a cancel landing as a timeout fires can
    come out as TimeoutError on 3.11; loops call this after such awaits.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def connect_redis(url: str) -> aioredis.Redis:
    """An asyncio Redis client (binary replies; payloads are MessagePack)."""
    return aioredis.Redis.from_url(
        url,
        decode_responses=False,
        socket_connect_timeout=5,
        socket_keepalive=True,
        health_check_interval=30,
    )


async def retry_transient(
    call: Callable[[], Awaitable[T]], what: str, *, attempts: int | None = None
) -> T:
    """Run ``call`` until it succeeds, backing off while Redis is unreachable.

    ``attempts=None`` retries forever: the caller's effect must not be lost.
    """
    backoff = Backoff()
    while True:
        try:
            return await call()
        except TRANSIENT_ERRORS as exc:
            raise_if_cancelling()
            if attempts is not None and backoff.failures + 1 >= attempts:
                raise
            log.warning(
                "redis unavailable, retrying", op=what, error=str(exc), attempt=backoff.failures + 1
            )
            await backoff.wait()
