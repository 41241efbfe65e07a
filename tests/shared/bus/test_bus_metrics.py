"""The bus's Prometheus counters over real Redis: published, consumed, hop latency, errors,
dead letters, lag and pending. The default registry is process-wide: deltas only."""

from __future__ import annotations

import asyncio
import uuid

from prometheus_client import REGISTRY

from shared import metrics
from shared.bus.consumer import Consumer, Delivery
from shared.bus.publisher import ObserverPublisher, Publisher
from shared.messages import Heartbeat
from shared.streams import HEARTBEATS


def beat(i: int) -> Heartbeat:
    return Heartbeat(service="t", instance=str(i), version="0", role="x", ts_ns=i)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def consumer_of(aredis, prefix, handler, group: str, **options) -> Consumer:
    settings = {"batch": 50, "block_ms": 50, "claim_idle_ms": 60_000, "max_failures": 3}
    settings.update(options)
    return Consumer(aredis, prefix, HEARTBEATS, group=group, name="c1", handler=handler, **settings)


def unique_group() -> str:
    return f"g-{uuid.uuid4().hex[:8]}"


async def test_round_trip_counts_published_consumed_and_hop_latency(aredis, key_prefix):
    group = unique_group()
    handled: list[Delivery] = []

    async def handler(batch: list[Delivery]) -> None:
        handled.extend(batch)

    published = {"service": "ingest", "stream": "heartbeats"}
    hop = {"hop": f"ingest->{group}"}
    before = value("khv_bus_published_total", **published)
    publisher = Publisher(aredis, key_prefix, shards=1, hop="ingest")
    await publisher.publish_many(HEARTBEATS, [beat(i) for i in range(4)])
    await publisher.publish(HEARTBEATS, beat(4))
    assert value("khv_bus_published_total", **published) == before + 5

    consumer = consumer_of(aredis, key_prefix, handler, group)
    for _ in range(10):
        if len(handled) == 5:
            break
        await consumer.poll_once()
    assert len(handled) == 5
    assert value("khv_bus_consumed_total", stream="heartbeats", group=group) == 5
    assert value("khv_bus_hop_latency_seconds_count", **hop) == 5
    assert value("khv_bus_hop_latency_seconds_sum", **hop) >= 0
    assert value("khv_bus_handler_seconds_count", stream="heartbeats", group=group) >= 1


async def test_handler_errors_and_dead_letters_are_counted(aredis, key_prefix):
    group = unique_group()
    labels = {"stream": "heartbeats", "group": group}

    async def handler(batch: list[Delivery]) -> None:
        if any(d.message.ts_ns == 3 for d in batch):  # type: ignore[attr-defined]
            raise ValueError("cannot handle 3")

    await Publisher(aredis, key_prefix, shards=1).publish_many(
        HEARTBEATS, [beat(i) for i in range(6)]
    )
    consumer = consumer_of(aredis, key_prefix, handler, group, max_failures=3)
    for _ in range(12):
        await consumer.poll_once()
    assert consumer.dead_lettered == 1
    assert value("khv_bus_handler_errors_total", **labels) == 3  # alone, 3 times
    assert value("khv_bus_dead_lettered_total", **labels) == 1
    assert value("khv_bus_consumed_total", **labels) == 5


async def test_lag_and_pending_are_sampled(aredis, key_prefix):
    group = unique_group()
    labels = {"stream": "heartbeats", "group": group}
    done: list[int] = []

    async def handler(batch: list[Delivery]) -> None:
        if any(d.message.ts_ns == 0 for d in batch):  # type: ignore[attr-defined]
            raise ValueError("0 stays pending")
        done.extend(d.message.ts_ns for d in batch)  # type: ignore[attr-defined]

    await Publisher(aredis, key_prefix, shards=1).publish_many(
        HEARTBEATS, [beat(i) for i in range(5)]
    )
    consumer = consumer_of(aredis, key_prefix, handler, group, batch=2, max_failures=10)
    for _ in range(5):
        if done:
            break
        await consumer.poll_once()
    assert done == [1]
    assert await consumer.sample() == (3, 1)  # 2, 3, 4 unread; 0 delivered, not acked
    assert REGISTRY.get_sample_value("khv_bus_consumer_lag", labels) == 3
    assert REGISTRY.get_sample_value("khv_bus_pending", labels) == 1


async def test_a_running_consumer_samples_and_stops_reporting_when_stopped(
    aredis, key_prefix, monkeypatch
):
    monkeypatch.setattr(metrics, "SAMPLE_EVERY_S", 0.01)
    group = unique_group()
    labels = {"stream": "heartbeats", "group": group}

    async def handler(batch: list[Delivery]) -> None:
        pass

    await Publisher(aredis, key_prefix, shards=1).publish(HEARTBEATS, beat(1))
    consumer = consumer_of(aredis, key_prefix, handler, group)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    async with asyncio.timeout(10):
        while REGISTRY.get_sample_value("khv_bus_pending", labels) is None:
            await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert REGISTRY.get_sample_value("khv_bus_pending", labels) is None
    assert REGISTRY.get_sample_value("khv_bus_consumer_lag", labels) is None


async def test_observer_drops_are_counted(aredis, key_prefix):
    hop = f"observer-{uuid.uuid4().hex[:8]}"
    observer = ObserverPublisher(Publisher(aredis, key_prefix, shards=1, hop=hop), capacity=1)
    observer.offer(HEARTBEATS, beat(1))
    observer.offer(HEARTBEATS, beat(2))  # the queue is full: the oldest goes
    assert observer.dropped == 1
    assert value("khv_bus_observer_dropped_total", service=hop, stream="heartbeats") == 1
