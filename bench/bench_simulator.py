"""Simulator benchmark: deltas per second to one subscriber; order round trip p50/p99.

``run()`` returns ``(name, value, unit)`` figures for ``make bench``:
``sim_deltas_per_s`` (orderbook_delta messages one WebSocket client receives
per second while the agents churn every book as fast as they can) and
``sim_order_roundtrip_p50_ms`` / ``_p99_ms`` (REST create of a crossing order
until its ``fill`` message arrives on the WebSocket).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

import httpx
import websockets

from services.simulator.auth import AccountSpec
from services.simulator.server import SimulatorServer
from services.simulator.state import SimSettings
from shared.kalshi.signing import Signer, generate_private_key

MEASURE_S = 3.0
ROUND_TRIPS = 200


def _server(keys: dict[str, Any], **overrides: Any) -> SimulatorServer:
    settings = SimSettings(
        port=0,
        accounts=[AccountSpec(name, key.public_key()) for name, key in keys.items()],
        tier=None,
        mispricing_rate=0.0,
        **overrides,
    )
    return SimulatorServer(settings).start()


async def _connect(server: SimulatorServer, signer: Signer) -> Any:
    headers = signer.headers("GET", "/trade-api/ws/v2")
    return await websockets.connect(server.ws_url, additional_headers=headers, max_queue=None)


async def _deltas_per_second(server: SimulatorServer, signer: Signer) -> float:
    tickers = list(server.state.exchange.markets)
    async with await _connect(server, signer) as ws:
        command = {"channels": ["orderbook_delta"], "market_tickers": tickers}
        await ws.send(json.dumps({"id": 1, "cmd": "subscribe", "params": command}))
        deadline = time.perf_counter() + 1.0  # warm up past the snapshots
        while time.perf_counter() < deadline:
            await ws.recv()
        received, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < MEASURE_S:
            if b'"orderbook_delta"' in (await ws.recv(decode=False)):
                received += 1
        return received / elapsed


async def _round_trips(server: SimulatorServer, alice: Signer, bob: Signer) -> list[float]:
    ticker = next(t for t, m in server.state.exchange.markets.items() if m.fractional)
    order = {
        "ticker": ticker,
        "count": "1",
        "self_trade_prevention_type": "maker",
    }
    samples = []
    auth_flow = _SignedAuth
    async with (
        httpx.AsyncClient(base_url=server.rest_url, auth=auth_flow(alice)) as taker,
        httpx.AsyncClient(base_url=server.rest_url, auth=auth_flow(bob)) as maker,
        await _connect(server, alice) as ws,
    ):
        await ws.send(json.dumps({"id": 1, "cmd": "subscribe", "params": {"channels": ["fill"]}}))
        await ws.recv()
        for _ in range(ROUND_TRIPS):
            rest = order | {"side": "ask", "price": "0.5000", "time_in_force": "good_till_canceled"}
            await maker.post("/portfolio/events/orders", json=rest)
            take = order | {
                "side": "bid",
                "price": "0.5000",
                "time_in_force": "immediate_or_cancel",
            }
            started = time.perf_counter()
            await taker.post("/portfolio/events/orders", json=take)
            while json.loads(await ws.recv())["type"] != "fill":
                pass
            samples.append((time.perf_counter() - started) * 1000)
    return samples


class _SignedAuth(httpx.Auth):
    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers.update(self.signer.headers(request.method, request.url.path))
        yield request


def _flow_rate(keys: dict[str, Any], asked: float) -> float:
    """Book changes a second the agents really make when asked for ``asked`` (wall clock)."""
    from services.simulator.model import BookDelta, ExchangeEvent

    server = _server(keys, flow_rate=asked)
    try:
        seen = [0]

        def count(events: list[ExchangeEvent]) -> None:
            seen[0] += sum(isinstance(e, BookDelta) for e in events)

        server.call(lambda: server.state.observers.append(count))
        time.sleep(0.3)
        before, started = server.call(lambda: seen[0]), time.monotonic()
        time.sleep(MEASURE_S)
        after = server.call(lambda: seen[0])
        return float((after - before) / (time.monotonic() - started))
    finally:
        server.stop()


def run() -> list[tuple[str, float, str]]:
    keys = {"alice": generate_private_key(), "bob": generate_private_key()}
    alice, bob = Signer("alice", keys["alice"]), Signer("bob", keys["bob"])
    busy = _server(keys, flow_rate=100_000.0)
    try:
        deltas = asyncio.run(_deltas_per_second(busy, alice))
    finally:
        busy.stop()
    quiet = _server(keys, scenario="fed", flow_rate=0.0)
    try:
        samples = sorted(asyncio.run(_round_trips(quiet, alice, bob)))
    finally:
        quiet.stop()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    flow = _flow_rate(keys, 3000.0)
    return [
        ("sim_flow_asked_3000_per_s", round(flow, 1), "changes/s"),
        ("sim_deltas_per_s", round(deltas, 1), "deltas/s"),
        ("sim_order_roundtrip_p50_ms", round(statistics.median(samples), 3), "ms"),
        ("sim_order_roundtrip_p99_ms", round(p99, 3), "ms"),
    ]


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:32s} {value:>12} {unit}")
