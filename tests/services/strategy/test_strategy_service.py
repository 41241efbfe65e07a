"""The strategy process on the simulator's mixed scenario, through real ingest and Redis.

Mispricings are injected one at a time into the live simulator; each must come
out of the strategy as a signal of its kind (recall), and the arbitrage signals
must be the injected ones (precision). The figures are printed for the record.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from services.ingest.service import Ingest, connect_store, load_signer
from services.strategy.service import Strategy
from shared.messages import Signal
from shared.streams import SIGNALS
from tests.services.simulator.kit import start_server
from tests.services.stack import context, read_stream, stack_settings, start, stop_all, wait_until

KIND_OF = {"bracket_sum": "atomic_yes", "ladder_inversion": "ladder"}
ROUNDS = 4
WINDOW_S = 1.5
FEE_RATE = 0.07
MIN_EDGE = 0.02
MARGIN = 0.005
"""Injections within half a cent of the minimum edge may go either way (fee rounding)."""


@pytest.fixture
def sim():
    server = start_server(flow_rate=150, agents=True)
    yield server
    server.stop()


def inject(sim, kind: str) -> dict[str, Any] | None:
    """Inject a mispricing; the record notes its top-of-book profit per set after fees."""

    def go() -> dict[str, Any] | None:
        sim.state.agents.window_s = WINDOW_S
        record: dict[str, Any] | None = sim.state.agents.inject(kind)
        if record is not None:
            record["profit_per_set"] = top_of_book_profit(sim, record)
        return record

    return sim.call(go)


def top_of_book_profit(sim, record: dict[str, Any]) -> float:
    """The test's own oracle, in dollars: payout minus asks minus unrounded taker fees."""

    def best(ticker: str, side: str) -> float:
        book = sim.state.exchange.book(ticker)
        price = (book.yes if side == "yes" else book.no).best()
        return (price or 0) / 1e6

    def all_in(ask: float) -> float:
        return ask + FEE_RATE * ask * (1 - ask)

    if record["kind"] == "ladder_inversion":
        lower, higher = record["lower_strike_market"], record["higher_strike_market"]
        return 1 - all_in(1 - best(lower, "no")) - all_in(1 - best(higher, "yes"))
    return 1 - sum(all_in(1 - best(t, "no")) for t in record["markets"])


def matches(signal: Signal, record: dict[str, Any]) -> bool:
    legs = {leg.market for leg in signal.legs}
    if record["kind"] == "ladder_inversion":
        return signal.kind == "ladder" and record["higher_strike_market"] in legs
    return signal.kind == KIND_OF[record["kind"]] and signal.event == record["event_ticker"]


async def signals_so_far(aredis, prefix: str) -> list[tuple[int, Signal]]:
    """(published at, ns) and signal, for every signal on the bus."""
    out = []
    for _, message in await read_stream(aredis, prefix, SIGNALS, 0):
        assert isinstance(message, Signal)
        out.append((message.hops[-1].ts_ns, message))
    return out


async def test_injected_mispricings_are_found_and_little_else(
    sim, aredis, key_prefix, database_url, tmp_path
):
    settings = stack_settings(sim, key_prefix, database_url, tmp_path)
    ingest_ctx, strategy_ctx = (
        context("ingest", settings, aredis),
        context("strategy", settings, aredis),
    )
    pool = await connect_store(ingest_ctx)
    ingest = Ingest(ingest_ctx, load_signer(ingest_ctx), pool)
    strategy = Strategy(strategy_ctx)
    tasks = [start(ingest.run(), "ingest"), start(strategy.run(), "strategy")]
    try:
        await wait_until(
            lambda: (
                bool(ingest.followed)
                and len(strategy.engine.books.trusted()) >= len(ingest.followed)
            ),
            30,
            "strategy trusts every book ingest follows",
        )
        await asyncio.sleep(1.0)
        started_ns = time.time_ns()
        records = []
        for _ in range(ROUNDS):
            for kind in KIND_OF:
                record = inject(sim, kind)
                if record is None:
                    continue
                records.append(record)
                await asyncio.sleep(WINDOW_S + 0.5)
        found = await signals_so_far(aredis, key_prefix)
    finally:
        await stop_all([ingest_ctx, strategy_ctx], tasks)
        await pool.close()

    assert len(records) >= ROUNDS, "the simulator found room for the injections"
    arbs = [(ts, s) for ts, s in found if ts >= started_ns and s.strategy == "arbitrage"]
    real = [r for r in records if r["profit_per_set"] >= MIN_EDGE + MARGIN]
    not_arbs = [r for r in records if r["profit_per_set"] < MIN_EDGE - MARGIN]
    detected = [r for r in real if any(matches(s, r) for _, s in arbs)]
    true_signals = [s for _, s in arbs if any(matches(s, r) for r in records)]
    false_alarms = [r for r in not_arbs if any(matches(s, r) for _, s in arbs)]
    recall = len(detected) / len(real) if real else 1.0
    precision = len(true_signals) / len(arbs) if arbs else 1.0
    print(
        f"\nstrategy on the simulator: {len(records)} injected, {len(real)} of them worth "
        f">= {MIN_EDGE + MARGIN:.3f}/set after fees, {len(detected)} found (recall {recall:.2f}); "
        f"{len(arbs)} arbitrage signals, {len(true_signals)} of them injected "
        f"(precision {precision:.2f}); {len(false_alarms)} of {len(not_arbs)} unprofitable "
        f"injections signalled"
    )
    missed = [
        (r["kind"], r.get("event_ticker"), r["profit_per_set"]) for r in real if r not in detected
    ]
    assert real, "no injection was profitable after fees"
    assert recall >= 0.9, f"missed {missed}"
    assert precision >= 0.9, [
        (s.kind, s.event, s.reasons) for _, s in arbs if s not in true_signals
    ]
    assert not false_alarms, false_alarms
