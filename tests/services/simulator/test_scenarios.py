"""Scenarios, agents, mispricings with their truth, and replay."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import httpx

from services.simulator.agents import Agents
from services.simulator.model import BookDelta, ExchangeEvent
from services.simulator.scenarios import build_scenario
from services.simulator.server import build_state
from services.simulator.state import SimSettings, SimState
from shared import fees
from shared.money import ONE_DOLLAR, parse_count, parse_dollars

from .kit import start_server

START_MS = 1_778_500_000_000  # 2026-05-11


def make_agents(seed: int = 7, rate: float = 500.0) -> tuple[SimState, Agents]:
    clock = {"now": START_MS}
    state = SimState(SimSettings(seed=seed, tier=None), clock_ms=lambda: clock["now"])
    scenario = build_scenario("mixed", seed, state.exchange, START_MS)
    state.scenario = scenario
    agents = Agents(state, scenario, rate, mispricing_rate=0.0, seed=seed)
    agents.quote_all()
    return state, agents


def test_scenarios_list_markets_as_kalshi_does() -> None:
    state, _ = make_agents()
    exchange = state.exchange
    assert len(exchange.markets) > 300
    day = state.scenario.city_days[0]
    brackets = exchange.events[day.bracket_event]
    assert brackets.mutually_exclusive and len(brackets.markets) == 6
    kinds = [exchange.markets[t].strike_type for t in brackets.markets]
    assert kinds == ["less", "between", "between", "between", "between", "greater"]
    assert abs(sum(state.scenario.fair[t] for t in brackets.markets) - 1) < 0.1
    results = [state.scenario.result_of(t) for t in brackets.markets]
    assert results.count("yes") == 1, "one day's brackets are exhaustive and exclusive"
    decision = next(e for e in exchange.events.values() if e.series_ticker == "KXFEDDECISION")
    assert decision.mutually_exclusive and len(decision.markets) == 5


def test_same_seed_same_flow() -> None:
    def run() -> list[tuple[str, list[tuple[int, int]]]]:
        state, agents = make_agents(seed=3)
        for _ in range(40):
            agents.step()
        return [(t, state.exchange.book(t).yes.depth()) for t in sorted(state.exchange.markets)]

    assert run() == run()


def test_flow_rate_is_respected() -> None:
    state, agents = make_agents(rate=2000.0)
    published = 0
    original = state.hub.publish

    def count(events):  # type: ignore[no-untyped-def]
        nonlocal published
        published += sum(type(e).__name__ == "BookDelta" for e in events)
        original(events)

    state.hub.publish = count  # type: ignore[method-assign]
    for _ in range(20):  # one simulated second
        agents.step()
    assert 1800 <= published <= 2300


def test_bracket_mispricing_is_real_and_logged() -> None:
    state, agents = make_agents()
    record = agents.inject("bracket_sum")
    assert record is not None and record["end_ms"] is None
    event = state.exchange.events[record["event_ticker"]]
    series = state.exchange.series[event.series_ticker]
    rate = fees.taker_rate(series.fee_type, series.fee_multiplier)
    total = 0
    for ticker in event.markets:
        best_no = state.exchange.book(ticker).no.best()
        assert best_no is not None
        ask = ONE_DOLLAR - best_no
        total += ask + fees.fee(ask, 100, rate)
    assert total < ONE_DOLLAR, "buying every bracket must pay off after fees"
    assert state.scenario.truth_json()["mispricings"][0]["id"] == record["id"]
    inversion = agents.inject("ladder_inversion")
    assert inversion is not None
    low, high = inversion["lower_strike_market"], inversion["higher_strike_market"]
    high_bid = state.exchange.book(high).yes.best()
    low_ask = ONE_DOLLAR - (state.exchange.book(low).no.best() or 0)
    assert high_bid is not None and high_bid > low_ask


def write_recording(path: Path) -> dict[tuple[str, str], dict[int, int]]:
    messages = [
        {
            "type": "orderbook_snapshot",
            "sid": 1,
            "seq": 1,
            "msg": {
                "market_ticker": "KXREC-26JAN01-A",
                "market_id": "9b0f6b43-5b68-4f9f-9f02-9a2d1b8ac1a1",
                "yes_dollars_fp": [["0.0800", "300.00"], ["0.2200", "333.00"]],
                "no_dollars_fp": [["0.5400", "20.00"], ["0.5600", "146.00"]],
            },
        },
        {
            "type": "orderbook_snapshot",
            "sid": 1,
            "seq": 2,
            "msg": {
                "market_ticker": "KXREC-26JAN01-B",
                "market_id": "9b0f6b43-5b68-4f9f-9f02-9a2d1b8ac1a2",
                "yes_dollars_fp": [["0.4100", "10.50"]],
            },
        },
        {
            "type": "orderbook_delta",
            "sid": 1,
            "seq": 3,
            "msg": {
                "market_ticker": "KXREC-26JAN01-A",
                "price_dollars": "0.2200",
                "delta_fp": "-33.00",
                "side": "yes",
            },
        },
        {
            "type": "orderbook_delta",
            "sid": 1,
            "seq": 4,
            "msg": {
                "market_ticker": "KXREC-26JAN01-A",
                "price_dollars": "0.5600",
                "delta_fp": "-146.00",
                "side": "no",
            },
        },
        {"type": "trade", "sid": 2, "msg": {"market_ticker": "KXREC-26JAN01-A"}},
        {
            "type": "orderbook_delta",
            "sid": 1,
            "seq": 5,
            "msg": {
                "market_ticker": "KXREC-26JAN01-B",
                "price_dollars": "0.5005",
                "delta_fp": "7.25",
                "side": "no",
            },
        },
    ]
    path.write_text("\n".join(json.dumps(m) for m in messages) + "\n")
    books: dict[tuple[str, str], dict[int, int]] = {}
    for message in messages:
        body = message["msg"]
        if message["type"] == "orderbook_snapshot":
            for leg in ("yes", "no"):
                books[body["market_ticker"], leg] = {
                    parse_dollars(p): parse_count(c) for p, c in body.get(f"{leg}_dollars_fp", [])
                }
        elif message["type"] == "orderbook_delta":
            level = books[body["market_ticker"], body["side"]]
            price = parse_dollars(body["price_dollars"])
            level[price] = level.get(price, 0) + parse_count(body["delta_fp"])
    return {k: {p: c for p, c in v.items() if c} for k, v in books.items()}


def test_replay_reproduces_books_exactly(tmp_path: Path) -> None:
    path = tmp_path / "recording.jsonl"
    want = write_recording(path)
    sim = start_server(scenario="replay", replay_file=str(path), replay_speed=0.0)
    try:
        deadline = time.monotonic() + 5
        while not sim.state.replay_done and time.monotonic() < deadline:
            time.sleep(0.02)
        with httpx.Client(base_url=sim.rest_url) as http:
            for ticker in ("KXREC-26JAN01-A", "KXREC-26JAN01-B"):
                book = http.get(f"/markets/{ticker}/orderbook").json()["orderbook_fp"]
                for leg in ("yes", "no"):
                    got = {parse_dollars(p): parse_count(c) for p, c in book[f"{leg}_dollars"]}
                    assert got == want.get((ticker, leg), {}), (ticker, leg)
    finally:
        sim.stop()


def test_weather_feed_serves_the_hidden_temperatures() -> None:
    sim = start_server(scenario="weather", agents=False)
    try:
        with httpx.Client(base_url=sim.base_url) as http:
            url = "/nws/stations/KNYC/observations/latest"
            assert http.get(url, headers={"User-Agent": ""}).status_code == 403
            latest = http.get(url, headers={"User-Agent": "test (ops@example.com)"}).json()
            temperature = latest["properties"]["temperature"]
            assert (
                temperature["unitCode"] == "wmoUnit:degC" and temperature["qualityControl"] == "V"
            )
            day = next(d for d in sim.state.scenario.city_days if d.city.station == "KNYC")
            stamp = latest["properties"]["timestamp"]
            at_ms = int(datetime.fromisoformat(stamp).timestamp() * 1000)
            assert abs(temperature["value"] - (day.temperature_f(at_ms) - 32) * 5 / 9) < 0.06
            listing = http.get(
                "/nws/stations/KNYC/observations", params={"limit": 3}, headers={"User-Agent": "t"}
            ).json()
            assert listing["type"] == "FeatureCollection" and 1 <= len(listing["features"]) <= 3
            ticker = sim.state.exchange.events[day.bracket_event].markets[0]
            settled = http.post("/sim/settle", json={"ticker": ticker}).json()
            assert settled["result"] == sim.state.scenario.result_of(ticker)
    finally:
        sim.stop()


def test_agents_produce_the_configured_flow_per_simulated_second() -> None:
    """3,000 book changes a second are 150 per 50 ms tick; counted on the tick clock,
    not the wall clock (the wall-clock rate is a figure of make bench)."""
    settings = SimSettings(
        port=0, flow_rate=3000.0, mispricing_rate=0, clock="tick", start_ms=1_767_000_000_000
    )
    state, _ = build_state(settings)
    assert state.agents is not None
    seen = [0]

    def count(events: list[ExchangeEvent]) -> None:
        seen[0] += sum(isinstance(e, BookDelta) for e in events)

    state.agents.quote_all()
    state.commit()
    state.observers.append(count)
    for _ in range(40):  # two simulated seconds
        state.agents.step()
    assert 2 * 2700 <= seen[0] <= 2 * 3300, seen[0]
