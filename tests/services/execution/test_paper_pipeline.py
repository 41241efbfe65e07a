"""Ingest, strategy, risk and execution together, trading on paper against the simulator.

Injected mispricings must end as paper fills in the ledger, every fill once,
every order claimed once, positions equal to the fills; the kill switch stops
new orders and cancels what rests.
"""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from services.execution import service as execution_service
from services.risk.control import send
from shared.ledger import Ledger
from shared.messages import Command, ControlCommand
from shared.money import dollars
from shared.store.ledger import load_fills
from tests.services.simulator.kit import start_server
from tests.services.stack import paper_stack, stack_settings, wait_until
from tests.services.strategy.test_strategy_service import inject


@pytest.fixture
def sim():
    server = start_server(flow_rate=100, agents=True)
    yield server
    server.stop()


def rows(database_url: str, query: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query).fetchall()


async def test_mispricings_become_paper_fills_and_the_kill_switch_stops_trading(
    sim, aredis, key_prefix, database_url, tmp_path
):
    settings = stack_settings(sim, key_prefix, database_url, tmp_path, metrics={"enabled": False})
    async with paper_stack(settings, aredis):
        for kind in ("bracket_sum", "ladder_inversion", "bracket_sum", "ladder_inversion"):
            inject(sim, kind)
            await asyncio.sleep(2.0)
        await wait_until(
            lambda: bool(rows(database_url, "SELECT 1 FROM fills LIMIT 1")), 20, "a paper fill"
        )
        kill = ControlCommand(
            command_id="k", command=Command.KILL, actor="test", ts_ns=time.time_ns()
        )
        await send(kill, settings.redis_url, key_prefix)
        await asyncio.sleep(1.0)
        orders_at_kill = rows(database_url, "SELECT count(*) FROM orders")[0][0]
        for kind in ("bracket_sum", "ladder_inversion"):
            inject(sim, kind)
            await asyncio.sleep(1.5)
        orders_after = rows(database_url, "SELECT count(*) FROM orders")[0][0]

    fills = rows(database_url, "SELECT trade_id, client_order_id, paper FROM fills")
    assert fills and all(paper for _, _, paper in fills)
    assert len({trade for trade, _, _ in fills}) == len(fills)
    known = {coid for (coid,) in rows(database_url, "SELECT client_order_id FROM orders")}
    assert {coid for _, coid, _ in fills} <= known
    assert orders_after == orders_at_kill, "no order after the kill switch"
    assert rows(
        database_url, "SELECT count(*) FROM orders WHERE status IN ('resting','partial')"
    ) == [(0,)]
    # positions in Postgres are the fills replayed
    async_pool = await execution_service.open_migrated(database_url)
    try:
        ledger = Ledger.replay(dollars(10_000), await load_fills(async_pool))
    finally:
        await async_pool.close()
    positions = {
        m: (y, n)
        for m, y, n in rows(database_url, "SELECT market, yes_centi, no_centi FROM positions")
    }
    for market, holding in ledger.holdings.items():
        assert positions[market] == (holding.yes.count, holding.no.count)
    episodes = rows(
        database_url, "SELECT detail->>'outcome' FROM audit_trail WHERE action = 'episode'"
    )
    outcomes = sorted(e for (e,) in episodes)
    print(f"\npaper pipeline: {len(fills)} fills, {len(known)} orders, episodes {outcomes}")
