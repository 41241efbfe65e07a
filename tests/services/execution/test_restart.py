"""Execution in live mode at the simulator, stopped between sending an order and acking its
intent: the intent comes again after the restart, and nothing is sent twice."""

from __future__ import annotations

import asyncio
import time

import psycopg

from services.execution import service as execution_service
from shared.ids import client_order_id, intent_id
from shared.kalshi.rest import KalshiRest
from shared.messages import (
    Action,
    BookSnapshot,
    Leg,
    Level,
    MarketDataBatch,
    OrderIntent,
    OrderLeg,
    Route,
    Side,
)
from shared.money import cents, contracts
from shared.streams import INTENTS, MARKET_DATA, stream_key
from tests.services.execution.kit import Market, rest_on
from tests.services.simulator.kit import signer
from tests.services.stack import context, stack_settings, start, stop_all, wait_until


def an_intent(market: str) -> OrderIntent:
    leg = Leg(market=market, side=Side.YES, action=Action.BUY, price=cents(40), count=contracts(2))
    return OrderIntent(
        intent_id=intent_id("restart-signal"),
        signal_id="restart-signal",
        strategy="arbitrage",
        event=market.rsplit("-", 1)[0],
        route=Route.SNIPER,
        orders=[OrderLeg(client_order_id=client_order_id("restart-signal", 0), leg=leg)],
        kelly_fraction=0.01,
        ev=cents(1),
        aroc=1.0,
        expires_ns=time.time_ns() + 120 * 10**9,
    )


def fills_in(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        exists = conn.execute("SELECT to_regclass('fills')").fetchone()
        if exists is None or exists[0] is None:
            return []  # execution has not migrated the schema yet
        return [r[0] for r in conn.execute("SELECT trade_id FROM fills ORDER BY trade_id")]


def events_of(database_url: str, client_order_id: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT status FROM order_events WHERE client_order_id = %s ORDER BY id",
            (client_order_id,),
        ).fetchall()
    return [r[0] for r in rows]


async def intents_acked(aredis, key_prefix: str) -> bool:
    """Every intent on the stream delivered to execution and acked."""
    key = stream_key(key_prefix, INTENTS)
    newest = await aredis.xrevrange(key, count=1)
    groups = await aredis.xinfo_groups(key)
    group = next((g for g in groups if g["name"] == b"execution"), None)
    return bool(group and newest and group["last-delivered-id"] == newest[0][0]) and (
        group is not None and group["pending"] == 0
    )


async def run_until_acked(ctx, aredis, key_prefix: str) -> None:
    task = start(execution_service.run(ctx), "execution")
    try:
        async with asyncio.timeout(20):
            while not await intents_acked(aredis, key_prefix):
                await asyncio.sleep(0.05)
    finally:
        await stop_all([ctx], [task])


async def run_until(ctx, predicate, what: str) -> None:
    task = start(execution_service.run(ctx), "execution")
    try:
        await wait_until(predicate, 20, what)
        await asyncio.sleep(0.5)
    finally:
        await stop_all([ctx], [task])


async def test_a_redelivered_intent_sends_nothing_and_the_ledger_matches_the_exchange(
    sim, bob: KalshiRest, market: Market, aredis, key_prefix, database_url, tmp_path
):
    await rest_on(bob, market, "no", cents(60), contracts(5))
    settings = stack_settings(
        sim, key_prefix, database_url, tmp_path, mode="live", metrics={"enabled": False}
    )
    publisher = context("risk", settings, aredis).publisher
    book = BookSnapshot(  # execution sends nothing for a market whose book it cannot trust
        market=market.ticker,
        event=market.ticker.rsplit("-", 1)[0],
        yes_bids=[],
        no_bids=[Level(cents(60), contracts(5))],
        seq=1,
    )
    await publisher.publish(MARKET_DATA, MarketDataBatch(items=[book]), event=book.event)
    intent = an_intent(market.ticker)
    await publisher.publish(INTENTS, intent)
    await run_until(
        context("execution", settings, aredis),
        lambda: bool(fills_in(database_url)),
        "the fill in the ledger",
    )
    first = fills_in(database_url)

    # as if execution died before acking: the group hands the intent out again
    await aredis.xgroup_setid(stream_key(key_prefix, INTENTS), "execution", "0")
    await publisher.publish(INTENTS, intent)  # and risk republished it after its own restart
    await run_until_acked(context("execution", settings, aredis), aredis, key_prefix)

    async with KalshiRest(sim.rest_url, signer=signer("alice")) as alice:
        orders = [o async for o in alice.iter_orders(ticker=market.ticker)]
        exchange_fills = sorted([f.trade_id async for f in alice.iter_fills(ticker=market.ticker)])
    sent = [o for o in orders if o.client_order_id == intent.orders[0].client_order_id]
    assert len(sent) == 1, "one order at the exchange for one client order id"
    assert fills_in(database_url) == first == exchange_fills
    assert events_of(database_url, intent.orders[0].client_order_id) == ["filled"]


async def test_on_paper_too_a_redelivered_intent_fills_nothing_twice(
    sim, aredis, key_prefix, database_url, tmp_path
):
    """Paper orders live in memory: only the claim in Postgres stands between a restart
    and a second fill of the same intent."""
    settings = stack_settings(sim, key_prefix, database_url, tmp_path, metrics={"enabled": False})
    publisher = context("ingest", settings, aredis).publisher
    ticker = "KXPAPER-26NOV26-T50"
    book = BookSnapshot(
        market=ticker,
        event="KXPAPER-26NOV26",
        yes_bids=[Level(cents(30), contracts(5))],
        no_bids=[Level(cents(60), contracts(5))],
        seq=1,
    )
    intent = an_intent(ticker)
    for attempt in range(2):
        await publisher.publish(MARKET_DATA, MarketDataBatch(items=[book]), event=book.event)
        if attempt:
            await aredis.xgroup_setid(stream_key(key_prefix, INTENTS), "execution", "0")
        await asyncio.sleep(0.2)
        await publisher.publish(INTENTS, intent)
        await run_until_acked(context("execution", settings, aredis), aredis, key_prefix)
        if attempt == 0:
            first = fills_in(database_url)
            assert first, "the paper order filled"
    assert fills_in(database_url) == first
    assert events_of(database_url, intent.orders[0].client_order_id) == ["filled"]
