"""Leases in Redis: one active instance of a singleton service, one owner per shard.

A lease is a key holding its owner's name with a time to live. The holder
renews it every third of its lifetime and considers itself the holder only
until ``0.8 x ttl`` after the start of its last successful renewal, which ends
before Redis can let anyone else take it: two holders are never active at once
(as long as the process is not paused longer than the remaining fifth). Each
acquisition draws a fencing token that grows monotonically.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

import redis.asyncio as aioredis
import structlog

from shared.bus.connection import TRANSIENT_ERRORS, raise_if_cancelling

log = structlog.get_logger("lease")

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""

SAFETY = 0.8


class Lease:
    """A named lease held by ``owner`` for ``ttl_ms`` at a time."""

    def __init__(self, redis: aioredis.Redis, key: str, owner: str, ttl_ms: int) -> None:
        self.redis: Any = redis  # redis-py's stubs reject bytes-keyed dicts
        self.key = key
        self.owner = owner
        self.ttl_ms = ttl_ms
        self.token = 0
        self._valid_until = 0.0

    @property
    def held(self) -> bool:
        return time.monotonic() < self._valid_until

    async def try_acquire(self) -> bool:
        """Take the lease if free, or renew it if already ours."""
        started = time.monotonic()
        if await self.redis.set(self.key, self.owner, nx=True, px=self.ttl_ms):
            self.token = int(await self.redis.incr(f"{self.key}:epoch"))
            self._valid_until = started + SAFETY * self.ttl_ms / 1000
            return True
        return await self.renew()

    async def renew(self) -> bool:
        started = time.monotonic()
        renewed = await self.redis.eval(_RENEW, 1, self.key, self.owner, self.ttl_ms)
        if renewed:
            self._valid_until = started + SAFETY * self.ttl_ms / 1000
            return True
        self._valid_until = 0.0
        return False

    async def release(self) -> None:
        self._valid_until = 0.0
        with contextlib.suppress(*TRANSIENT_ERRORS):
            await self.redis.eval(_RELEASE, 1, self.key, self.owner)

    async def holder(self) -> str | None:
        value = await self.redis.get(self.key)
        return value.decode() if value is not None else None


ActiveBody = Callable[[], Coroutine[Any, Any, None]]


async def run_as_leader(
    lease: Lease,
    stop: asyncio.Event,
    active: ActiveBody,
    on_role: Callable[[str], None] | None = None,
) -> None:
    """Stand by until the lease is ours, run ``active`` while it stays ours.

    ``active`` is cancelled the moment the lease can no longer be trusted; the
    instance then stands by again.
    """
    interval = lease.ttl_ms / 3000
    role = ""

    def set_role(new: str) -> None:
        nonlocal role
        if new != role:
            role = new
            log.info("role", lease=lease.key, role=new, fencing=lease.token)
            if on_role:
                on_role(new)

    while not stop.is_set():
        set_role("standby")
        if not await _acquire_quietly(lease):
            await _sleep_or_stop(stop, interval)
            continue
        set_role("active")
        body = asyncio.create_task(active(), name=f"active:{lease.key}")
        try:
            await _hold(lease, stop, body, interval)
            raise_if_cancelling()
        finally:
            if not body.done():
                body.cancel()
            await asyncio.gather(body, return_exceptions=True)
            if body.done() and not body.cancelled() and body.exception() is not None:
                log.error("active body failed", lease=lease.key, error=repr(body.exception()))
    await lease.release()
    set_role("stopped")


async def _hold(
    lease: Lease, stop: asyncio.Event, body: asyncio.Task[None], interval: float
) -> None:
    while not stop.is_set() and not body.done():
        await _sleep_or_stop(stop, interval, body)
        if stop.is_set() or body.done():
            return
        renewed = await _acquire_quietly(lease)
        raise_if_cancelling()
        if not renewed and not lease.held:
            log.warning("lease lost", lease=lease.key)
            return
        if not lease.held:
            log.warning("lease expired locally", lease=lease.key)
            return


async def _acquire_quietly(lease: Lease) -> bool:
    try:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
        async with asyncio.timeout(lease.ttl_ms / 3000):
            return await lease.try_acquire()
    except (TimeoutError, *TRANSIENT_ERRORS) as exc:
        raise_if_cancelling()
        log.warning("lease renewal failed", lease=lease.key, error=str(exc) or type(exc).__name__)
        return False


async def _sleep_or_stop(
    stop: asyncio.Event, seconds: float, body: asyncio.Task[None] | None = None
) -> None:
    waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    if body is not None:
        waiters.append(body)
    _, pending = await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters[:1]:
        if waiter in pending:
            waiter.cancel()
