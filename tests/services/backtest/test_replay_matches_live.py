"""A live paper session against the simulator, then its replay from the recorder's tables.

Ingest, strategy, risk and execution run as in production (paper mode, the
recorder on) while mispricings are injected at the simulator; then
``--from-db`` replays the recorded window through the same code. The replay
must send the very same orders (client order ids), make the very same fills
(trade ids, prices, counts, fees) and end with the very same ledger.

The simulator's background flow is off and every mispricing lasts the whole
session, so between injections the books stand still. What remains of live
timing is the few milliseconds from a signal to its execution; the replay
models them with one fixed ``latency``. Strategy may signal on the first
requotes of an injection, so a requote of the same injection can land between
the replay's modelled execution and live's: such a fill may differ in price
(and fee), and only such a fill, only where a recorded book change of its
market lies between the two execution times. Everything else must be equal.
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
from shared.messages import Fill
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


def rows(database_url: str, query: str, *params: object) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query, params or None).fetchall()


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


def fill_row(fill: Fill) -> tuple:
    return (
        fill.trade_id,
        fill.market,
        fill.side.value,
        fill.action.value,
        fill.price,
        fill.count,
        fill.fee,
        fill.is_taker,
    )


def only_price(row: tuple) -> tuple:
    """A fill row without its price and fee."""
    return row[:4] + row[5:6] + row[7:]


def timing_explained(outcome, live: dict[str, Fill], database_url: str) -> dict[str, Fill]:
    """Replay fills that differ from live only by a requote between the two executions.

    Keyed by trade id; a differing fill with no recorded book change of its
    market between the replay's execution and live's is left out (and fails).
    """
    explained = {}
    for record in outcome.results.fills:
        fill, twin = record.fill, live.get(record.fill.trade_id)
        if twin is None or (fill.price, fill.fee) == (twin.price, twin.fee):
            continue
        first, last = sorted((fill.ts_ns, twin.ts_ns))
        between = rows(
            database_url,
            "SELECT 1 FROM book_deltas WHERE market = %s AND batch > %s AND batch <= %s",
            fill.market,
            first,
            last,
        )
        if between:
            explained[fill.trade_id] = fill
    return explained


def explain(replay_fills: set, live_fills: set, outcome, database_url: str) -> None:
    """What differs, in which direction, and the decisions on both sides."""
    for name, only in (("replay", replay_fills - live_fills), ("live", live_fills - replay_fills)):
        for fill in sorted(only):
            print(f"only in {name}: {fill}")
    for row in rows(database_url, "SELECT signal_id, approved, reason, ts FROM risk_decisions"):
        print("live decision", row)
    for record in outcome.results.signals:
        print("replay decision", record.signal.signal_id, record.approved, record.ts_ns)
    for market in sorted({fill[1] for fill in replay_fills ^ live_fills}):
        for row in rows(
            database_url,
            "SELECT client_order_id, price_micros, created_at FROM orders WHERE market = %s",
            market,
        ):
            print("live order", market, row)
        for row in rows(
            database_url,
            "SELECT batch, seq, side, price_micros, delta_centi FROM book_deltas"
            " WHERE market = %s ORDER BY batch, seq",
            market,
        ):
            print("recorded delta", market, row)


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
    pool = await execution_service.open_migrated(database_url)
    try:
        live_by_trade = {fill.trade_id: fill for fill in await load_fills(pool)}
    finally:
        await pool.close()
    live_ledger = Ledger.replay(settings.risk.bankroll, list(live_by_trade.values()))
    live_fills = {fill_row(fill) for fill in live_by_trade.values()}
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
    replay_fills = {fill_row(record.fill) for record in outcome.results.fills}
    if replay_fills != live_fills:
        explain(replay_fills, live_fills, outcome, database_url)
    late = timing_explained(outcome, live_by_trade, database_url)
    assert {only_price(f) for f in replay_fills} == {only_price(f) for f in live_fills}
    assert {f for f in replay_fills if f[0] not in late} == {
        f for f in live_fills if f[0] not in late
    }, "fills differ where no book change lies between the two execution times"
    assert set(outcome.results.orders) == live_orders
    expected = Ledger.replay(
        settings.risk.bankroll, [late.get(f.trade_id, f) for f in live_by_trade.values()]
    )
    ledger = outcome.results.ledgers[TOTAL]
    assert (ledger.cash, ledger.realized, ledger.fees) == (
        expected.cash,
        expected.realized,
        expected.fees,
    )
    assert dict(ledger.holdings) == dict(expected.holdings)
    total = outcome.report["total"]
    assert total["fills"] == len(live_fills)
    assert total["fees_micros"] == expected.fees
    print(
        f"\nlive {len(live_orders)} orders / {len(live_fills)} fills ({len(late)} priced"
        f" across a requote), replay {outcome.report['orders']['total']} orders;"
        f" live cash {live_ledger.cash}, replay {ledger.cash}"
    )
