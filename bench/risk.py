"""Risk decisions inside the process: how many per second, and the latency of one.

A guardian with 1,000 markets in 200 events, 150 open orders and 300 held
positions decides a stream of one- and three-leg signals (most approved, some
refused at different checks); each ``decide`` is timed alone, and the
approved orders are then reported done (untimed), as execution would.
"""

from __future__ import annotations

import random
import time
from typing import Final

import numpy as np

from bench.figures import Figure
from services.risk.guardian import Guardian
from shared.messages import (
    Action,
    BookSnapshot,
    Fill,
    Heartbeat,
    Leg,
    Level,
    MarketInfo,
    OrderEvent,
    OrderIntent,
    OrderStatus,
    PriceRange,
    Side,
    Signal,
)
from shared.money import ONE_DOLLAR, cents, contracts
from shared.risk import RiskLimits

EVENTS: Final = 200
PER_EVENT: Final = 5
SIGNALS: Final = 20_000
NOW: Final = 1_800_000_000 * 10**9


def _market(event: int, n: int) -> MarketInfo:
    return MarketInfo(
        market=f"KXB{event % 20}-{event}-M{n}",
        event=f"KXB{event % 20}-{event}",
        series=f"KXB{event % 20}",
        status="active",
        close_ts_ns=NOW + 86_400 * 10**9,
        price_ranges=[PriceRange(0, ONE_DOLLAR, cents(1))],
        mutually_exclusive=True,
    )


def _guardian(rng: random.Random) -> tuple[Guardian, list[MarketInfo]]:
    limits = RiskLimits(submit_rate_per_s=1e9, submit_burst=10**9, max_open_orders=100_000)
    g = Guardian.fresh(limits, NOW)
    markets = [_market(e, n) for e in range(EVENTS) for n in range(PER_EVENT)]
    for info in markets:
        g.on_market(info)
    books = [
        BookSnapshot(
            market=i.market,
            event=i.event,
            yes_bids=[Level(cents(30), contracts(100))],
            no_bids=[Level(cents(60), contracts(100))],
            seq=1,
        )
        for i in markets
    ]
    g.on_market_data(books, NOW)
    g.on_heartbeat(
        Heartbeat(
            service="ingest",
            instance="i",
            version="1",
            role="active",
            ts_ns=NOW,
            info={"kalshi_feed": "fresh"},
        ),
        NOW,
    )
    for n, info in enumerate(rng.sample(markets, 300)):
        fill = Fill(
            trade_id=f"t{n}",
            order_id="o",
            client_order_id=f"c{n}",
            market=info.market,
            side=Side.YES,
            action=Action.BUY,
            price=cents(40),
            count=contracts(2),
            fee=cents(2),
            is_taker=True,
            ts_ns=NOW,
        )
        g.on_fill(fill)
    for n, info in enumerate(rng.sample(markets, 150)):
        leg = Leg(market=info.market, side=Side.NO, action=Action.BUY, price=cents(20), count=100)
        g.on_order(
            OrderEvent(
                client_order_id=f"r{n}",
                order_id="o",
                market=info.market,
                status=OrderStatus.RESTING,
                leg=leg,
                remaining=100,
            ),
            NOW,
        )
    return g, markets


def _signal(rng: random.Random, n: int, markets: list[MarketInfo]) -> Signal:
    first = rng.randrange(len(markets) // PER_EVENT) * PER_EVENT
    legs = [
        Leg(
            market=markets[first + k].market,
            side=Side.YES,
            action=Action.BUY,
            price=cents(rng.randint(35, 45)),
            count=contracts(rng.randint(1, 3)),
        )
        for k in range(rng.choice((1, 3)))
    ]
    return Signal(
        signal_id=f"s{n}",
        strategy="arbitrage",
        kind="atomic_yes",
        event=markets[first].event,
        legs=legs,
        edge=cents(2),
        model_p=1.0,
        kelly_fraction=0.01,
        confidence=1.0,
        ev=cents(5),
        aroc=1.0,
        expires_ns=NOW + 10**12,
    )


def _settle_orders(guardian: Guardian, intent: OrderIntent) -> None:
    """Execution's answer (untimed): the orders are done, so open orders stay near 150."""
    for order in intent.orders:
        done = OrderEvent(
            client_order_id=order.client_order_id,
            order_id="o",
            market=order.leg.market,
            status=OrderStatus.CANCELED,
            leg=order.leg,
        )
        guardian.on_order(done, NOW)


def run() -> list[Figure]:
    rng = random.Random(11)
    guardian, markets = _guardian(rng)
    signals = [_signal(rng, n, markets) for n in range(SIGNALS)]
    samples = []
    approved = 0
    started = time.perf_counter_ns()
    for signal in signals:
        begin = time.perf_counter_ns()
        decision = guardian.decide(signal, NOW)
        samples.append(time.perf_counter_ns() - begin)
        approved += decision.verdict.approved
        if decision.intent is not None:
            _settle_orders(guardian, decision.intent)
    elapsed = (time.perf_counter_ns() - started) / 1e9
    p50, p99 = np.percentile(samples, [50, 99]) / 1000
    note = f"{approved} of {SIGNALS} approved; 1,000 markets, 300 positions, 150+ open orders"
    return [
        Figure("risk_decisions_per_s", SIGNALS / elapsed, "1/s", note),
        Figure("risk_decision_p50_us", float(p50), "us", ""),
        Figure("risk_decision_p99_us", float(p99), "us", "goal < 200 us"),
    ]


if __name__ == "__main__":
    from bench.figures import print_table

    print_table(run())
