"""Book change to signal: inside the engine, and across processes through Redis.

* ``strategy_engine_*``: one delta into an engine holding the 5,000-market
  universe of ``bench/scan.py``, timed until its signals are built (the
  per-event scan: incremental refresh, numpy screen, depth walk).
* ``signal_latency_*``: the strategy service as its own process
  (``python -m services.strategy``); this process publishes market-data
  batches that turn an event's books into an arbitrage, stamped with the
  ingest receive hop, and reads the signals back. Latency is from that stamp to
  the signal's arrival here: two Redis hops and the strategy process.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from typing import Any, Final

import numpy as np

from bench.figures import Figure
from bench.scan import build
from services.strategy.engine import StrategyEngine
from shared.bus.codec import Codec
from shared.bus.connection import connect_redis
from shared.bus.publisher import Publisher
from shared.messages import (
    BookDelta,
    BookSnapshot,
    Level,
    MarketDataBatch,
    MarketInfo,
    PriceRange,
    Side,
    Signal,
)
from shared.money import ONE_DOLLAR, cents, contracts
from shared.strategy_config import StrategySettings
from shared.streams import MARKET_DATA, MARKETS, SIGNALS, stream_key

ENGINE_ROUNDS: Final = 2_000
EVENTS: Final = 200
SIGNALS_WANTED: Final = 2_000
RATE_PER_S: Final = 200
RECEIVED_HOP: Final = "ingest.rx"


def _redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


# --- in the engine ----------------------------------------------------------------------


def engine_figures() -> list[Figure]:
    infos, books = build()
    engine = StrategyEngine(StrategySettings(models=[], scan_hz=1e9, cooldown_s=0))
    engine.on_markets(infos)
    now = time.time_ns()
    engine.on_market_data([_snapshot(m, b.levels()) for m, b in books.items()], now)
    target = infos[0]
    samples = []
    for i in range(ENGINE_ROUNDS):
        delta = BookDelta(
            market=target.market,
            event=target.event,
            side=Side.YES,
            price=cents(1),
            delta=contracts(1 if i % 2 == 0 else -1),
            seq=i + 2,
        )
        started = time.perf_counter_ns()
        engine.on_market_data([delta], now + (i + 1) * 10**9)
        samples.append(time.perf_counter_ns() - started)
    p50, p99 = np.percentile(samples, [50, 99]) / 1000
    note = f"{len(infos)} markets; one delta -> that event scanned, signals built"
    return [
        Figure("strategy_engine_p50_us", float(p50), "us", note),
        Figure("strategy_engine_p99_us", float(p99), "us", ""),
    ]


def _snapshot(market: str, levels: tuple[list[Level], list[Level]], seq: int = 1) -> BookSnapshot:
    return BookSnapshot(
        market=market,
        event=market.rsplit("-", 1)[0],
        yes_bids=levels[0],
        no_bids=levels[1],
        seq=seq,
    )


# --- across processes -------------------------------------------------------------------


def brackets(event: str) -> list[MarketInfo]:
    grid = [PriceRange(0, ONE_DOLLAR, cents(1))]
    strikes = [("less", None, 30.0), ("between", 30.0, 31.0), ("greater", 31.0, None)]
    return [
        MarketInfo(
            market=f"{event}-{i}",
            event=event,
            series="KXBENCH",
            status="active",
            close_ts_ns=time.time_ns() + 86_400 * 10**9,
            price_ranges=grid,
            mutually_exclusive=True,
            strike_type=kind,
            floor_strike=floor,
            cap_strike=cap,
        )
        for i, (kind, floor, cap) in enumerate(strikes)
    ]


def arbitrage_books(infos: list[MarketInfo], seq: int) -> MarketDataBatch:
    """Three brackets whose YES asks sum to 75 cents: an arbitrage on every publish."""
    levels = ([Level(cents(20), contracts(50))], [Level(cents(75), contracts(50))])
    items = [_snapshot(i.market, levels, seq) for i in infos]
    batch = MarketDataBatch(items=list(items))
    now = time.time_ns()
    for item in batch.items:
        item.stamp(RECEIVED_HOP, now)
    return batch


def _start_strategy(prefix: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REDIS_URL": _redis_url(),
        "KHV_KEY_PREFIX": prefix,
        "KHV_BUS__SHARDS": "1",
        "KHV_LOG_LEVEL": "WARNING",
        "KHV_STRATEGY__MODELS": "[]",
        "KHV_STRATEGY__COOLDOWN_S": "0",
        "KHV_METRICS__ENABLED": "false",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "services.strategy", "--instance", "bench"],
        env=env,
        stdout=subprocess.DEVNULL,
    )


async def _latency(prefix: str) -> list[int]:
    redis: Any = connect_redis(_redis_url())
    publisher = Publisher(redis, prefix, shards=1, hop="ingest")
    events = [brackets(f"KXBENCH-{n}") for n in range(EVENTS)]
    await publisher.publish_many(MARKETS, [i for infos in events for i in infos])
    process = _start_strategy(prefix)
    codec = Codec(SIGNALS)
    key = stream_key(prefix, SIGNALS, 0)
    cursor = "$"
    samples: list[int] = []
    try:
        await asyncio.sleep(3.0)  # the strategy takes its shard and reads the catalog
        seq = 0
        while len(samples) < SIGNALS_WANTED:
            infos = events[seq % EVENTS]
            seq += 1
            await publisher.publish(MARKET_DATA, arbitrage_books(infos, seq), event=infos[0].event)
            reply = await redis.xread({key: cursor}, block=50)
            arrived = time.time_ns()
            for _, entries in reply or []:
                for raw_id, fields in entries:
                    cursor = raw_id.decode()
                    signal = codec.decode_entry(fields)
                    assert isinstance(signal, Signal)
                    received = next(h.ts_ns for h in signal.hops if h.name == RECEIVED_HOP)
                    samples.append(arrived - received)
            await asyncio.sleep(1 / RATE_PER_S)
    finally:
        process.terminate()
        process.wait(10)
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    return samples


def run() -> list[Figure]:
    figures = engine_figures()
    samples = asyncio.run(_latency(f"bench:{uuid.uuid4().hex[:8]}:"))
    p50, p99 = np.percentile(samples, [50, 99]) / 1e6
    note = f"{len(samples)} signals: ingest receive stamp -> signal read back, 2 Redis hops"
    return [
        *figures,
        Figure("signal_latency_p50_ms", float(p50), "ms", note),
        Figure("signal_latency_p99_ms", float(p99), "ms", ""),
    ]


if __name__ == "__main__":
    from bench.figures import print_table

    print_table(run())
