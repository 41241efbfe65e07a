"""Markets settle themselves at close; mispricing windows end when traded or expired;
one seed on the tick clock gives a byte-identical feed."""

from __future__ import annotations

import json
from typing import Any, cast

from services.simulator.agents import MAKER, Agents, lifecycle_step
from services.simulator.engine import OrderRequest
from services.simulator.model import BookSide, MarketStatus, TimeInForce
from services.simulator.scenarios import DAY_MS, build_scenario
from services.simulator.server import build_state
from services.simulator.state import SimSettings, SimState
from services.simulator.ws import Connection
from shared.money import COUNT_PER_CONTRACT, ONE_DOLLAR, dollars

START_MS = 1_778_500_000_000  # 2026-05-11
TICKS_PER_S = 20


class Clock:
    def __init__(self) -> None:
        self.now = START_MS

    def __call__(self) -> int:
        return self.now


def make_agents(clock: Clock, rate: float = 0.0, seed: int = 7) -> tuple[SimState, Agents]:
    state = SimState(SimSettings(seed=seed, tier=None), clock_ms=clock)
    scenario = build_scenario("mixed", seed, state.exchange, START_MS)
    state.scenario = scenario
    agents = Agents(state, scenario, rate, mispricing_rate=0.0, seed=seed)
    agents.quote_all()
    return state, agents


def buy(state: SimState, key_id: str, ticker: str, contracts: int) -> None:
    """Take ``contracts`` YES at whatever the maker asks."""
    state.exchange.place(
        key_id,
        OrderRequest(
            ticker,
            BookSide.BID,
            ONE_DOLLAR - ONE_DOLLAR // 100,  # $0.99: on every grid
            contracts * COUNT_PER_CONTRACT,
            TimeInForce.IOC,
        ),
    )
    state.commit()


def test_every_market_settles_at_its_close_by_the_hidden_truth() -> None:
    clock = Clock()
    state, agents = make_agents(clock)
    exchange, scenario = state.exchange, state.scenario
    exchange.open_account("alice", dollars(10_000))
    decision = next(t for t in exchange.markets if t.startswith("KXFEDDECISION-"))
    ladder = next(t for t in exchange.markets if t.startswith("KXFED-"))
    generic = scenario.generic[0]
    weather = exchange.events[scenario.city_days[0].bracket_event].markets[2]
    held = (decision, ladder, generic, weather)
    for ticker in held:
        buy(state, "alice", ticker, 3)
        assert exchange.ledger["alice"].holding(ticker) == 3 * COUNT_PER_CONTRACT
    cash = exchange.ledger["alice"].cash

    clock.now = START_MS + 8 * DAY_MS  # past weather (2 days) and generic (7 days) closes
    for _ in range(TICKS_PER_S):
        agents.step()
    for ticker in (generic, weather):
        assert exchange.markets[ticker].status is MarketStatus.FINALIZED
    assert exchange.markets[decision].status is MarketStatus.ACTIVE, "the meeting is later"

    clock.now = START_MS + 31 * DAY_MS
    for _ in range(TICKS_PER_S):
        agents.step()
    results = {t: m.result for t, m in exchange.markets.items()}
    assert all(m.status is MarketStatus.FINALIZED for m in exchange.markets.values())
    assert set(results.values()) == {"yes", "no"}
    assert results == {t: scenario.result_of(t) for t in exchange.markets}
    fed_decisions = [t for t in results if t.startswith("KXFEDDECISION-")]
    assert [results[t] for t in fed_decisions].count("yes") == 1
    ladder_results = [results[t] for t in sorted(scenario.fed_ladder, key=scenario.fed_ladder.get)]
    assert ladder_results == sorted(ladder_results, reverse=True), "yes below the rate, no above"
    for day in scenario.city_days:
        brackets = exchange.events[day.bracket_event].markets
        assert [results[t] for t in brackets].count("yes") == 1
    won = sum(results[t] == "yes" for t in held)
    account = exchange.ledger["alice"]
    assert account.positions == {}, "settlement closes positions"
    assert account.cash == cash + won * 3 * ONE_DOLLAR
    assert sorted(s.ticker for s in account.settlements) == sorted(held)
    truth = scenario.truth_json()
    assert truth["results"] == results


def test_markets_settle_on_time_without_agents() -> None:
    settings = SimSettings(scenario="fed", agents=False, clock="tick", start_ms=START_MS)
    state, tasks = build_state(settings)
    assert len(tasks) == 1 and state.tick_clock is not None
    step = lifecycle_step(state, state.scenario)
    for _ in range(TICKS_PER_S):
        step()
    assert state.clock_ms() == START_MS + 1000, "the tick clock moves 50 ms a tick"
    assert all(m.status is MarketStatus.ACTIVE for m in state.exchange.markets.values())
    state.tick_clock.advance(31 * DAY_MS)
    for _ in range(TICKS_PER_S):
        step()
    assert all(m.status is MarketStatus.FINALIZED for m in state.exchange.markets.values())


def test_a_mispricing_ends_when_traded_away_or_when_it_expires() -> None:
    clock = Clock()
    state, agents = make_agents(clock, rate=2000.0)
    exchange = state.exchange
    exchange.open_account("alice", dollars(10_000))

    stale = agents.inject("stale_quote")
    assert stale is not None and stale["ended_by"] is None
    (ticker,) = stale["markets"]
    side = BookSide.ASK if stale["direction"] == "too_low" else BookSide.BID
    assert stale["exposed_quotes"] == [f"{ticker}:{side.value}"]
    for _ in range(10):  # the noise taker leaves it alone
        clock.now += 50
        agents.step()
    assert stale["ended_by"] is None and ticker in agents.bias

    quote = exchange.orders[agents.quotes[ticker, side]]
    clock.now += 7
    traded_at = clock.now
    exchange.place(
        "alice",
        OrderRequest(ticker, side.opposite, quote.yes_price, COUNT_PER_CONTRACT, TimeInForce.IOC),
    )
    state.commit()
    clock.now += 43
    agents.step()
    assert stale["ended_by"] == "traded" and stale["traded_by"] == "alice"
    assert stale["end_ms"] == traded_at < stale["planned_end_ms"]
    assert ticker not in agents.bias, "the maker, picked off, quotes around fair again"
    fair = round(state.scenario.fair[ticker] * ONE_DOLLAR)
    book = exchange.book(ticker)
    best_bid, best_no = book.yes.best(), book.no.best()
    assert best_bid is not None and best_no is not None
    assert best_bid < fair < ONE_DOLLAR - best_no

    lasting = agents.inject("ladder_inversion")
    assert lasting is not None
    clock.now = lasting["planned_end_ms"]
    agents.step()
    assert lasting["ended_by"] == "expired" and lasting["end_ms"] == lasting["planned_end_ms"]
    assert "traded_by" not in lasting
    assert [m["ended_by"] for m in state.scenario.truth_json()["mispricings"]] == [
        "traded",
        "expired",
    ]
    assert all(exchange.ledger[MAKER].holding(t) == 0 for t in lasting["markets"])


def feed(seed: int, ticks: int = 60) -> list[str]:
    """Every orderbook and trade message a subscriber to all markets gets, as sent."""
    settings = SimSettings(
        seed=seed,
        scenario="mixed",
        clock="tick",
        start_ms=START_MS,
        flow_rate=3000.0,
        mispricing_rate=2.0,
        tier=None,
    )
    state, _ = build_state(settings)
    conn = Connection(cast(Any, None), "observer", "observer")
    state.hub.connections.add(conn)
    tickers = sorted(state.exchange.markets)
    params = {"channels": ["orderbook_delta", "trade"], "market_tickers": tickers}
    state.hub.handle(conn, json.dumps({"id": 1, "cmd": "subscribe", "params": params}))
    state.agents.quote_all()
    for _ in range(ticks):
        state.agents.step()
    return [text for _, text in conn.pending]


def test_one_seed_on_the_tick_clock_gives_a_byte_identical_feed() -> None:
    first, second = feed(seed=11), feed(seed=11)
    deltas = [m for m in first if '"type":"orderbook_delta"' in m]
    assert len(deltas) > 8000, "three seconds at 3000 book changes a second"
    assert f'"ts_ms":{START_MS + 3000}' in deltas[-1], "timestamps are scenario time"
    assert first == second
    assert feed(seed=12, ticks=5)[:2000] != first[:2000]
