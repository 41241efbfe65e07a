"""Following a stream without a consumer group: every replica sees every entry.

State that each process needs whole (the market catalog, outside observations,
the portfolio, control commands) is read with plain XREAD: no group, no ack,
nothing pending. A follower starts from the beginning of the stream (``"0"``,
to rebuild state), from its newest entry (``LAST``: only the current value
matters) or from now (``"$"``). Handlers must be idempotent and last-writer-wins,
since a reconnect resumes from the last id seen and entries are never lost,
but a handler that failed half-way will not see the entry again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final

import redis.asyncio as aioredis
import structlog

from shared.backoff import Backoff
from shared.bus.codec import Codec, DecodeError
from shared.bus.connection import TRANSIENT_ERRORS, raise_if_cancelling
from shared.messages import Message
from shared.streams import StreamSpec, stream_key

log = structlog.get_logger("bus")

LAST: Final = "last"
"""Start at the newest entry already in the stream (or at its start when empty)."""
NOW: Final = "$"
"""Start after the newest entry already in the stream: only what comes from now on."""

FollowHandler = Callable[[list[Message]], Awaitable[None] | None]


class Follower:
    """Reads one non-sharded stream from ``start`` on, handing batches of messages over."""

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        spec: StreamSpec,
        handler: FollowHandler,
        *,
        start: str = "0",
        batch: int = 512,
        block_ms: int = 1000,
        shards: int = 0,
    ) -> None:
        """``shards``: for a sharded stream, how many (every shard is followed)."""
        self.redis: Any = redis
        keys = (
            [stream_key(prefix, spec, shard) for shard in range(shards)]
            if spec.sharded
            else [stream_key(prefix, spec)]
        )
        self.cursors = dict.fromkeys(keys, start)
        self.spec = spec
        self.handler = handler
        self.codec = Codec(spec)
        self.batch = batch
        self.block_ms = block_ms
        self.handled = 0
        self.malformed = 0
        self.failed = 0
        self.caught_up = asyncio.Event()
        """Set once the entries present at start have been handled."""

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff()
        while not stop.is_set():
            try:
                await self.poll_once()
                raise_if_cancelling()
                backoff.reset()
            except TRANSIENT_ERRORS as exc:
                log.warning("follower waiting for redis", stream=self.spec.name, error=str(exc))
                await backoff.wait()
            except Exception:  # a handler's bug must not stop the stream: logged, skipped
                self.failed += 1
                log.exception("follower handler failed; entries skipped", stream=self.spec.name)

    async def poll_once(self) -> int:
        for key, cursor in self.cursors.items():
            if cursor in (LAST, NOW):
                # "$" must become an id once: XREAD with "$" again would miss what came between
                newest = await self.redis.xrevrange(key, count=1)
                self.cursors[key] = newest[0][0].decode() if newest else "0"
                if newest and cursor == LAST:
                    await self._handle(key, newest)
        block = self.block_ms if self.caught_up.is_set() else None
        reply = await self.redis.xread(self.cursors, count=self.batch, block=block)
        handled = 0
        for raw_key, entries in reply or []:
            await self._handle(raw_key.decode(), entries)
            handled += len(entries)
        if not handled:
            self.caught_up.set()
        return handled

    async def _handle(self, key: str, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        messages: list[Message] = []
        for raw_id, fields in entries:
            self.cursors[key] = raw_id.decode()
            try:
                messages.append(self.codec.decode_entry(fields))
            except DecodeError as exc:
                self.malformed += 1
                log.error("malformed entry skipped", stream=key, id=raw_id.decode(), error=str(exc))
        if messages:
            result = self.handler(messages)
            if result is not None:
                await result
            self.handled += len(messages)
