"""Ingest throughput: decode, validate, apply, publish, against pykalshi on the same stream.

The stream is recorded once from the simulator (orderbook channel of every market,
``use_yes_price``) to ``bench/out/kalshi_ws.jsonl`` and replayed from memory:
* ours: ``decode_ws`` -> sequence checks and book (``BookFeed``) -> pipelined
  publish to Redis (the real Outbox), i.e. everything ingest does per delta;
* the peer: pykalshi's own message parsing (``json`` + pydantic models) and its
  ``OrderbookManager`` (Decimal strings in dicts); it checks no sequence and
  publishes nothing, so the comparison favours it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import websockets

from bench.figures import Figure
from services.ingest.books import BookKeeper, MarketRef
from services.ingest.market_data import BookFeed, Outbox
from services.simulator.auth import AccountSpec
from services.simulator.server import SimulatorServer
from services.simulator.state import SimSettings
from shared.book import OrderBook, PriceGrid
from shared.bus.connection import connect_redis
from shared.bus.publisher import Publisher
from shared.kalshi.models import decode_ws
from shared.kalshi.rest import KalshiRest
from shared.kalshi.signing import Signer, generate_private_key
from shared.messages import PriceRange, Side
from shared.money import cents, parse_dollars

STREAM = Path("bench/out/kalshi_ws.jsonl")
GRIDS = Path("bench/out/kalshi_grids.json")
FRAMES = 60_000


def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


async def _record(path: Path, frames: int) -> None:
    key = generate_private_key()
    settings = SimSettings(
        port=0,
        accounts=[AccountSpec("bench", key.public_key())],
        tier=None,
        flow_rate=6000,
        mispricing_rate=0,
    )
    server = SimulatorServer(settings).start()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        async with KalshiRest(server.rest_url) as rest:
            markets = [market async for market in rest.iter_markets(status="open")]
        tickers = [market.ticker for market in markets]
        grids = {m.ticker: [[r.start, r.end, r.step] for r in m.price_ranges] for m in markets}
        await asyncio.to_thread(GRIDS.write_text, json.dumps(grids))
        headers = Signer("bench", key).headers("GET", "/trade-api/ws/v2")
        async with websockets.connect(
            server.ws_url, additional_headers=headers, max_size=None
        ) as ws:
            command = {
                "id": 1,
                "cmd": "subscribe",
                "params": {
                    "channels": ["orderbook_delta"],
                    "market_tickers": tickers,
                    "use_yes_price": True,
                },
            }
            await ws.send(json.dumps(command))
            lines: list[str] = []
            while len(lines) < frames:
                frame = await asyncio.wait_for(ws.recv(), timeout=10)
                if '"type":"orderbook_' in frame:
                    lines.append(frame if isinstance(frame, str) else frame.decode())
        await asyncio.to_thread(path.write_text, "\n".join(lines) + "\n")
    finally:
        server.stop()


def recorded_stream() -> list[bytes]:
    if not GRIDS.is_file() or not STREAM.is_file() or sum(1 for _ in STREAM.open()) < FRAMES:
        asyncio.run(_record(STREAM, FRAMES))
    return [line.encode() for line in STREAM.read_text().splitlines()[:FRAMES]]


def _grids() -> dict[str, PriceGrid]:
    """Each market's own price grid, as listed when the stream was recorded."""
    ranges = json.loads(GRIDS.read_text())
    return {
        ticker: PriceGrid.from_ranges(
            [PriceRange(*(parse_dollars(x) for x in r)) for r in market_ranges]
        )
        for ticker, market_ranges in ranges.items()
    }


async def _ours(frames: list[bytes], publish: bool) -> tuple[float, int]:
    redis = connect_redis(redis_url())
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    keeper = BookKeeper()
    for market, grid in _grids().items():
        keeper.track(MarketRef(market, market.rsplit("-", 1)[0], grid))
    outbox = Outbox(Publisher(redis, prefix, shards=8))
    feed = BookFeed(keeper, outbox)
    started = time.perf_counter()
    for i, frame in enumerate(frames):
        await feed(decode_ws(frame))
        if i % 256 == 255:
            if publish:
                await outbox.flush()
            else:
                outbox._pending.clear()  # measure everything but the Redis round trip
    if publish:
        await outbox.flush()
    elapsed = time.perf_counter() - started
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()
    assert keeper.gaps == 0, "the recorded stream should be gap-free"
    return len(frames) / elapsed, outbox.published


def _peer(frames: list[bytes]) -> float:
    from pykalshi.feed import _parse_message
    from pykalshi.orderbook import OrderbookManager

    books: dict[str, Any] = {}
    started = time.perf_counter()
    for frame in frames:
        kind, _, msg, _ = _parse_message(frame)
        book = books.get(msg.market_ticker)
        if book is None:
            book = books[msg.market_ticker] = OrderbookManager(msg.market_ticker)
        if kind == "orderbook_snapshot":
            book.apply_snapshot(msg.yes_dollars_fp, msg.no_dollars_fp)
        else:
            book.apply_delta(msg.side, msg.price_dollars, msg.delta_fp)
    return len(frames) / (time.perf_counter() - started)


def _apply_ns() -> float:
    book = OrderBook("M")
    changes = [(Side.YES if i % 2 else Side.NO, cents(1 + i % 97), 1 + i % 5) for i in range(1000)]
    rounds = 200
    started = time.perf_counter_ns()
    for _ in range(rounds):
        for side, price, delta in changes:
            book.apply_delta(side, price, delta)
        for side, price, delta in changes:
            book.apply_delta(side, price, -delta)
    return (time.perf_counter_ns() - started) / (rounds * 2 * len(changes))


def run() -> list[Figure]:
    frames = recorded_stream()
    full, published = asyncio.run(_ours(frames, publish=True))
    no_publish, _ = asyncio.run(_ours(frames, publish=False))
    try:
        peer = _peer(frames)
    except ImportError:
        peer = float("nan")
    figures = [
        Figure(
            "ingest_deltas_per_s", full, "msg/s", f"decode+validate+apply+publish, {published} out"
        ),
        Figure("ingest_no_publish_per_s", no_publish, "msg/s", "decode+validate+apply"),
        Figure("peer_pykalshi_per_s", peer, "msg/s", "pykalshi parse + OrderbookManager"),
        Figure("ingest_vs_peer_ratio", full / peer, "x", "full ingest path vs pykalshi"),
        Figure("ingest_vs_peer_same_work_x", no_publish / peer, "x", "both: parse + book only"),
        Figure("book_apply_ns", _apply_ns(), "ns", "OrderBook.apply_delta"),
    ]
    return figures
