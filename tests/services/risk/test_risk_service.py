"""The risk process over real Redis and Postgres: decisions on the bus and in the audit
trail, nothing decided twice across restarts, and a kill switch that outlives them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import psycopg
import pytest

from services.risk import service as risk_service
from services.risk.control import send
from shared.config import Settings, load_settings
from shared.messages import (
    Command,
    ControlCommand,
    Heartbeat,
    MarketDataBatch,
    OrderIntent,
    PortfolioState,
    RiskDecision,
    TradingState,
)
from shared.streams import DECISIONS, INTENTS, MARKET_DATA, MARKETS, PORTFOLIO, SIGNALS, stream_key
from tests.conftest import redis_url
from tests.services.risk.test_guardian import MARKETS as TICKERS
from tests.services.risk.test_guardian import buy, info, signal, snapshot
from tests.services.stack import context, read_stream


@pytest.fixture
def settings(key_prefix, database_url) -> Settings:
    return load_settings(
        redis_url=redis_url(), database_url=database_url, key_prefix=key_prefix, bus={"shards": 1}
    )


def open_market(ticker: str):
    """The guardian tests' market, closing a day from now on the wall clock."""
    market = info(ticker)
    market.close_ts_ns = time.time_ns() + 86_400 * 10**9
    return market


async def heartbeats(ctx, stop: asyncio.Event) -> None:
    """An ingest that says its Kalshi feed is fresh, every 200 ms."""
    while not stop.is_set():
        beat = Heartbeat(
            service="ingest",
            instance="i1",
            version="1",
            role="active",
            ts_ns=time.time_ns(),
            info={"kalshi_feed": "fresh"},
        )
        await ctx.publisher.publish(risk_service.HEARTBEATS, beat)
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def running_risk(settings: Settings, aredis) -> AsyncIterator[object]:
    """Risk as its own task, fed the catalog, books and a live ingest heartbeat."""
    ctx = context("risk", settings, aredis)
    feeder = context("ingest", settings, aredis)
    await feeder.publisher.publish_many(MARKETS, [open_market(t) for t in TICKERS])
    batch = MarketDataBatch(items=[snapshot(t) for t in TICKERS])
    await feeder.publisher.publish(MARKET_DATA, batch, event=batch.items[0].event)
    beats = asyncio.create_task(heartbeats(feeder, feeder.stop))
    task = asyncio.create_task(risk_service.run(ctx))
    try:
        yield ctx
    finally:
        ctx.stop.set()
        feeder.stop.set()
        async with asyncio.timeout(20):
            await asyncio.gather(task, beats)


async def messages(aredis, prefix: str, spec) -> list:
    return [m for _, m in await read_stream(aredis, prefix, spec)]


async def latest_state(aredis, prefix: str) -> PortfolioState | None:
    states = await messages(aredis, prefix, PORTFOLIO)
    return states[-1] if states else None


async def wait_state(aredis, prefix: str, wanted: TradingState) -> None:
    async with asyncio.timeout(15):
        while True:
            state = await latest_state(aredis, prefix)
            if state is not None and state.trading_state is wanted:
                return
            await asyncio.sleep(0.05)


async def decisions_for(aredis, prefix: str, count: int) -> list[RiskDecision]:
    async with asyncio.timeout(15):
        while len(found := await messages(aredis, prefix, DECISIONS)) < count:
            await asyncio.sleep(0.05)
    return found


async def publish_signals(ctx, *signals) -> None:
    await ctx.publisher.publish_many(SIGNALS, list(signals), events=[s.event for s in signals])


def far(n: int, *legs):
    """A signal that stays valid for a minute of wall time."""
    s = signal(n, *legs)
    s.expires_ns = time.time_ns() + 60 * 10**9
    return s


async def test_signals_are_decided_once_on_the_bus_and_in_postgres(
    settings, aredis, key_prefix, database_url
):
    async with running_risk(settings, aredis) as ctx:
        await wait_state(aredis, key_prefix, TradingState.ACTIVE)
        too_big = buy(TICKERS[1], price=50, count=2000)  # $1,000 > the $500 order notional
        await publish_signals(ctx, far(1, buy(TICKERS[0])), far(2, too_big))
        found = await decisions_for(aredis, key_prefix, 2)
    assert {(d.signal_id, d.approved, d.reason) for d in found} == {
        ("sig-1", True, "approved"),
        ("sig-2", False, "order_notional"),
    }
    intents = await messages(aredis, key_prefix, INTENTS)
    assert [i.signal_id for i in intents] == ["sig-1"]
    with psycopg.connect(database_url) as conn:
        audit = conn.execute(
            "SELECT id, action, reason FROM audit_trail WHERE id LIKE 'decision:%%' ORDER BY id"
        ).fetchall()
        stored = conn.execute("SELECT count(*) FROM signals").fetchone()
    assert audit == [
        ("decision:sig-1", "approve", "approved"),
        ("decision:sig-2", "reject", "order_notional"),
    ]
    assert stored == (2,)

    # a restart: the approved intent is published again (execution dedups by client
    # order id), and signals delivered again are duplicates, not new decisions
    await aredis.xgroup_setid(stream_key(key_prefix, SIGNALS, 0), "risk", "0")
    async with running_risk(settings, aredis):
        async with asyncio.timeout(15):
            while len(await messages(aredis, key_prefix, INTENTS)) < 2:
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
    again: list[OrderIntent] = await messages(aredis, key_prefix, INTENTS)
    assert [i.intent_id for i in again] == [intents[0].intent_id] * 2
    assert len(await messages(aredis, key_prefix, DECISIONS)) == 2


async def test_the_kill_switch_outlives_restarts_of_risk_and_of_redis(settings, aredis, key_prefix):
    async with running_risk(settings, aredis) as ctx:
        await wait_state(aredis, key_prefix, TradingState.ACTIVE)
        kill = ControlCommand(command_id="k1", command=Command.KILL, actor="test", reason="drill")
        await send(kill, settings.redis_url, key_prefix)
        await wait_state(aredis, key_prefix, TradingState.HALTED)
        await publish_signals(ctx, far(1, buy(TICKERS[0])))
        (decision,) = await decisions_for(aredis, key_prefix, 1)
        assert (decision.approved, decision.reason) == (False, "halted")

    # Redis loses everything (a restart without persistence); Postgres remembers
    keys = [k async for k in aredis.scan_iter(match=f"{key_prefix}*")]
    await aredis.delete(*keys)
    async with running_risk(settings, aredis) as ctx:
        await wait_state(aredis, key_prefix, TradingState.HALTED)
        await asyncio.sleep(0.5)
        assert (await latest_state(aredis, key_prefix)).trading_state is TradingState.HALTED
        await publish_signals(ctx, far(2, buy(TICKERS[0])))
        (decision,) = await decisions_for(aredis, key_prefix, 1)
        assert decision.reason == "halted"
        resume = ControlCommand(command_id="r1", command=Command.RESUME, actor="test")
        await send(resume, settings.redis_url, key_prefix)
        await wait_state(aredis, key_prefix, TradingState.ACTIVE)
        await publish_signals(ctx, far(3, buy(TICKERS[0])))
        found = await decisions_for(aredis, key_prefix, 2)
        assert found[-1].approved


async def test_a_kill_is_published_while_postgres_is_away_and_saved_when_it_returns(
    settings, aredis, key_prefix, database_url
):
    ctx = context("risk", settings, aredis)
    pool = await risk_service.open_migrated(database_url)
    store = risk_service.RiskStore(pool)
    guardian = await risk_service.load_guardian(settings, store, time.time_ns())
    away = await risk_service.open_migrated(database_url)
    await away.close()  # a real pool that cannot give a connection: Postgres is away
    risk = risk_service.Risk(ctx, guardian, risk_service.RiskStore(away))
    try:
        kill = ControlCommand(
            command_id="k1", command=Command.KILL, actor="test", ts_ns=time.time_ns()
        )
        await risk.apply(risk.guardian.on_command(kill, time.time_ns()), force=True)
        state = await latest_state(aredis, key_prefix)
        assert state is not None and state.trading_state is TradingState.HALTED
        assert risk._unsaved, "the kill waits to be saved"
        risk.store = store  # Postgres is back: the clock's next tick saves it
        await risk.apply([])
        assert risk._unsaved == []
        with psycopg.connect(database_url) as conn:
            saved = conn.execute("SELECT record FROM trading_state").fetchone()
        assert saved is not None and "kill" in saved[0]["halts"]
    finally:
        await pool.close()
