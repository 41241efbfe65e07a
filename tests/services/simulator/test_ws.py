"""WebSocket conformance: commands, channels, seq, use_yes_price, errors, auth, faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from services.simulator.server import SimulatorServer
from shared.money import parse_count, parse_dollars

from .kit import check_ws, client, signer, start_server

SCHEMAS = {
    "subscribed": "subscribedResponsePayload",
    "unsubscribed": "unsubscribedResponsePayload",
    "error": "errorResponsePayload",
    "orderbook_snapshot": "orderbookSnapshotPayload",
    "orderbook_delta": "orderbookDeltaPayload",
    "ticker": "tickerPayload",
    "trade": "tradePayload",
    "fill": "fillPayload",
    "user_order": "userOrderPayload",
    "market_lifecycle_v2": "marketLifecycleV2Payload",
    "market_position": "marketPositionPayload",
}


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    sim = start_server()
    yield sim
    sim.stop()


async def connect(server: SimulatorServer, name: str = "alice") -> Any:
    headers = signer(name).headers("GET", "/trade-api/ws/v2")
    return await websockets.connect(server.ws_url, additional_headers=headers)


WAIT_S = 3.0


async def receive(ws: Any, count: int = 1) -> list[dict[str, Any]]:
    out = []
    for _ in range(count):
        message = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
        if message["type"] == "ok" and isinstance(message.get("msg"), list):
            check_ws("listSubscriptionsResponsePayload", message)
        elif message["type"] == "ok":
            check_ws("okResponsePayload", message)
        else:
            check_ws(SCHEMAS[message["type"]], message)
        out.append(message)
    return out


async def until(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        (message,) = await receive(ws)
        if message["type"] == kind:
            return message


def markets(server: SimulatorServer) -> list[str]:
    event = server.state.scenario.city_days[1].bracket_event
    return list(server.state.exchange.events[event].markets)


def post(server: SimulatorServer, name: str, order: dict[str, Any]) -> dict[str, Any]:
    with client(server, name) as http:
        response = http.post("/portfolio/events/orders", json=order)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_orderbook_snapshot_then_gap_free_deltas(server: SimulatorServer) -> None:
    a, b = markets(server)[:2]
    async with await connect(server) as ws:
        await ws.send(
            json.dumps(
                {
                    "id": 1,
                    "cmd": "subscribe",
                    "params": {"channels": ["orderbook_delta"], "market_tickers": [a, b]},
                }
            )
        )
        subscribed, snap_a, snap_b = await receive(ws, 3)
        sid = subscribed["msg"]["sid"]
        assert (snap_a["seq"], snap_b["seq"]) == (1, 2)
        assert snap_a["type"] == "orderbook_snapshot" and snap_a["sid"] == sid
        order = {
            "ticker": a,
            "side": "bid",
            "price": "0.0100",
            "count": "1.25",
            "time_in_force": "good_till_canceled",
            "self_trade_prevention_type": "maker",
            "client_order_id": "ws-1",
        }
        await asyncio.to_thread(post, server, "alice", order)
        delta = await until(ws, "orderbook_delta")
        assert delta["seq"] == 3 and delta["msg"]["delta_fp"] == "1.25"
        assert delta["msg"]["client_order_id"] == "ws-1"
        await asyncio.to_thread(post, server, "bob", order | {"client_order_id": "ws-2"})
        other = await until(ws, "orderbook_delta")
        assert other["seq"] == 4 and "client_order_id" not in other["msg"]
        await ws.send(
            json.dumps(
                {
                    "id": 2,
                    "cmd": "update_subscription",
                    "params": {"sid": sid, "market_tickers": [b], "action": "get_snapshot"},
                }
            )
        )
        again = await until(ws, "orderbook_snapshot")
        assert again["seq"] == 5 and again["msg"]["market_ticker"] == b
        await ws.send(json.dumps({"id": 3, "cmd": "list_subscriptions"}))
        listing = await until(ws, "ok")
        assert listing["msg"] == [{"channel": "orderbook_delta", "sid": sid}]
        await ws.send(json.dumps({"id": 4, "cmd": "unsubscribe", "params": {"sids": [sid]}}))
        assert (await until(ws, "unsubscribed"))["sid"] == sid


async def test_use_yes_price_reports_no_levels_on_yes_scale(server: SimulatorServer) -> None:
    ticker = markets(server)[2]
    book = server.state.exchange.book(ticker)
    async with await connect(server) as ws:
        await ws.send(
            json.dumps(
                {
                    "id": 1,
                    "cmd": "subscribe",
                    "params": {
                        "channels": ["orderbook_delta"],
                        "market_ticker": ticker,
                        "use_yes_price": True,
                    },
                }
            )
        )
        _, snapshot = await receive(ws, 2)
    no_levels = snapshot["msg"]["no_dollars_fp"]
    want = sorted((1_000_000 - p, c) for p, c in book.no.depth())
    got = [(round(float(p) * 1_000_000), round(float(c) * 100)) for p, c in no_levels]
    assert got == want


async def test_private_and_public_channels(server: SimulatorServer) -> None:
    ticker = markets(server)[3]
    async with await connect(server, "alice") as ws:
        await ws.send(
            json.dumps(
                {
                    "id": 1,
                    "cmd": "subscribe",
                    "params": {
                        "channels": ["fill", "user_orders", "trade", "ticker"],
                        "market_tickers": [ticker],
                    },
                }
            )
        )
        await receive(ws, 4)
        maker = {
            "ticker": ticker,
            "side": "ask",
            "price": "0.0200",
            "count": "2",
            "time_in_force": "good_till_canceled",
            "self_trade_prevention_type": "maker",
        }
        await asyncio.to_thread(post, server, "bob", maker)
        taker = maker | {
            "side": "bid",
            "price": "0.9900",
            "time_in_force": "fill_or_kill",
            "client_order_id": "take-1",
        }
        await asyncio.to_thread(post, server, "alice", taker)
        seen: dict[str, dict[str, Any]] = {}
        while not {"fill", "user_order", "trade", "ticker"} <= set(seen):
            message = (await receive(ws))[0]
            seen[message["type"]] = message
        assert seen["fill"]["msg"]["is_taker"] is True
        assert seen["fill"]["msg"]["client_order_id"] == "take-1"
        assert seen["user_order"]["msg"]["status"] == "executed"


async def test_command_errors_carry_kalshi_codes(server: SimulatorServer) -> None:
    async with await connect(server) as ws:
        cases = [
            ({"id": 1, "cmd": "dance"}, 5),
            ({"id": 2, "cmd": "subscribe"}, 2),
            ({"id": 3, "cmd": "subscribe", "params": {}}, 3),
            ({"id": 4, "cmd": "subscribe", "params": {"channels": ["nope"]}}, 8),
            ({"id": 5, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"]}}, 14),
            (
                {
                    "id": 6,
                    "cmd": "subscribe",
                    "params": {"channels": ["trade"], "market_tickers": ["NOPE"]},
                },
                16,
            ),
            ({"id": 7, "cmd": "unsubscribe", "params": {"sids": [99]}}, 7),
            (
                {
                    "id": 8,
                    "cmd": "update_subscription",
                    "params": {"sids": [1, 2], "action": "add_markets"},
                },
                12,
            ),
        ]
        for command, code in cases:
            await ws.send(json.dumps(command))
            (reply,) = await receive(ws)
            assert (reply["id"], reply["type"], reply["msg"]["code"]) == (
                command["id"],
                "error",
                code,
            )
        await ws.send("not json")
        assert (await receive(ws))[0]["msg"]["code"] == 1


async def test_handshake_needs_a_signature(server: SimulatorServer) -> None:
    with pytest.raises(websockets.exceptions.InvalidStatus) as err:
        await websockets.connect(server.ws_url)
    assert err.value.response.status_code == 401


async def test_dropped_messages_leave_seq_gaps_and_are_logged(server: SimulatorServer) -> None:
    ticker = markets(server)[4]
    async with httpx.AsyncClient(base_url=server.base_url) as sim:
        async with await connect(server) as ws:
            await ws.send(
                json.dumps(
                    {
                        "id": 1,
                        "cmd": "subscribe",
                        "params": {"channels": ["orderbook_delta"], "market_tickers": [ticker]},
                    }
                )
            )
            await receive(ws, 2)
            assert (await sim.post("/sim/faults", json={"ws_drop_rate": 1.0})).status_code == 200
            order = {
                "ticker": ticker,
                "side": "bid",
                "price": "0.0100",
                "count": "1",
                "time_in_force": "good_till_canceled",
                "self_trade_prevention_type": "maker",
            }
            await asyncio.to_thread(post, server, "alice", order)
            await asyncio.sleep(0.2)
            await sim.delete("/sim/faults")
            await asyncio.to_thread(post, server, "alice", order)
            delta = await until(ws, "orderbook_delta")
            assert delta["seq"] == 3  # seq 2 was dropped: the client must see a gap
        log = (await sim.get("/sim/faults/log")).json()["log"]
        assert any(r["fault"] == "ws_drop" for r in log)
        assert (await sim.post("/sim/faults", json={"bogus": 1})).status_code == 400


def test_http_faults_are_injected_and_logged(server: SimulatorServer) -> None:
    with httpx.Client(base_url=server.base_url) as sim, client(server) as http:
        sim.post("/sim/faults", json={"http_error_rate": 1.0, "http_error_status": 503})
        assert http.get("/exchange/status").status_code == 503
        sim.post("/sim/faults", json={"rate_limit_storm_s": 5})
        storm = http.get("/exchange/status")
        assert storm.status_code == 429 and storm.json() == {"error": "too many requests"}
        sim.post("/sim/faults", json={"reject_orders": True})
        order = {
            "ticker": markets(server)[0],
            "side": "bid",
            "price": "0.0100",
            "count": "1",
            "time_in_force": "good_till_canceled",
            "self_trade_prevention_type": "maker",
        }
        assert http.post("/portfolio/events/orders", json=order).status_code == 400
        sim.delete("/sim/faults")
        assert http.get("/exchange/status").status_code == 200
        kinds = {r["fault"] for r in sim.get("/sim/faults/log").json()["log"]}
        assert {"http_error", "rate_limit_storm", "reject_order"} <= kinds


def rest_position(server: SimulatorServer, name: str, ticker: str) -> dict[str, Any]:
    with client(server, name) as http:
        rows = http.get("/portfolio/positions", params={"ticker": ticker}).json()
    position: dict[str, Any] = rows["market_positions"][0]
    return position


@pytest.fixture
def quiet_server() -> Iterator[SimulatorServer]:
    """No agents: the only liquidity is what a test puts on the book."""
    sim = start_server(scenario="fed", agents=False)
    yield sim
    sim.stop()


async def test_market_positions_follow_every_position_change(
    quiet_server: SimulatorServer,
) -> None:
    server = quiet_server
    ticker = next(iter(server.state.exchange.markets))
    alice_id = server.state.exchange.ledger["alice"].user_id
    rest = {"ticker": ticker, "time_in_force": "good_till_canceled"}
    rest |= {"self_trade_prevention_type": "maker"}
    take = rest | {"time_in_force": "immediate_or_cancel"}
    async with await connect(server, "alice") as ws:
        await ws.send(
            json.dumps({"id": 1, "cmd": "subscribe", "params": {"channels": ["market_positions"]}})
        )
        sid = (await receive(ws))[0]["msg"]["sid"]

        async def position() -> dict[str, Any]:
            message = await until(ws, "market_position")
            assert message["sid"] == sid and message["msg"]["user_id"] == alice_id
            body: dict[str, Any] = message["msg"]
            return body

        await asyncio.to_thread(
            post, server, "bob", rest | {"side": "ask", "price": "0.4000", "count": "2"}
        )
        await asyncio.to_thread(
            post, server, "alice", take | {"side": "bid", "price": "0.4000", "count": "2"}
        )
        bought = await position()
        assert (bought["market_ticker"], bought["position_fp"]) == (ticker, "2.00")
        assert (bought["position_cost_dollars"], bought["volume_fp"]) == ("0.8000", "2.00")
        assert parse_dollars(bought["fees_paid_dollars"]) > 0
        assert bought["position_fee_cost_dollars"] == bought["fees_paid_dollars"]
        ledger = rest_position(server, "alice", ticker)
        assert bought["fees_paid_dollars"] == ledger["fees_paid_dollars"]

        await asyncio.to_thread(
            post, server, "bob", rest | {"side": "bid", "price": "0.5000", "count": "1"}
        )
        await asyncio.to_thread(
            post, server, "alice", take | {"side": "ask", "price": "0.5000", "count": "1"}
        )
        sold = await position()
        ledger = rest_position(server, "alice", ticker)
        assert (sold["position_fp"], sold["volume_fp"]) == ("1.00", "3.00")
        assert sold["position_cost_dollars"] == "0.4000"
        assert sold["realized_pnl_dollars"] == ledger["realized_pnl_dollars"]
        assert sold["fees_paid_dollars"] == ledger["fees_paid_dollars"]
        assert parse_dollars(sold["position_fee_cost_dollars"]) * 2 == parse_dollars(
            bought["position_fee_cost_dollars"]
        ), "half the opening fee goes with the half closed"

        async with httpx.AsyncClient(base_url=server.base_url) as sim:
            await sim.post("/sim/settle", json={"ticker": ticker, "result": "yes"})
        settled = await position()
        assert (settled["position_fp"], settled["position_cost_dollars"]) == ("0.00", "0.0000")
        assert parse_dollars(settled["realized_pnl_dollars"]) == parse_dollars(
            sold["realized_pnl_dollars"]
        ) + parse_dollars("1.00") - parse_dollars("0.40")
        assert parse_count(settled["volume_fp"]) == parse_count("3")
        with pytest.raises(TimeoutError):  # bob's changes are not alice's to see
            await asyncio.wait_for(until(ws, "market_position"), 0.3)


async def test_a_slow_reader_overflows_its_buffer_and_gets_error_25() -> None:
    sim = start_server(scenario="fed", agents=False, ws_queue_limit=3)
    try:
        flooded, quiet = list(sim.state.exchange.markets)[:2]
        async with await connect(sim) as ws:
            await ws.send(
                json.dumps(
                    {
                        "id": 1,
                        "cmd": "subscribe",
                        "params": {"channels": ["orderbook_delta"], "market_tickers": [flooded]},
                    }
                )
            )
            subscribed, _ = await receive(ws, 2)
            book_sid = subscribed["msg"]["sid"]
            await ws.send(
                json.dumps(
                    {
                        "id": 2,
                        "cmd": "subscribe",
                        "params": {"channels": ["ticker"], "market_tickers": [quiet]},
                    }
                )
            )
            ticker_sid = (await receive(ws))[0]["msg"]["sid"]
            burst = [
                {
                    "ticker": flooded,
                    "side": "bid",
                    "price": f"0.{10 + i:02d}00",
                    "count": "1",
                    "time_in_force": "good_till_canceled",
                    "self_trade_prevention_type": "maker",
                }
                for i in range(8)
            ]
            with client(sim) as http:  # 8 deltas queued at once, 3 fit
                answer = http.post("/portfolio/events/orders/batched", json={"orders": burst})
            assert answer.status_code == 201
            (error,) = await receive(ws)
            assert (error["type"], error["msg"]["code"], error["sid"]) == ("error", 25, book_sid)
            await ws.send(json.dumps({"id": 3, "cmd": "list_subscriptions"}))
            listing = await until(ws, "ok")
            assert listing["msg"] == [{"channel": "ticker", "sid": ticker_sid}], "only it dropped"
            order = burst[0] | {"ticker": quiet}
            await asyncio.to_thread(post, sim, "alice", order)
            assert (await until(ws, "ticker"))["sid"] == ticker_sid
            await ws.send(
                json.dumps(
                    {
                        "id": 4,
                        "cmd": "subscribe",
                        "params": {"channels": ["orderbook_delta"], "market_tickers": [flooded]},
                    }
                )
            )
            snapshot = await until(ws, "orderbook_snapshot")
            assert snapshot["seq"] == 1
            prices = {p for p, _ in snapshot["msg"]["yes_dollars_fp"]}
            assert {o["price"] for o in burst} <= prices, "nothing lost on the book itself"
        with httpx.Client(base_url=sim.base_url) as http:
            log = http.get("/sim/faults/log").json()["log"]
        overflows = [r for r in log if r["fault"] == "ws_buffer_overflow"]
        assert [(r["target"], r["detail"]) for r in overflows] == [
            ("ws:alice", f"sid {book_sid}: 3 dropped")
        ]
    finally:
        sim.stop()
