"""Consuming a stream through a consumer group, losing nothing and doubling nothing.

* Entries are read in batches (XREADGROUP ... BLOCK) and acked only after the
  handler returned, i.e. after its effect is durable.
* On start, and after a failure, the consumer first re-reads its own pending
  entries; every ``claim_every_ms`` it takes over entries that another
  (dead) consumer left pending longer than ``claim_idle_ms`` (XAUTOCLAIM).
* An entry that cannot be decoded, or whose handler failed ``max_failures``
  times, goes to the dead-letter stream with the reason, is acked, and the
  consumer carries on. Transient errors (Redis or Postgres unreachable) are
  retried with backoff and never count as failures.

Delivery is at-least-once; handlers are idempotent (keyed by message or business
id), so each effect happens exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
import redis.asyncio as aioredis
import structlog
from prometheus_client import Histogram
from redis.exceptions import ResponseError

from shared import metrics
from shared.backoff import Backoff
from shared.bus.codec import PAYLOAD_FIELD, Codec, DecodeError
from shared.bus.connection import (
    TRANSIENT_ERRORS,
    raise_if_cancelling,
    retry_transient,
)
from shared.messages import DeadLetter, Message
from shared.streams import DEAD_LETTERS, StreamSpec, stream_key

log = structlog.get_logger("bus")

RETRY_DELAY_S = 0.05


class RetryLater(Exception):
    """Raised by a handler whose dependency is down: retry, do not count a failure."""


TRANSIENT = (*TRANSIENT_ERRORS, RetryLater, psycopg.OperationalError)


@dataclass(slots=True)
class Delivery:
    """One decoded entry handed to a handler."""

    stream: str
    id: str
    message: Message


Handler = Callable[[list[Delivery]], Awaitable[None]]
Entries = list[tuple[bytes, dict[bytes, bytes] | None]]


class Consumer:
    """One member of a consumer group on one stream (all its shards, or some)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        spec: StreamSpec,
        *,
        group: str,
        name: str,
        handler: Handler,
        shards: Iterable[int] | None = None,
        batch: int = 256,
        block_ms: int = 1000,
        claim_idle_ms: int = 15_000,
        claim_every_ms: int = 5_000,
        max_failures: int = 5,
    ) -> None:
        self.redis: Any = redis  # redis-py's stubs reject bytes-keyed dicts
        self.prefix = prefix
        self.spec = spec
        self.group = group
        self.name = name
        self.handler = handler
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.claim_every_ms = claim_every_ms
        self.max_failures = max_failures
        self.codec = Codec(spec)
        self._dead_key = stream_key(prefix, DEAD_LETTERS)
        self._dead_codec = Codec(DEAD_LETTERS)
        self._keys: list[str] = []
        self._ready: set[str] = set()
        self._backlog: dict[str, bytes] = {}
        """Keys whose own pending entries must be re-read, with the read cursor."""
        self._failures: dict[str, int] = {}
        self._next_claim = 0.0
        self._stop = asyncio.Event()
        self.handled = 0
        self.dead_lettered = 0
        labels = (spec.name, group)
        self._consumed = metrics.CONSUMED.labels(*labels)
        self._errors = metrics.HANDLER_ERRORS.labels(*labels)
        self._retries = metrics.HANDLER_RETRIES.labels(*labels)
        self._dead = metrics.DEAD_LETTERED.labels(*labels)
        self._reclaimed = metrics.RECLAIMED.labels(*labels)
        self._handler_seconds = metrics.HANDLER_SECONDS.labels(*labels)
        self._hop_latency: dict[str, Histogram] = {}
        self.set_shards(shards)

    # --- which streams --------------------------------------------------------------

    @property
    def keys(self) -> list[str]:
        return list(self._keys)

    def set_shards(self, shards: Iterable[int] | None) -> None:
        """Consume these shards from now on (all of a non-sharded stream: None)."""
        if self.spec.sharded:
            wanted = sorted(set(shards or ()))
            keys = [stream_key(self.prefix, self.spec, shard) for shard in wanted]
        else:
            keys = [stream_key(self.prefix, self.spec)]
        for key in keys:
            if key not in self._keys:
                self._backlog[key] = b"0"
        for key in set(self._keys) - set(keys):
            self._backlog.pop(key, None)
        self._keys = keys
        self._next_claim = 0.0

    # --- the loop ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, riding out Redis outages."""
        sampler = asyncio.create_task(self._sample_every(stop), name=f"lag:{self.spec.name}")
        try:
            await self._consume(stop)
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
            for gauge in (metrics.CONSUMER_LAG, metrics.PENDING):
                with contextlib.suppress(KeyError):  # a stopped consumer reports nothing
                    gauge.remove(self.spec.name, self.group)

    async def _consume(self, stop: asyncio.Event) -> None:
        self._stop = stop
        backoff = Backoff()
        while not stop.is_set():
            try:
                await self.poll_once()
                raise_if_cancelling()
                backoff.reset()
            except TRANSIENT as exc:
                log.warning(
                    "consumer waiting for redis",
                    stream=self.spec.name,
                    group=self.group,
                    error=str(exc) or type(exc).__name__,
                )
                self._restart_after_outage()
                await backoff.wait()
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                log.warning(
                    "consumer group vanished, recreating", stream=self.spec.name, group=self.group
                )
                self._restart_after_outage()

    def _restart_after_outage(self) -> None:
        self._ready.clear()
        self._backlog = dict.fromkeys(self._keys, b"0")
        self._next_claim = 0.0

    async def poll_once(self) -> int:
        """One step: reclaim if due, else read own backlog or new entries. Returns count."""
        if not self._keys:
            await asyncio.sleep(self.block_ms / 1000)
            return 0
        await self._ensure_groups()
        if time.monotonic() >= self._next_claim:
            self._next_claim = time.monotonic() + self.claim_every_ms / 1000
            claimed = await self.reclaim()
            if claimed:
                return claimed
        if self._backlog:
            return await self._read_backlog()
        reply = await self.redis.xreadgroup(
            self.group,
            self.name,
            dict.fromkeys(self._keys, ">"),
            count=self.batch,
            block=self.block_ms,
        )
        return await self._process_reply(reply, first=True)

    async def _ensure_groups(self) -> None:
        for key in self._keys:
            if key in self._ready:
                continue
            try:
                await self.redis.xgroup_create(key, self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._ready.add(key)

    async def _read_backlog(self) -> int:
        streams = {key: cursor for key, cursor in self._backlog.items()}
        reply = await self.redis.xreadgroup(
            self.group,
            self.name,
            streams,
            count=self.batch,
        )
        for key_raw, entries in reply or []:
            key = key_raw.decode()
            if entries:
                self._backlog[key] = entries[-1][0]
            else:
                self._backlog.pop(key, None)
        return await self._process_reply(reply)

    async def _process_reply(self, reply: Any, *, first: bool = False) -> int:
        count = 0
        for key_raw, entries in reply or []:
            count += await self._process(key_raw.decode(), entries, first=first)
        return count

    # --- handling ---------------------------------------------------------------------

    async def _process(self, key: str, entries: Entries, *, first: bool = False) -> int:
        """Decode and handle entries; ``first``: their first delivery (hop latency is taken)."""
        deliveries: list[Delivery] = []
        settled: list[bytes] = []
        now_ns = time.time_ns()
        for raw_id, fields in entries:
            if not fields:
                settled.append(raw_id)  # trimmed away before we got to it
                continue
            try:
                message = self.codec.decode_entry(fields)
            except DecodeError as exc:
                await self._dead_letter(
                    key, raw_id.decode(), str(exc), fields.get(PAYLOAD_FIELD, b""), 1
                )
                settled.append(raw_id)
                continue
            deliveries.append(Delivery(key, raw_id.decode(), message))
            if first and message.hops:
                self._observe_hop(message, now_ns)
        if settled:
            await self._ack(key, settled)
        if deliveries:
            await self._handle(key, deliveries)
        return len(entries)

    def _observe_hop(self, message: Message, now_ns: int) -> None:
        """Previous hop's stamp to now, as ``<previous hop>-><group>`` (e.g. ingest->strategy)."""
        last = message.hops[-1]
        histogram = self._hop_latency.get(last.name)
        if histogram is None:
            histogram = metrics.HOP_LATENCY.labels(f"{last.name}->{self.group}")
            self._hop_latency[last.name] = histogram
        histogram.observe(max(0, now_ns - last.ts_ns) / 1e9)

    async def _handle(self, key: str, deliveries: list[Delivery]) -> None:
        try:
            with self._handler_seconds.time():
                await self._call_handler(deliveries)
        except Exception:
            if len(deliveries) == 1:
                await self._failed(key, deliveries[0])
                return
            for delivery in deliveries:  # isolate the poison entry, keep the rest
                await self._handle(key, [delivery])
            return
        await self._ack(key, [d.id.encode() for d in deliveries])
        self.handled += len(deliveries)
        self._consumed.inc(len(deliveries))
        for delivery in deliveries:
            self._failures.pop(delivery.id, None)

    async def _call_handler(self, deliveries: list[Delivery]) -> None:
        """Run the handler, riding out transient errors on the same in-memory batch.

        Retrying in memory (not by re-reading the pending list) keeps the
        delivery counter for what it is meant for: spotting crash loops.
        """
        backoff = Backoff()
        while True:
            try:
                await self.handler(deliveries)
                return
            except TRANSIENT as exc:
                if self._stop.is_set():
                    raise
                self._retries.inc()
                log.warning(
                    "handler dependency unavailable, retrying",
                    stream=self.spec.name,
                    group=self.group,
                    error=str(exc) or type(exc).__name__,
                    attempt=backoff.failures + 1,
                )
                await backoff.wait()

    async def _failed(self, key: str, delivery: Delivery) -> None:
        failures = self._failures.get(delivery.id, 0) + 1
        self._errors.inc()
        log.exception(
            "handler failed",
            stream=self.spec.name,
            group=self.group,
            message_id=delivery.id,
            failures=failures,
        )
        if failures >= self.max_failures:
            self._failures.pop(delivery.id, None)
            payload = self.codec.encode(delivery.message)
            await self._dead_letter(
                key, delivery.id, f"handler failed {failures} times", payload, failures
            )
            await self._ack(key, [delivery.id.encode()])
            return
        self._failures[delivery.id] = failures
        self._backlog[key] = b"0"
        await asyncio.sleep(RETRY_DELAY_S * failures)

    async def _ack(self, key: str, ids: list[bytes]) -> None:
        async def xack() -> int:
            acked: int = await self.redis.xack(key, self.group, *ids)
            return acked

        await retry_transient(xack, f"xack {key}")

    async def _dead_letter(
        self, key: str, message_id: str, reason: str, payload: bytes, failures: int
    ) -> None:
        letter = DeadLetter(
            stream=key,
            group=self.group,
            message_id=message_id,
            reason=reason,
            payload=payload,
            failures=failures,
        )
        fields = {PAYLOAD_FIELD: self._dead_codec.encode(letter)}

        async def xadd() -> bytes:
            result: bytes = await self.redis.xadd(
                self._dead_key,
                fields,
                maxlen=DEAD_LETTERS.maxlen,
                approximate=True,
            )
            return result

        await retry_transient(xadd, "xadd dead letter")
        self.dead_lettered += 1
        self._dead.inc()
        log.error(
            "dead-lettered", stream=key, group=self.group, message_id=message_id, reason=reason
        )

    # --- taking over from dead consumers ------------------------------------------------

    async def reclaim(self) -> int:
        """Claim and handle entries other consumers left pending too long."""
        total = 0
        for key in list(self._keys):
            start: bytes | str = "0-0"
            while True:
                reply = await self.redis.xautoclaim(
                    key,
                    self.group,
                    self.name,
                    min_idle_time=self.claim_idle_ms,
                    start_id=start,
                    count=self.batch,
                )
                # Redis 7 answers [next, entries, deleted]; Redis 6.2 only [next, entries].
                next_id, entries = reply[0], reply[1]
                if entries:
                    self._reclaimed.inc(len(entries))
                    log.info(
                        "reclaimed pending entries",
                        stream=key,
                        group=self.group,
                        count=len(entries),
                    )
                    entries = await self._drop_poison(key, entries)
                    total += await self._process(key, entries)
                if next_id in (b"0-0", "0-0"):
                    break
                start = next_id
            await self._forget_idle_consumers(key)
        return total

    async def _drop_poison(self, key: str, entries: Entries) -> Entries:
        """Dead-letter claimed entries already delivered ``max_failures`` times."""
        ids = [raw_id for raw_id, _ in entries]
        pending = await self.redis.xpending_range(
            key, self.group, min=ids[0], max=ids[-1], count=len(ids), consumername=self.name
        )
        delivered = {p["message_id"]: p["times_delivered"] for p in pending}
        keep: Entries = []
        for raw_id, fields in entries:
            times = delivered.get(raw_id, 0)
            if times > self.max_failures and fields:
                await self._dead_letter(
                    key,
                    raw_id.decode(),
                    f"delivered {times} times without an ack",
                    fields.get(PAYLOAD_FIELD, b""),
                    times,
                )
                await self._ack(key, [raw_id])
            else:
                keep.append((raw_id, fields))
        return keep

    async def _forget_idle_consumers(self, key: str) -> None:
        for info in await self.redis.xinfo_consumers(key, self.group):
            name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
            idle_long = info["idle"] > self.claim_idle_ms * 4
            if name != self.name and info["pending"] == 0 and idle_long:
                await self.redis.xgroup_delconsumer(key, self.group, name)

    # --- observability ------------------------------------------------------------------

    async def sample(self) -> tuple[int, int]:
        """The group's lag and pending entries over this consumer's keys, into the gauges.

        One pipelined XINFO GROUPS per call. Lag is what Redis (>= 7) reports; a key whose
        lag Redis cannot tell (entries deleted inside the unread range) is left out.
        """
        keys = list(self._keys)
        if not keys:
            return 0, 0
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.xinfo_groups(key)
        lag = pending = 0
        for reply in await pipe.execute(raise_on_error=False):
            if isinstance(reply, Exception):
                continue  # no stream yet
            for info in reply:
                name = info["name"]
                if (name.decode() if isinstance(name, bytes) else name) != self.group:
                    continue
                pending += int(info["pending"])
                lag += int(info.get("lag") or 0)
        metrics.CONSUMER_LAG.labels(self.spec.name, self.group).set(lag)
        metrics.PENDING.labels(self.spec.name, self.group).set(pending)
        return lag, pending

    async def _sample_every(self, stop: asyncio.Event) -> None:
        """Lag and pending every ``metrics.SAMPLE_EVERY_S``; a failed sample is skipped."""
        while not stop.is_set():
            try:
                await self.sample()
            except Exception as exc:  # instrumentation never stops a consumer
                raise_if_cancelling()
                log.debug("lag sample failed", stream=self.spec.name, error=repr(exc))
            await asyncio.sleep(metrics.SAMPLE_EVERY_S)

    async def pending(self) -> int:
        """Entries delivered to this group and not yet acked, over all its keys."""
        total = 0
        for key in self._keys:
            summary = await self.redis.xpending(key, self.group)
            total += int(summary["pending"])
        return total
