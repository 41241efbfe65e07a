"""Faults on the wire: duplicates, reorders, disconnects, feed stalls, latency; all logged."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame, Opcode

from services.simulator.server import SimulatorServer

from .kit import client, signer, start_server

PING_S = 0.2
WAIT_S = 3.0


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    sim = start_server(scenario="weather", agents=False, ping_interval_s=PING_S)
    yield sim
    sim.stop()


@pytest.fixture(autouse=True)
def no_faults_left(server: SimulatorServer) -> Iterator[None]:
    yield
    httpx.delete(f"{server.base_url}/sim/faults")


class Recorder(ClientConnection):
    """A client connection that notes when every text message and ping frame arrived."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frames: list[tuple[float, str]] = []

    def process_event(self, event: Any) -> None:
        super().process_event(event)
        if isinstance(event, Frame):
            if event.opcode is Opcode.PING:
                self.frames.append((time.monotonic(), "ping"))
            elif event.opcode is Opcode.TEXT:
                self.frames.append((time.monotonic(), "text"))


async def connect(server: SimulatorServer, name: str = "alice") -> Recorder:
    headers = signer(name).headers("GET", "/trade-api/ws/v2")
    ws = await websockets.connect(
        server.ws_url, additional_headers=headers, create_connection=Recorder
    )
    return cast(Recorder, ws)


async def recv(ws: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
    return message


async def subscribe(ws: Any, ticker: str) -> int:
    params = {"channels": ["orderbook_delta"], "market_tickers": [ticker]}
    await ws.send(json.dumps({"id": 1, "cmd": "subscribe", "params": params}))
    subscribed, snapshot = await recv(ws), await recv(ws)
    assert subscribed["type"] == "subscribed" and snapshot["type"] == "orderbook_snapshot"
    assert snapshot["seq"] == 1
    sid: int = subscribed["msg"]["sid"]
    return sid


def ticker_of(server: SimulatorServer, index: int) -> str:
    event = server.state.scenario.city_days[0].bracket_event
    ticker: str = server.state.exchange.events[event].markets[index]
    return ticker


def order(ticker: str, price: str = "0.0100") -> dict[str, Any]:
    return {
        "ticker": ticker,
        "side": "bid",
        "price": price,
        "count": "1",
        "time_in_force": "good_till_canceled",
        "self_trade_prevention_type": "maker",
    }


def post(server: SimulatorServer, path: str, body: dict[str, Any], name: str = "alice") -> None:
    with client(server, name) as http:
        response = http.post(path, json=body)
    assert response.status_code == 201, response.text


async def place(server: SimulatorServer, *orders: dict[str, Any]) -> None:
    if len(orders) == 1:
        await asyncio.to_thread(post, server, "/portfolio/events/orders", orders[0])
    else:
        body = {"orders": list(orders)}
        await asyncio.to_thread(post, server, "/portfolio/events/orders/batched", body)


@pytest.fixture
async def sim(server: SimulatorServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        yield http


async def set_faults(sim: httpx.AsyncClient, **faults: Any) -> None:
    response = await sim.post("/sim/faults", json=faults)
    assert response.status_code == 200, response.text


async def logged(sim: httpx.AsyncClient, fault: str, since_ms: int) -> list[dict[str, Any]]:
    """The log records of one fault since a time; each must carry its time and target."""
    records = [r for r in (await sim.get("/sim/faults/log")).json()["log"] if r["fault"] == fault]
    now_ms = int(time.time() * 1000)
    recent = [r for r in records if r["ts_ms"] >= since_ms]
    for record in recent:
        assert since_ms <= record["ts_ms"] <= now_ms and record["target"]
    return recent


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_duplicates_repeat_a_message_with_its_seq(
    server: SimulatorServer, sim: httpx.AsyncClient
) -> None:
    ticker, since = ticker_of(server, 0), now_ms()
    async with await connect(server) as ws:
        sid = await subscribe(ws, ticker)
        await set_faults(sim, ws_duplicate_rate=1.0)
        await place(server, order(ticker))
        first, second = await recv(ws), await recv(ws)
        assert first == second
        assert (first["type"], first["sid"], first["seq"]) == ("orderbook_delta", sid, 2)
        await sim.delete("/sim/faults")
        await place(server, order(ticker, "0.0200"))
        assert (await recv(ws))["seq"] == 3
        with pytest.raises(TimeoutError):  # the clean message came once
            await asyncio.wait_for(ws.recv(), 0.3)
    records = await logged(sim, "ws_duplicate", since)
    assert [r["target"] for r in records] == ["ws:alice"]
    assert '"seq":2' in records[0]["detail"]


async def test_reorders_swap_seq_order(server: SimulatorServer, sim: httpx.AsyncClient) -> None:
    ticker, since = ticker_of(server, 1), now_ms()
    async with await connect(server) as ws:
        await subscribe(ws, ticker)
        await set_faults(sim, ws_reorder_rate=1.0)
        await place(server, order(ticker, "0.0100"), order(ticker, "0.0200"))
        first, second = await recv(ws), await recv(ws)
        assert (first["seq"], second["seq"]) == (3, 2)
        assert (first["msg"]["price_dollars"], second["msg"]["price_dollars"]) == (
            "0.0200",
            "0.0100",
        )
        # a lone held message is not lost: it goes out once nothing follows it
        await place(server, order(ticker, "0.0300"))
        assert (await recv(ws))["seq"] == 4
    records = await logged(sim, "ws_reorder", since)
    assert [r["target"] for r in records] == ["ws:alice"]


async def test_disconnect_closes_every_socket_and_clients_can_resubscribe(
    server: SimulatorServer, sim: httpx.AsyncClient
) -> None:
    ticker, since = ticker_of(server, 2), now_ms()
    async with await connect(server, "alice") as alice, await connect(server, "bob") as bob:
        await subscribe(alice, ticker)
        await subscribe(bob, ticker)
        await set_faults(sim, ws_disconnect=True)
        for ws in (alice, bob):
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), WAIT_S)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    records = await logged(sim, "ws_disconnect", since)
    assert sorted(r["target"] for r in records) == ["ws:alice", "ws:bob"]
    async with await connect(server, "alice") as again:
        sid = await subscribe(again, ticker)  # a fresh session: sid 1, snapshot seq 1
        assert sid == 1
        await place(server, order(ticker))
        delta = await recv(again)
        assert (delta["type"], delta["seq"]) == ("orderbook_delta", 2)
    assert len(await logged(sim, "ws_disconnect", since)) == 2, "a one-shot fault"


async def test_feed_stall_silences_messages_and_pings_then_resumes(
    server: SimulatorServer, sim: httpx.AsyncClient
) -> None:
    ticker, since = ticker_of(server, 3), now_ms()
    stall_s = 1.0
    async with await connect(server) as ws:
        await subscribe(ws, ticker)
        await asyncio.sleep(3 * PING_S)
        assert any(kind == "ping" for _, kind in ws.frames), "heartbeats flow before the stall"
        started = time.monotonic()
        await set_faults(sim, feed_stall_s=stall_s)
        stalled = time.monotonic()
        await place(server, order(ticker))
        delta = await recv(ws)
        arrived = time.monotonic()
        assert delta["seq"] == 2, "held, not dropped"
        assert arrived - started >= stall_s - 0.05
        window = (stalled + 0.05, started + stall_s - 0.05)  # margins for frames in flight
        quiet = [(t, kind) for t, kind in ws.frames if window[0] < t < window[1]]
        assert quiet == [], "no message and no ping during the stall"
        await asyncio.sleep(3 * PING_S)
        assert any(kind == "ping" and t > arrived for t, kind in ws.frames), "pings resume"
    records = await logged(sim, "feed_stall", since)
    assert {r["target"] for r in records} == {"ws:alice", "ws:ping"}


async def test_latency_delays_rest_responses(
    server: SimulatorServer, sim: httpx.AsyncClient
) -> None:
    since = now_ms()

    async def timed() -> float:
        async with httpx.AsyncClient(base_url=server.rest_url) as http:
            started = time.perf_counter()
            assert (await http.get("/exchange/status")).status_code == 200
            return time.perf_counter() - started

    baseline = min([await timed() for _ in range(3)])
    await set_faults(sim, latency_ms=300)
    delayed = await timed()
    assert 0.3 <= delayed < baseline + 0.3 + 0.5
    await sim.delete("/sim/faults")
    assert await timed() < 0.3
    records = await logged(sim, "latency", since)
    assert [(r["target"], r["detail"]) for r in records] == [
        ("GET /trade-api/v2/exchange/status", "300 ms")
    ]
