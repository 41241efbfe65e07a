"""REST conformance: every response validates against Kalshi's OpenAPI schemas; auth; limits."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from services.simulator.server import SimulatorServer
from shared.kalshi.signing import Signer

from .kit import KEYS, check_rest, client, start_server


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    sim = start_server()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def alice(server: SimulatorServer) -> Iterator[httpx.Client]:
    with client(server, "alice") as http:
        yield http


@pytest.fixture(scope="module")
def bob(server: SimulatorServer) -> Iterator[httpx.Client]:
    with client(server, "bob") as http:
        yield http


def weather_event(server: SimulatorServer) -> str:
    return server.state.scenario.city_days[0].bracket_event


def test_market_data_conforms(server: SimulatorServer, alice: httpx.Client) -> None:
    check_rest("ExchangeStatus", alice.get("/exchange/status").json())
    seen: list[str] = []
    cursor = ""
    while True:
        body = alice.get("/markets", params={"limit": 250, "cursor": cursor}).json()
        check_rest("GetMarketsResponse", body)
        seen += [m["ticker"] for m in body["markets"]]
        cursor = body["cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == len(server.state.exchange.markets) > 300
    event = weather_event(server)
    body = alice.get("/events", params={"with_nested_markets": "true", "limit": 5}).json()
    check_rest("GetEventsResponse", body)
    body = alice.get(f"/events/{event}").json()
    check_rest("GetEventResponse", body)
    assert body["event"]["mutually_exclusive"] is True
    market = body["markets"][1]["ticker"]
    check_rest("GetMarketResponse", alice.get(f"/markets/{market}").json())
    book = alice.get(f"/markets/{market}/orderbook", params={"depth": 3}).json()
    check_rest("GetMarketOrderbookResponse", book)
    assert book["orderbook_fp"]["yes_dollars"], "agents quote every market"
    books = alice.get("/markets/orderbooks", params={"tickers": market}).json()
    check_rest("GetMarketOrderbooksResponse", books)
    series = alice.get("/series").json()
    check_rest("GetSeriesListResponse", series)
    by_ticker = {s["ticker"]: s for s in series["series"]}
    assert by_ticker["KXSIMC"]["fee_multiplier"] == 0.5
    assert by_ticker["KXSIMB"]["fee_type"] == "quadratic_with_maker_fees"
    check_rest("GetSeriesResponse", alice.get("/series/KXHIGHNY").json())
    filtered = alice.get("/markets", params={"event_ticker": event}).json()["markets"]
    assert {m["event_ticker"] for m in filtered} == {event} and len(filtered) == 6


def test_errors_conform(alice: httpx.Client) -> None:
    response = alice.get("/markets/NOPE")
    assert response.status_code == 404
    check_rest("ErrorResponse", response.json())
    response = alice.post("/portfolio/orders", json={"ticker": "NOPE"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_parameters"


def test_legacy_order_lifecycle_conforms(
    server: SimulatorServer, alice: httpx.Client, bob: httpx.Client
) -> None:
    market = server.state.exchange.events[weather_event(server)].markets[2]
    body = {
        "ticker": market,
        "side": "yes",
        "action": "buy",
        "count": 3,
        "yes_price": 2,
        "client_order_id": "legacy-1",
    }
    created = alice.post("/portfolio/orders", json=body)
    assert created.status_code == 201, created.text
    check_rest("CreateOrderResponse", created.json())
    order = created.json()["order"]
    assert order["status"] == "resting" and order["book_side"] == "bid"
    order_id = order["order_id"]
    check_rest("GetOrderResponse", alice.get(f"/portfolio/orders/{order_id}").json())
    check_rest(
        "GetOrdersResponse", alice.get("/portfolio/orders", params={"ticker": market}).json()
    )
    queue = alice.get(f"/portfolio/orders/{order_id}/queue_position").json()
    check_rest("GetOrderQueuePositionResponse", queue)
    queues = alice.get("/portfolio/orders/queue_positions", params={"market_tickers": market})
    check_rest("GetOrderQueuePositionsResponse", queues.json())
    amend = {"ticker": market, "side": "yes", "action": "buy", "yes_price": 3, "count": 4}
    amended = alice.post(f"/portfolio/orders/{order_id}/amend", json=amend)
    assert amended.status_code == 200, amended.text
    check_rest("AmendOrderResponse", amended.json())
    assert amended.json()["order"]["yes_price_dollars"] == "0.0300"
    decreased = alice.post(f"/portfolio/orders/{order_id}/decrease", json={"reduce_by": 1})
    check_rest("DecreaseOrderResponse", decreased.json())
    assert decreased.json()["order"]["remaining_count_fp"] == "3.00"
    cancelled = alice.delete(f"/portfolio/orders/{order_id}")
    check_rest("CancelOrderResponse", cancelled.json())
    assert cancelled.json()["reduced_by_fp"] == "3.00"
    batch = alice.post(
        "/portfolio/orders/batched",
        json={"orders": [body | {"client_order_id": "b1"}, {"ticker": "NOPE"}]},
    )
    check_rest("BatchCreateOrdersResponse", batch.json())
    first, second = batch.json()["orders"]
    assert first["order"] and second["error"]["code"] == "invalid_parameters"
    gone = alice.request(
        "DELETE",
        "/portfolio/orders/batched",
        json={"orders": [{"order_id": first["order"]["order_id"]}]},
    )
    check_rest("BatchCancelOrdersResponse", gone.json())


def test_trading_updates_portfolio(
    server: SimulatorServer, alice: httpx.Client, bob: httpx.Client
) -> None:
    market = server.state.exchange.events[weather_event(server)].markets[0]
    rest = bob.post(
        "/portfolio/events/orders",
        json={
            "ticker": market,
            "side": "ask",
            "price": "0.0100",
            "count": "2.50",
            "time_in_force": "good_till_canceled",
            "self_trade_prevention_type": "maker",
            "post_only": False,
        },
    )
    assert rest.status_code == 201, rest.text
    take = alice.post(
        "/portfolio/events/orders",
        json={
            "ticker": market,
            "side": "bid",
            "price": "0.9900",
            "count": "2.50",
            "time_in_force": "immediate_or_cancel",
            "self_trade_prevention_type": "taker_at_cross",
            "client_order_id": "v2-take",
        },
    )
    assert take.status_code == 201, take.text
    result = take.json()
    assert result["client_order_id"] == "v2-take" and float(result["fill_count"]) > 0
    assert set(result) >= {
        "order_id",
        "fill_count",
        "remaining_count",
        "ts_ms",
        "average_fill_price",
    }
    balance = alice.get("/portfolio/balance").json()
    check_rest("GetBalanceResponse", balance)
    positions = alice.get("/portfolio/positions").json()
    check_rest("GetPositionsResponse", positions)
    assert any(
        p["ticker"] == market and float(p["position_fp"]) > 0 for p in positions["market_positions"]
    )
    fills = alice.get("/portfolio/fills", params={"ticker": market}).json()
    check_rest("GetFillsResponse", fills)
    assert fills["fills"][0]["is_taker"] is True
    check_rest("GetTradesResponse", alice.get("/markets/trades", params={"ticker": market}).json())
    server.call(lambda: (server.state.exchange.settle(market, "yes"), server.state.commit()))
    settlements = alice.get("/portfolio/settlements").json()
    check_rest("GetSettlementsResponse", settlements)
    assert settlements["settlements"][0]["market_result"] == "yes"
    closed = alice.post(
        "/portfolio/events/orders",
        json={
            "ticker": market,
            "side": "bid",
            "price": "0.5000",
            "count": "1",
            "time_in_force": "good_till_canceled",
            "self_trade_prevention_type": "maker",
        },
    )
    assert closed.status_code == 400 and closed.json()["code"] == "market_inactive"


def test_v2_amend_decrease_cancel_batch(server: SimulatorServer, alice: httpx.Client) -> None:
    market = server.state.exchange.events[weather_event(server)].markets[3]
    order = {
        "ticker": market,
        "side": "bid",
        "price": "0.0100",
        "count": "5",
        "time_in_force": "good_till_canceled",
        "self_trade_prevention_type": "maker",
    }
    batch = alice.post(
        "/portfolio/events/orders/batched", json={"orders": [order, order | {"price": "0.0050"}]}
    )
    assert batch.status_code == 201
    ok, bad = batch.json()["orders"]
    assert bad["error"]["code"] == "invalid_order"  # off the cent grid
    order_id = ok["order_id"]
    amended = alice.post(
        f"/portfolio/events/orders/{order_id}/amend",
        json={"ticker": market, "side": "bid", "price": "0.0200", "count": "6"},
    )
    assert amended.status_code == 200 and amended.json()["remaining_count"] == "6.00"
    mismatch = alice.post(
        f"/portfolio/events/orders/{order_id}/amend",
        json={"ticker": market, "side": "ask", "price": "0.02", "count": "6"},
    )
    assert mismatch.json()["code"] == "order_side_mismatch"
    decreased = alice.post(f"/portfolio/events/orders/{order_id}/decrease", json={"reduce_to": 2})
    assert decreased.json()["remaining_count"] == "2.00"
    cancelled = alice.delete(f"/portfolio/events/orders/{order_id}")
    assert cancelled.json()["reduced_by"] == "2.00"
    missing = alice.delete(f"/portfolio/events/orders/{order_id}")
    assert missing.status_code == 404


def test_missing_bad_and_stale_signatures_get_401(server: SimulatorServer) -> None:
    path = "/portfolio/balance"
    with httpx.Client(base_url=server.rest_url) as anonymous:
        assert anonymous.get(path).status_code == 401
        stale = Signer("alice", KEYS["alice"], clock_ms=lambda: int(time.time() * 1000) - 120_000)
        response = anonymous.get(path, headers=stale.headers("GET", f"/trade-api/v2{path}"))
        assert response.status_code == 401 and "stale" in response.json()["message"]
        wrong_key = Signer("alice", KEYS["bob"])
        response = anonymous.get(path, headers=wrong_key.headers("GET", f"/trade-api/v2{path}"))
        assert response.status_code == 401
        check_rest("ErrorResponse", response.json())
        good = Signer("alice", KEYS["alice"])
        assert (
            anonymous.get(path, headers=good.headers("GET", f"/trade-api/v2{path}")).status_code
            == 200
        )


def test_rate_limits_as_token_buckets() -> None:
    sim = start_server(tier="basic", scenario="fed", agents=False)
    try:
        with client(sim, "alice") as http:
            started, ok = time.monotonic(), 0
            while (status := http.get("/exchange/status").status_code) == 200 and ok < 500:
                ok += 1
            elapsed = time.monotonic() - started
            # 400 read tokens at 10 each, refilled at 200 tokens (20 calls) per second
            assert status == 429 and 40 <= ok <= 40 + 20 * elapsed + 1
            body = {
                "ticker": "KXFED-NONE",
                "side": "yes",
                "action": "buy",
                "count": 1,
                "yes_price": 5,
            }
            first = http.post("/portfolio/orders", json=body)  # legacy create costs 100 of 100
            second = http.post("/portfolio/orders", json=body)
            assert first.status_code != 429 and second.status_code == 429
            assert second.json() == {"error": "too many requests"}
    finally:
        sim.stop()
