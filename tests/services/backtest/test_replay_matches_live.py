"""A live paper session against the simulator, then its replay from the recorder's tables.

Ingest, strategy, risk and execution run as in production (paper mode, the
recorder on) while mispricings are injected at the simulator; then
``--from-db`` replays the recorded window through the same code. The replay
must send the very same orders (client order ids), make the very same fills
(trade ids, prices, counts, fees) and end with the very same ledger.

The simulator's background flow is off and every mispricing lasts the whole
session, so between injections the books stand still. What remains of live
timing is the few milliseconds from a book change to its order; the replay
models them (``latency``), so it executes after the rest of an injection's
requotes, as live execution did.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from services.backtest.replay import TOTAL, ReplayConfig
from services.backtest.runner import Options, run
from services.execution import service as execution_service
from shared.ledger import Ledger
from shared.store.ledger import load_fills
from tests.services.simulator.kit import start_server
from tests.services.stack import paper_stack, stack_settings, wait_until
from tests.services.strategy.test_strategy_service import top_of_book_profit

pytestmark = pytest.mark.slow


@pytest.fixture
def sim():
    server = start_server(flow_rate=0, agents=True)
    yield server
    server.stop()


LATENCY_MS = 5
WINDOW_S = 120.0


def inject(sim, kind: str) -> None:
    """A mispricing at the simulator that lasts longer than the session."""

    def go() -> None:
        sim.state.agents.window_s = WINDOW_S
        record = sim.state.agents.inject(kind)
        if record is not None:
            print(f"injected {kind}: {top_of_book_profit(sim, record):.4f} $/set")

    sim.call(go)


def rows(database_url: str, query: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query).fetchall()


async def live_session(settings, aredis, database_url: str, sim) -> None:
    async with paper_stack(settings, aredis) as stack:
        for kind in ("bracket_sum", "ladder_inversion", "bracket_sum", "ladder_inversion"):
            inject(sim, kind)
            await asyncio.sleep(1.5)
        await wait_until(
            lambda: bool(rows(database_url, "SELECT 1 FROM fills LIMIT 1")), 20, "a paper fill"
        )
        assert stack.ingest.recorder is not None
        await stack.ingest.recorder.flush()


def explain(replay_fills: set, live_fills: set, outcome, database_url: str) -> None:
    """What differs, in which direction, and the decisions on both sides."""
    for name, only in (("replay", replay_fills - live_fills), ("live", live_fills - replay_fills)):
        for fill in sorted(only):
            print(f"only in {name}: {fill}")
    for row in rows(database_url, "SELECT signal_id, approved, reason, ts FROM risk_decisions"):
        print("live decision", row)
    for record in outcome.results.signals:
        print("replay decision", record.signal.signal_id, record.approved, record.ts_ns)


async def test_a_replay_of_a_recorded_session_makes_the_same_orders_fills_and_pnl(
    sim, aredis, key_prefix, database_url, tmp_path
):
    settings = stack_settings(
        sim,
        key_prefix,
        database_url,
        tmp_path,
        metrics={"enabled": False},
        # a slow machine must not expire live intents the replay would execute
        strategy={"signal_ttl_s": 10.0},
    )
    since = datetime.now(UTC) - timedelta(seconds=1)
    await live_session(settings, aredis, database_url, sim)
    until = datetime.now(UTC) + timedelta(seconds=1)

    live_orders = {coid for (coid,) in rows(database_url, "SELECT client_order_id FROM orders")}
    live_fills = set(
        rows(
            database_url,
            "SELECT trade_id, market, side, action, price_micros, count_centi, fee_micros,"
            " is_taker FROM fills",
        )
    )
    pool = await execution_service.open_migrated(database_url)
    try:
        live_ledger = Ledger.replay(settings.risk.bankroll, await load_fills(pool))
    finally:
        await pool.close()
    assert live_fills, "the live session made no fill: nothing to compare"

    options = Options(
        out=tmp_path / "replay",
        format="db",
        since=since,
        until=until,
        database_url=database_url,
        plots=False,
        replay=ReplayConfig(latency_ns=LATENCY_MS * 1_000_000),
    )
    outcome = await run(settings, options)
    trades = (tmp_path / "replay" / "trades.csv").read_text().splitlines()[1:]
    replay_fills = set()
    for line in trades:
        cells = line.split(",")
        replay_fills.add(
            (
                cells[1],
                cells[6],
                cells[7],
                cells[8],
                int(cells[9]),
                int(cells[10]),
                int(cells[11]),
                cells[12] == "true",
            )
        )
    if replay_fills != live_fills:
        explain(replay_fills, live_fills, outcome, database_url)
    assert replay_fills == live_fills
    assert set(outcome.results.orders) == live_orders
    ledger = outcome.results.ledgers[TOTAL]
    assert (ledger.cash, ledger.realized, ledger.fees) == (
        live_ledger.cash,
        live_ledger.realized,
        live_ledger.fees,
    )
    assert dict(ledger.holdings) == dict(live_ledger.holdings)
    total = outcome.report["total"]
    assert total["fills"] == len(live_fills)
    assert total["fees_micros"] == live_ledger.fees
    print(
        f"\nlive {len(live_orders)} orders / {len(live_fills)} fills, replay "
        f"{outcome.report['orders']['total']} orders; live cash {live_ledger.cash}"
    )
