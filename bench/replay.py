"""Replay speed: a busy recorded stretch through ``python -m services.backtest``'s code path.

The input is a Kalshi WebSocket recording (JSON lines, ``{"ts_ms", "msg"}``)
made here from a seeded random walk, so the figure includes reading and
decoding the file, the ingest book keeper, strategy, risk and paper
execution, and writing the report (plots off: they cost the same whatever the
length). The stretch is ``MINUTES`` of data across ``EVENTS`` weather-style
bracket events (3 markets each) at ``RATE_PER_S`` book changes a second, a
trade every ``TRADE_EVERY`` changes, and a mispricing (an arbitrage the
strategy takes) every ``MISPRICE_EVERY_S`` seconds: a busy Kalshi day for
the markets one replica follows.

* ``replay_speed_x``: seconds of data replayed per second of wall time (goal:
  100 or more).
* ``replay_msgs_per_s``: WebSocket messages replayed per wall second.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from bench.figures import Figure
from services.backtest import runner
from shared.config import load_settings

MINUTES: Final = 20
EVENTS: Final = 200
BRACKETS: Final = 1
RATE_PER_S: Final = 200
TRADE_EVERY: Final = 20
MISPRICE_EVERY_S: Final = 60
START_MS: Final = 1_800_000_000_000
SEED: Final = 11


def tickers() -> list[list[str]]:
    """Per event: below, the brackets, above (mutually exclusive and exhaustive)."""
    events = []
    for n in range(EVENTS):
        event = f"KXHIGHB{n:03d}-27JAN15"
        low = 40
        markets = [f"{event}-T{low}"]
        markets += [f"{event}-B{low + 2 * i}.5" for i in range(BRACKETS)]
        markets.append(f"{event}-T{low + 2 * BRACKETS - 1}")
        events.append(markets)
    return events


def _line(ts_ms: int, msg: dict[str, Any]) -> str:
    return json.dumps({"ts_ms": ts_ms, "msg": msg}, separators=(",", ":"))


def _snapshot(sid: int, seq: int, market: str, yes: int, no: int) -> dict[str, Any]:
    return {
        "type": "orderbook_snapshot",
        "sid": sid,
        "seq": seq,
        "msg": {
            "market_ticker": market,
            "yes_dollars_fp": [[f"{yes / 100:.2f}", "500.00"]],
            "no_dollars_fp": [[f"{no / 100:.2f}", "500.00"]],
        },
    }


def _delta(seq: int, market: str, side: str, price: int, delta: int, ts_ms: int) -> dict[str, Any]:
    return {
        "type": "orderbook_delta",
        "sid": 1,
        "seq": seq,
        "msg": {
            "market_ticker": market,
            "price_dollars": f"{price / 100:.2f}",
            "delta_fp": f"{delta}.00",
            "side": side,
            "ts_ms": ts_ms,
        },
    }


def _trade(n: int, market: str, yes: int, ts_ms: int) -> dict[str, Any]:
    return {
        "type": "trade",
        "sid": 2,
        "msg": {
            "trade_id": f"t{n}",
            "market_ticker": market,
            "yes_price_dollars": f"{yes / 100:.2f}",
            "no_price_dollars": f"{(100 - yes) / 100:.2f}",
            "count_fp": "5.00",
            "taker_side": "yes",
            "ts_ms": ts_ms,
        },
    }


def lines() -> Iterator[str]:
    """The recording: snapshots of every book, then the random walk."""
    rng = random.Random(SEED)
    events = tickers()
    markets = [m for event in events for m in event]
    resting: dict[tuple[str, str, int], int] = {}
    seq = 0
    for market in markets:  # YES asks 36 cents: three of them cost $1.08
        seq += 1
        resting[(market, "yes", 28)] = resting[(market, "no", 64)] = 500
        yield _line(START_MS, _snapshot(1, seq, market, 28, 64))
    changes = MINUTES * 60 * RATE_PER_S
    for n in range(changes):
        ts_ms = START_MS + 1 + n * 1000 // RATE_PER_S
        market = rng.choice(markets)
        side = rng.choice(("yes", "no"))
        price = (26 if side == "yes" else 62) + rng.randrange(0, 3)
        level = (market, side, price)
        size = 10 if resting.get(level, 0) < 10 else rng.choice((-10, 10))
        resting[level] = resting.get(level, 0) + size
        seq += 1
        yield _line(ts_ms, _delta(seq, market, side, price, size, ts_ms))
        if n % TRADE_EVERY == 0:
            yield _line(ts_ms, _trade(n, market, 27, ts_ms))
        if n % (MISPRICE_EVERY_S * RATE_PER_S) == RATE_PER_S:
            for target in rng.choice(events):  # NO bids at 70: YES asks 3 x 30 = 90 cents
                seq += 1
                resting[(target, "no", 70)] = resting.get((target, "no", 70), 0) + 20
                yield _line(ts_ms, _delta(seq, target, "no", 70, 20, ts_ms))


def write_recording(path: Path) -> int:
    count = 0
    with path.open("w") as out:
        for line in lines():
            out.write(line + "\n")
            count += 1
    return count


def run_bench() -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp:
        recording = Path(tmp) / "busy.jsonl"
        messages = write_recording(recording)
        settings = load_settings(strategy={"models": []}, metrics={"enabled": False})
        options = runner.Options(
            out=Path(tmp) / "out", format="kalshi-ws", inputs=(recording,), plots=False
        )
        started = time.perf_counter()
        outcome = asyncio.run(runner.run(settings, options))
        wall = time.perf_counter() - started
    data_s = outcome.sim_s
    note = (
        f"{MINUTES} min of data, {EVENTS * (BRACKETS + 2)} markets, {RATE_PER_S} changes/s, "
        f"{outcome.report['total']['fills']} fills, {wall:.1f} s wall"
    )
    return [
        Figure("replay_speed_x", data_s / wall, "x", note),
        Figure("replay_msgs_per_s", messages / wall, "msg/s", "file read to report written"),
    ]


def run() -> list[Figure]:
    return run_bench()
