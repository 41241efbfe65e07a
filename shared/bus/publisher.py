"""Publishing to the bus: XADD with an approximate MAXLEN trim."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
import structlog
from prometheus_client import Counter

from shared import metrics
from shared.backoff import Backoff
from shared.bus.codec import PAYLOAD_FIELD, Codec
from shared.bus.connection import TRANSIENT_ERRORS, retry_transient
from shared.messages import Message
from shared.streams import StreamSpec, shard_of, stream_key

log = structlog.get_logger("bus")


class Publisher:
    """Writes messages to streams; retries through Redis outages so nothing is lost.

    Delivery is at-least-once: a reply lost after a successful XADD makes the
    retry add the message again, and consumers are idempotent for that reason.
    """

    def __init__(self, redis: aioredis.Redis, prefix: str, *, shards: int, hop: str = "") -> None:
        self.redis: Any = redis  # redis-py's stubs reject bytes-keyed dicts
        self.prefix = prefix
        self.shards = shards
        self.hop = hop
        """If set, every published message is stamped with this hop name."""
        self._codecs: dict[str, Codec] = {}
        self._counters: dict[str, Counter] = {}
        self.published = 0

    def codec(self, spec: StreamSpec) -> Codec:
        codec = self._codecs.get(spec.name)
        if codec is None:
            codec = self._codecs[spec.name] = Codec(spec)
        return codec

    def count(self, spec: StreamSpec, n: int = 1) -> None:
        """Count ``n`` messages published to ``spec`` (``khv_bus_published_total``)."""
        counter = self._counters.get(spec.name)
        if counter is None:
            counter = metrics.PUBLISHED.labels(self.hop or "unknown", spec.name)
            self._counters[spec.name] = counter
        counter.inc(n)

    def key_for(self, spec: StreamSpec, event: str | None = None) -> str:
        """The stream key a message goes to; sharded streams need the event ticker."""
        if not spec.sharded:
            return stream_key(self.prefix, spec)
        if event is None:
            raise ValueError(f"stream {spec.name!r} is sharded by event: pass event=")
        return stream_key(self.prefix, spec, shard_of(event, self.shards))

    def _fields(self, spec: StreamSpec, message: Message) -> dict[bytes, bytes]:
        if self.hop:
            message.stamp(self.hop)
        return {PAYLOAD_FIELD: self.codec(spec).encode(message)}

    async def publish(self, spec: StreamSpec, message: Message, *, event: str | None = None) -> str:
        """Append one message; returns its stream id."""
        key = self.key_for(spec, event)
        fields = self._fields(spec, message)

        async def xadd() -> bytes:
            result: bytes = await self.redis.xadd(
                key,
                fields,
                maxlen=spec.maxlen,
                approximate=True,
            )
            return result

        entry_id = await retry_transient(xadd, f"xadd {key}")
        self.published += 1
        self.count(spec)
        return entry_id.decode()

    async def publish_many(
        self, spec: StreamSpec, messages: Sequence[Message], *, events: Sequence[str] | None = None
    ) -> list[str]:
        """Append many messages in one pipelined round trip."""
        if spec.sharded and (events is None or len(events) != len(messages)):
            raise ValueError(f"stream {spec.name!r} is sharded: one event per message")
        entries = [
            (self.key_for(spec, events[i] if events else None), self._fields(spec, message))
            for i, message in enumerate(messages)
        ]

        async def pipelined() -> list[bytes]:
            pipe = self.redis.pipeline(transaction=False)
            for key, fields in entries:
                pipe.xadd(key, fields, maxlen=spec.maxlen, approximate=True)
            result: list[bytes] = await pipe.execute()
            return result

        ids = await retry_transient(pipelined, f"xadd x{len(entries)} {spec.name}")
        self.published += len(ids)
        self.count(spec, len(ids))
        return [entry_id.decode() for entry_id in ids]


class ObserverPublisher:
    """Fire-and-forget publishing for observers (recording, the dashboard).

    ``offer`` never awaits: messages go to a bounded queue drained by a
    background task, and when Redis is slow or gone the oldest are dropped
    (and counted) rather than slowing the trading path.
    """

    def __init__(self, publisher: Publisher, *, capacity: int = 10_000) -> None:
        self.publisher = publisher
        self._queue: asyncio.Queue[tuple[StreamSpec, Message, str | None]] = asyncio.Queue(capacity)
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None

    def offer(self, spec: StreamSpec, message: Message, *, event: str | None = None) -> None:
        if self._queue.full():
            dropped, _, _ = self._queue.get_nowait()
            self._dropped(dropped)
        self._queue.put_nowait((spec, message, event))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="observer-publisher")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _dropped(self, spec: StreamSpec) -> None:
        self.dropped += 1
        metrics.OBSERVER_DROPPED.labels(self.publisher.hop or "unknown", spec.name).inc()

    async def _drain(self) -> None:
        backoff = Backoff()
        while True:
            spec, message, event = await self._queue.get()
            try:
                key = self.publisher.key_for(spec, event)
                await self.publisher.redis.xadd(
                    key,
                    self.publisher._fields(spec, message),
                    maxlen=spec.maxlen,
                    approximate=True,
                )
                self.publisher.count(spec)
                backoff.reset()
            except TRANSIENT_ERRORS as exc:
                self._dropped(spec)
                log.warning("observer publish failed, dropped", stream=spec.name, error=str(exc))
                await backoff.wait()
