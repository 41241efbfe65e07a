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
the replay's modelled execution and live's: such a signal's fills may differ
(a price, or a leg one side found short and refused), and only such a signal's,
only where a recorded book change of one of its markets lies between the two
execution times. Decisions and orders must be equal everywhere, and the fills
of every other signal equal to the last field.
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


def explained_by_timing(outcome, database_url: str) -> set[str]:
    """Signals whose markets' books changed between the replay's execution and live's.

    Live execution's time is the last update of the signal's orders (claimed,
    then filled or refused, within a few milliseconds); the replay's is its
    decision plus the modelled latency.
    """
    replay_at = {
        r.signal.signal_id: r.ts_ns + LATENCY_MS * 1_000_000 for r in outcome.results.signals
    }
    explained = set()
    for signal_id, markets, live_at in rows(
        database_url,
        "SELECT signal_id, array_agg(market), max(updated_at) FROM orders GROUP BY signal_id",
    ):
        first, last = sorted((replay_at.get(signal_id, 0), int(live_at.timestamp() * 1e6) * 1000))
        if rows(
            database_url,
            "SELECT 1 FROM book_deltas WHERE market = ANY(%s) AND batch > %s AND batch <= %s",
            markets,
            first,
            last,
        ):
            explained.add(signal_id)
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
            "SELECT client_order_id, price_micros, status, created_at FROM orders"
            " WHERE market = %s",
            market,
        ):
            print("live order", market, row)
            for event in rows(
                database_url,
                "SELECT status, reason FROM order_events WHERE client_order_id = %s",
                row[0],
            ):
                print("    event", event)
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
    assert set(outcome.results.orders) == live_orders
    signal_of = dict(rows(database_url, "SELECT client_order_id, signal_id FROM orders"))
    late = explained_by_timing(outcome, database_url)

    order_of = {r.fill.trade_id: r.fill.client_order_id for r in outcome.results.fills} | {
        f.trade_id: f.client_order_id for f in live_by_trade.values()
    }

    def on_time(fills: set) -> set:
        return {f for f in fills if signal_of[order_of[f[0]]] not in late}

    assert on_time(replay_fills) == on_time(live_fills), (
        "fills differ where no book change lies between the two execution times"
    )
    assert on_time(live_fills), "every signal was explained away: nothing compared"
    replay_late = [
        r.fill
        for r in outcome.results.fills
        if r.fill.trade_id not in {f[0] for f in on_time(replay_fills)}
    ]
    expected = Ledger.replay(
        settings.risk.bankroll,
        [live_by_trade[f[0]] for f in on_time(live_fills)] + replay_late,
    )
    ledger = outcome.results.ledgers[TOTAL]
    assert (ledger.cash, ledger.realized, ledger.fees) == (
        expected.cash,
        expected.realized,
        expected.fees,
    )
    assert dict(ledger.holdings) == dict(expected.holdings)
    total = outcome.report["total"]
    assert total["fills"] == len(replay_fills)
    assert total["fees_micros"] == expected.fees
    print(
        f"\nlive {len(live_orders)} orders / {len(live_fills)} fills, replay"
        f" {outcome.report['orders']['total']} orders / {len(replay_fills)} fills;"
        f" {len(late)} signals executed across a requote; live cash {live_ledger.cash},"
        f" replay {ledger.cash}"
    )
