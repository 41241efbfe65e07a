"""Ingest against the simulator over the real protocol, real Redis and real Postgres.

Books must equal the exchange's after thousands of deltas, injected gaps,
duplicates, reorders and disconnects must be detected and repaired, and nothing
may be published from a book that was not trusted at the time.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest

from services.ingest.service import Ingest, connect_store, load_signer
from shared.book import OrderBook, PriceGrid
from shared.bus.codec import Codec
from shared.bus.publisher import Publisher
from shared.config import load_settings
from shared.kalshi.rest import KalshiRest
from shared.kalshi.signing import private_pem
from shared.messages import (
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    Heartbeat,
    Level,
    MarketData,
    MarketDataBatch,
    PriceRange,
    Side,
)
from shared.money import ONE_DOLLAR
from shared.runtime import ServiceContext
from shared.streams import HEARTBEATS, MARKET_DATA, stream_key
from tests.conftest import redis_url
from tests.services.simulator.kit import KEYS, start_server

FINEST = PriceGrid.from_ranges([PriceRange(0, ONE_DOLLAR, 100)])
"""Every price Kalshi can quote ($0.0001 ticks), for books rebuilt from the bus."""
FLOW = 4000
"""Book changes per second the simulator's agents aim for."""


@pytest.fixture
def sim():
    server = start_server(flow_rate=FLOW, agents=True)
    yield server
    server.stop()


def faults(sim, body: dict[str, Any] | None) -> None:
    base = sim.rest_url.removesuffix("/trade-api/v2")
    with httpx.Client(base_url=base, timeout=30) as client:
        response = client.post("/sim/faults", json=body) if body else client.delete("/sim/faults")
        response.raise_for_status()


def set_flow(sim, rate: float) -> None:
    def change() -> None:
        sim.state.agents.flow_rate = rate
        sim.state.agents.mispricing_rate = 0

    sim.call(change)


@pytest.fixture
async def ingest(sim, aredis, key_prefix, database_url, tmp_path) -> AsyncIterator[Ingest]:
    key = tmp_path / "alice.pem"
    key.write_bytes(private_pem(KEYS["alice"]))
    settings = load_settings(
        redis_url=redis_url(),
        database_url=database_url,
        key_prefix=key_prefix,
        kalshi_key_id="alice",
        kalshi_private_key_path=str(key),
        kalshi={"rest_url": sim.rest_url, "ws_url": sim.ws_url, "tier": "premier"},
        bus={"shards": 1},
        ingest={"discovery_interval_s": 30, "snapshot_interval_s": 300},
        feeds={"nws": {"enabled": False}},
    )
    ctx = ServiceContext(
        name="ingest",
        instance="test",
        settings=settings,
        redis=aredis,
        publisher=Publisher(aredis, key_prefix, shards=1, hop="ingest"),
        stop=asyncio.Event(),
        args=argparse.Namespace(),
        owned_shards={0},
    )
    pool = await connect_store(ctx)
    service = Ingest(ctx, load_signer(ctx), pool)
    task = asyncio.create_task(service.run())
    yield service
    ctx.stop.set()
    await asyncio.wait_for(task, 30)
    await pool.close()


async def wait_until(predicate, within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {within_s} s: {what}")


def all_valid(service: Ingest) -> bool:
    return bool(service.followed) and all(service.keeper.is_valid(m) for m in service.followed)


async def quiesce(sim, service: Ingest) -> None:
    """Stop the flow and wait until the last deltas have come through."""
    set_flow(sim, 0)
    last = -1
    while last != service.feed.deltas:
        last = service.feed.deltas
        await asyncio.sleep(0.5)
    await service.outbox.flush()


def levels(wire: list[tuple[int, int]]) -> list[Level]:
    return sorted((Level(p, c) for p, c in wire), key=lambda lvl: -lvl.price)


async def exchange_books(sim, markets: list[str]) -> dict[str, tuple[list[Level], list[Level]]]:
    async with KalshiRest(sim.rest_url) as rest:
        books = {}
        for start in range(0, len(markets), 100):
            chunk = await rest.orderbooks(markets[start : start + 100])
            books.update(
                {t: (levels(b.yes_levels()), levels(b.no_levels())) for t, b in chunk.items()}
            )
        return books


async def published_items(aredis, prefix: str) -> list[MarketData]:
    codec = Codec(MARKET_DATA)
    items: list[MarketData] = []
    for _, fields in await aredis.xrange(stream_key(prefix, MARKET_DATA, 0)):
        batch = codec.decode_entry(fields)
        assert isinstance(batch, MarketDataBatch)
        items.extend(batch.items)
    return items


def recovery_times_s(items: list[MarketData]) -> list[float]:
    """Seconds from each INVALID status of a market to its next VALID (ingest's clock)."""
    invalid_at: dict[str, int] = {}
    times = []
    for item in items:
        if isinstance(item, BookStatus):
            at = item.hops[0].ts_ns
            if item.state is BookState.INVALID:
                invalid_at.setdefault(item.market, at)
            elif item.market in invalid_at:
                times.append((at - invalid_at.pop(item.market)) / 1e9)
    return times


async def bus_books(aredis, prefix: str) -> dict[str, OrderBook]:
    """Rebuild books from what ingest published, checking it never published untrusted data."""
    books: dict[str, OrderBook] = {}
    trusted: dict[str, bool] = {}
    for message in await published_items(aredis, prefix):
        if isinstance(message, BookStatus):
            trusted[message.market] = message.state is BookState.VALID
        elif isinstance(message, BookSnapshot):
            assert trusted.get(message.market), f"snapshot of untrusted {message.market}"
            book = books.setdefault(message.market, OrderBook(message.market, FINEST))
            book.apply_snapshot(message.yes_bids, message.no_bids)
        elif isinstance(message, BookDelta):
            assert trusted.get(message.market), f"delta published from untrusted {message.market}"
            books[message.market].apply_delta(message.side, message.price, message.delta)
    return books


async def assert_books_match_exchange(sim, service: Ingest, aredis, prefix: str) -> None:
    markets = sorted(service.followed)
    exchange = await exchange_books(sim, markets)
    published = await bus_books(aredis, prefix)
    for market in markets:
        ours = service.keeper.book(market)
        assert ours is not None, f"{market} not valid"
        assert ours.levels() == exchange[market], market
        assert published[market].levels() == exchange[market], market


@pytest.mark.slow
async def test_books_match_the_exchange_after_ten_thousand_deltas(
    sim, ingest, aredis, key_prefix, database_url
):
    await wait_until(lambda: all_valid(ingest), 20, "every followed book valid")
    assert len(ingest.followed) > 100
    await wait_until(lambda: ingest.feed.deltas >= 10_000, 60, "10,000 deltas")
    await quiesce(sim, ingest)
    assert ingest.keeper.gaps == 0
    await assert_books_match_exchange(sim, ingest, aredis, key_prefix)
    assert ingest.recorder is not None
    await ingest.recorder.flush()
    with psycopg.connect(database_url) as conn:
        recorded = conn.execute("SELECT count(*) FROM book_deltas").fetchone()
        markets = conn.execute("SELECT count(*) FROM markets").fetchone()
        trusted = conn.execute(
            "SELECT count(DISTINCT market) FROM book_status WHERE state = 'valid'"
        ).fetchone()
    assert recorded is not None and recorded[0] == ingest.feed.deltas
    assert trusted is not None and trusted[0] >= len(ingest.followed)
    assert markets is not None and markets[0] >= len(ingest.followed)


@pytest.mark.slow
async def test_gaps_duplicates_and_reorders_are_detected_and_repaired(
    sim, ingest, aredis, key_prefix
):
    await wait_until(lambda: all_valid(ingest), 20, "every followed book valid")
    faults(sim, {"ws_drop_rate": 0.002, "ws_duplicate_rate": 0.002, "ws_reorder_rate": 0.002})
    await wait_until(lambda: ingest.keeper.gaps >= 5, 30, "gaps detected")
    faults(sim, None)
    await wait_until(lambda: all_valid(ingest), 10, "every book repaired")
    await quiesce(sim, ingest)
    await wait_until(lambda: all_valid(ingest), 10, "every book valid at rest")
    await assert_books_match_exchange(sim, ingest, aredis, key_prefix)
    recoveries = sorted(recovery_times_s(await published_items(aredis, key_prefix)))
    assert recoveries, "no book was ever invalid"
    print(
        f"recoveries: {len(recoveries)}, median {recoveries[len(recoveries) // 2]:.3f} s, "
        f"p90 {recoveries[int(len(recoveries) * 0.9)]:.3f} s, max {recoveries[-1]:.3f} s"
    )
    assert recoveries[len(recoveries) // 2] < 1.0


@pytest.mark.slow
async def test_disconnect_invalidates_everything_and_reconnect_restores_it(
    sim, ingest, aredis, key_prefix
):
    await wait_until(lambda: all_valid(ingest), 20, "every followed book valid")
    connections = ingest.ws.connections if hasattr(ingest.ws, "connections") else None
    faults(sim, {"ws_disconnect": True})
    await wait_until(lambda: not all_valid(ingest), 10, "books invalid after the drop")
    faults(sim, None)
    await wait_until(lambda: all_valid(ingest), 15, "books valid after reconnecting")
    if connections is not None:
        assert ingest.ws.connections > connections
    await quiesce(sim, ingest)
    await assert_books_match_exchange(sim, ingest, aredis, key_prefix)
    items = await published_items(aredis, key_prefix)
    statuses = [m for m in items if isinstance(m, BookStatus)]
    assert any("connection lost" in s.reason for s in statuses), {s.reason for s in statuses}


def test_side_enum_values_match_kalshi():
    assert {s.value for s in Side} == {"yes", "no"}


async def test_a_service_that_just_started_gets_the_books_at_once(sim, ingest, aredis, key_prefix):
    """Not after snapshot_interval_s (300 s here): a fresh execution has no book to trade on."""
    await wait_until(lambda: all_valid(ingest), 20, "every followed book valid")
    await quiesce(sim, ingest)

    async def snapshots() -> int:
        items = await published_items(aredis, key_prefix)
        return sum(isinstance(item, BookSnapshot) for item in items)

    before = await snapshots()
    publisher = Publisher(aredis, key_prefix, shards=1, hop="execution")
    fresh = {"uptime_s": "0"}
    await publisher.publish(
        HEARTBEATS,
        Heartbeat(
            service="execution",
            instance="x",
            version="1",
            role="active",
            ts_ns=time.time_ns(),
            info=fresh,
        ),
    )
    deadline = time.monotonic() + 10
    while await snapshots() < before + len(ingest.followed) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert await snapshots() >= before + len(ingest.followed)
