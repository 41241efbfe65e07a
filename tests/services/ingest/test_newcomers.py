"""Which heartbeats make ingest republish its books at once."""

import asyncio

from services.ingest.newcomers import FORGET_AFTER_NS, Newcomers, republish_for_newcomers
from shared.messages import Heartbeat

S = 1_000_000_000


def beat(service="execution", role="active", uptime=1, ts_s=100, shards="", instance="a"):
    info = {"uptime_s": str(uptime)} | ({"shards": shards} if shards else {})
    return Heartbeat(
        service=service, instance=instance, version="1", role=role, ts_ns=ts_s * S, info=info
    )


def test_a_service_that_just_started_is_a_newcomer_once():
    seen = Newcomers()
    assert seen.arrived([beat(uptime=0)]) == ["execution/a"]
    assert seen.arrived([beat(uptime=1, ts_s=101)]) == []


def test_a_service_running_long_when_ingest_starts_is_not():
    assert Newcomers().arrived([beat(uptime=3600)]) == []


def test_a_standby_becomes_a_newcomer_when_it_takes_over():
    seen = Newcomers()
    assert seen.arrived([beat(role="standby", uptime=0)]) == []
    assert seen.arrived([beat(role="standby", uptime=500, ts_s=600)]) == []
    assert seen.arrived([beat(role="active", uptime=501, ts_s=601)]) == ["execution/a"]


def test_a_restart_is_seen_by_its_uptime_going_back():
    seen = Newcomers()
    seen.arrived([beat(uptime=3600)])
    assert seen.arrived([beat(uptime=2, ts_s=103)]) == ["execution/a"]


def test_a_strategy_replica_that_gains_shards_is_a_newcomer():
    seen = Newcomers()
    seen.arrived([beat("strategy", uptime=3600, shards="0")])
    assert seen.arrived([beat("strategy", uptime=3601, ts_s=101, shards="0,1")]) == ["strategy/a"]
    assert seen.arrived([beat("strategy", uptime=3602, ts_s=102, shards="0,1")]) == []


def test_services_without_books_are_ignored():
    seen = Newcomers()
    assert seen.arrived([beat("dashboard", uptime=0), beat("ingest", uptime=0)]) == []


def test_instances_gone_silent_are_forgotten():
    seen = Newcomers()
    seen.arrived([beat(uptime=3600, instance="old")])
    seen.arrived([beat(uptime=3600, ts_s=100 + FORGET_AFTER_NS // S + 1, instance="new")])
    assert list(seen._seen) == [("execution", "new")]


async def test_a_burst_of_newcomers_gets_one_republish():
    wanted, stop, calls = asyncio.Event(), asyncio.Event(), []

    async def republish() -> None:
        calls.append(1)

    task = asyncio.create_task(republish_for_newcomers(wanted, stop, republish))
    for _ in range(3):
        wanted.set()
        await asyncio.sleep(0.05)
    for _ in range(40):
        if calls:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    stop.set()
    await task
    assert calls == [1]
