"""Record the simulator's own orderbook feed, replay it, and get the same books back."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import websockets

from services.simulator.engine import OrderRequest
from services.simulator.model import BookSide
from services.simulator.server import SimulatorServer
from shared.money import ONE_DOLLAR, Count, Micros, parse_count, parse_dollars

from .kit import signer, start_server

Books = dict[tuple[str, str], dict[Micros, Count]]
RECORD_S = 1.0
CENT = ONE_DOLLAR // 100


async def connect(server: SimulatorServer) -> Any:
    headers = signer("alice").headers("GET", "/trade-api/ws/v2")
    return await websockets.connect(server.ws_url, additional_headers=headers, max_queue=None)


def apply(books: Books, message: dict[str, Any]) -> None:
    """A client's book keeping: snapshot replaces, delta adds (NO-leg prices)."""
    body = message.get("msg", {})
    if message["type"] == "orderbook_snapshot":
        for leg in ("yes", "no"):
            books[body["market_ticker"], leg] = {
                parse_dollars(p): parse_count(c) for p, c in body.get(f"{leg}_dollars_fp", [])
            }
    elif message["type"] == "orderbook_delta":
        level = books[body["market_ticker"], body["side"]]
        price = parse_dollars(body["price_dollars"])
        level[price] = level.get(price, 0) + parse_count(body["delta_fp"])
        if level[price] == 0:
            del level[price]


def levels(book: dict[Micros, Count]) -> list[tuple[Micros, Count]]:
    return sorted(book.items())


def subscribe(tickers: list[str]) -> str:
    params = {"channels": ["orderbook_delta"], "market_tickers": tickers}
    return json.dumps({"id": 1, "cmd": "subscribe", "params": params})


async def record(server: SimulatorServer, tickers: list[str], path: Path) -> Books:
    """Record the live feed to ``path`` while the agents trade; stop them; drain."""
    books: Books = {}
    seqs: list[int] = []
    with path.open("w") as out:
        async with await connect(server) as ws:
            await ws.send(subscribe(tickers))
            started = time.monotonic()
            deepened = False
            while time.monotonic() - started < RECORD_S:
                if not deepened and time.monotonic() - started > RECORD_S / 3:
                    deepen(server, tickers)
                    deepened = True
                raw = await asyncio.wait_for(ws.recv(), 3)
                message = json.loads(raw)
                out.write(json.dumps({"ts_ms": int(time.time() * 1000), "msg": message}) + "\n")
                apply(books, message)
                seqs += [message["seq"]] if "seq" in message else []
            server.call(lambda: setattr(server.state.agents, "flow_rate", 0.0))
            while True:
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    break
                message = json.loads(raw)
                out.write(json.dumps({"ts_ms": int(time.time() * 1000), "msg": message}) + "\n")
                apply(books, message)
                seqs += [message["seq"]] if "seq" in message else []
    assert seqs == list(range(1, len(seqs) + 1)), "a complete recording"
    assert len(seqs) > len(tickers) + 200, "snapshots and a good many deltas"
    return books


def deepen(server: SimulatorServer, tickers: list[str]) -> None:
    """Rest a few levels away from the maker's quotes, so the books have depth."""

    def place() -> None:
        state = server.state
        for ticker in tickers:
            book = state.exchange.book(ticker)
            bid, no_bid = book.yes.best() or CENT, book.no.best() or CENT
            for cents in (1, 2, 3):
                for side, price in (
                    (BookSide.BID, bid - cents * CENT),
                    (BookSide.ASK, ONE_DOLLAR - no_bid + cents * CENT),
                ):
                    if CENT <= price <= ONE_DOLLAR - CENT:
                        request = OrderRequest(ticker, side, price, (cents + 1) * 100)
                        state.exchange.place("alice", request)
        state.commit()

    server.call(place)


def wait_until_replayed(server: SimulatorServer) -> None:
    deadline = time.monotonic() + 10
    while not server.state.replay_done and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.state.replay_done


def live_books(server: SimulatorServer, tickers: list[str]) -> Books:
    def read() -> Books:
        out: Books = {}
        for ticker in tickers:
            book = server.state.exchange.book(ticker)
            out[ticker, "yes"] = dict(book.yes.depth())
            out[ticker, "no"] = dict(book.no.depth())
        return out

    books: Books = server.call(read)
    return books


async def test_replaying_a_recording_of_our_own_feed_rebuilds_its_books(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    live = start_server(scenario="fed", flow_rate=1500.0)
    try:
        tickers = sorted(live.state.exchange.markets)[:8]
        recorded = await record(live, tickers, path)
        assert recorded == live_books(live, tickers), "the recording holds the books"
    finally:
        live.stop()
    assert all(recorded.values()) and sum(map(len, recorded.values())) >= 2 * len(recorded)

    replay = start_server(scenario="replay", replay_file=str(path), replay_speed=0.0)
    try:
        await asyncio.to_thread(wait_until_replayed, replay)
        async with await connect(replay) as ws:
            await ws.send(subscribe(tickers))
            replayed: Books = {}
            for _ in range(len(tickers) + 1):
                apply(replayed, json.loads(await asyncio.wait_for(ws.recv(), 3)))
        for ticker in tickers:
            for leg in ("yes", "no"):
                assert levels(replayed[ticker, leg]) == levels(recorded[ticker, leg]), (
                    ticker,
                    leg,
                )
    finally:
        replay.stop()
