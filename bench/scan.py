"""The arbitrage scan over 5,000 markets in 1,000 events: refresh, screen, depth for candidates.

Events are a mix of weather-style brackets (mutually exclusive and exhaustive),
threshold ladders and plain mutually exclusive events, with fair books (1-3
cent half spreads, five levels a side) and a few injected arbitrages, so the
timed scan walks a handful of candidates as it would live.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Final

from bench.figures import Figure
from shared.arbitrage import ArbKind, EventTable, scan, screen
from shared.book import OrderBook
from shared.messages import Level, MarketInfo, PriceRange
from shared.money import ONE_DOLLAR, cents, contracts

EVENTS: Final = 1_000
MARKETS_PER_EVENT: Final = 5
ROUNDS: Final = 200
LEVELS: Final = 5
GRID: Final = [PriceRange(0, ONE_DOLLAR, cents(1))]


def _info(
    event: str, index: int, exclusive: bool, strike: tuple[str, float | None, float | None]
) -> MarketInfo:
    kind, floor, cap = strike
    return MarketInfo(
        market=f"{event}-{index}",
        event=event,
        series=event.partition("-")[0],
        status="active",
        close_ts_ns=0,
        price_ranges=GRID,
        mutually_exclusive=exclusive,
        strike_type=kind,
        floor_strike=floor,
        cap_strike=cap,
    )


def _event(rng: random.Random, number: int) -> tuple[list[MarketInfo], list[float]]:
    """One event's markets and fair YES probabilities."""
    shape = number % 3
    if shape == 0:  # weather brackets: <30, 30-31, 32-33, 34-35, >35
        event = f"KXHIGH-{number}"
        strikes: list[tuple[str, float | None, float | None]] = [("less", None, 30.0)]
        strikes += [("between", float(a), float(a + 1)) for a in (30, 32, 34)]
        strikes.append(("greater", 35.0, None))
        weights = [rng.gammavariate(2.0, 1.0) for _ in strikes]
        probs = [w / sum(weights) for w in weights]
        return [_info(event, i, True, s) for i, s in enumerate(strikes)], probs
    if shape == 1:  # ladder: greater than 30, 32, ... each less likely
        event = f"KXABV-{number}"
        probs = sorted((rng.uniform(0.05, 0.95) for _ in range(MARKETS_PER_EVENT)), reverse=True)
        strikes = [("greater", float(30 + 2 * i), None) for i in range(MARKETS_PER_EVENT)]
        return [_info(event, i, False, s) for i, s in enumerate(strikes)], probs
    event = f"KXPICK-{number}"
    weights = [rng.gammavariate(1.0, 1.0) for _ in range(MARKETS_PER_EVENT)]
    probs = [w / sum(weights) for w in weights]
    return [_info(event, i, True, ("", None, None)) for i in range(MARKETS_PER_EVENT)], probs


def _book(rng: random.Random, market: str, yes_bid: int, no_bid: int) -> OrderBook:
    """Bids from the best (cents) down, five levels a side."""
    book = OrderBook(market)
    yes = [Level(cents(yes_bid - k), contracts(rng.randint(1, 200))) for k in range(LEVELS)]
    no = [Level(cents(no_bid - k), contracts(rng.randint(1, 200))) for k in range(LEVELS)]
    book.apply_snapshot([lv for lv in yes if lv.price > 0], [lv for lv in no if lv.price > 0])
    return book


def _fair_book(rng: random.Random, market: str, p: float) -> OrderBook:
    mid = min(max(round(p * 100), 4), 96)
    half = rng.randint(1, 3)
    return _book(rng, market, max(mid - half, 1), max(100 - mid - half, 1))


def build(seed: int = 5) -> tuple[list[MarketInfo], dict[str, OrderBook]]:
    rng = random.Random(seed)
    infos: list[MarketInfo] = []
    books: dict[str, OrderBook] = {}
    for number in range(EVENTS):
        markets, probs = _event(rng, number)
        infos += markets
        for info, p in zip(markets, probs, strict=True):
            books[info.market] = _fair_book(rng, info.market, p)
    _inject(rng, infos, books)
    return infos, books


def _inject(rng: random.Random, infos: list[MarketInfo], books: dict[str, OrderBook]) -> None:
    """A few arbitrages: two atomic YES, two atomic NO, two ladders."""
    by_event: dict[str, list[MarketInfo]] = {}
    for info in infos:
        by_event.setdefault(info.event, []).append(info)
    weather = [e for e in by_event if e.startswith("KXHIGH")]
    picks = [e for e in by_event if e.startswith("KXPICK")]
    ladders = [e for e in by_event if e.startswith("KXABV")]
    for event in rng.sample(weather, 2):  # YES asks of 0.17 x 5 = 0.85
        for info in by_event[event]:
            books[info.market] = _book(rng, info.market, 10, 83)
    for event in rng.sample(picks, 2):  # NO asks of 0.75 x 5 = 3.75 < 4
        for info in by_event[event]:
            books[info.market] = _book(rng, info.market, 25, 60)
    for event in rng.sample(ladders, 2):  # T34 YES bid 0.60 above T30's YES ask 0.50
        broad, narrow = by_event[event][0], by_event[event][2]
        books[broad.market] = _book(rng, broad.market, 48, 50)
        books[narrow.market] = _book(rng, narrow.market, 60, 38)


def _median_ms(action: Callable[[], object]) -> float:
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter_ns()
        action()
        samples.append(time.perf_counter_ns() - started)
    return statistics.median(samples) / 1e6


def run() -> list[Figure]:
    infos, books = build()
    table = EventTable.build(infos)
    table.refresh(books)
    found = scan(table)
    kinds = sorted({o.kind for o in found})
    if kinds != sorted(ArbKind):
        raise RuntimeError(f"the injected arbitrages were not all found: {kinds}")

    def full() -> None:
        table.refresh(books)
        scan(table)

    markets = len(table.markets)
    return [
        Figure(
            "scan_5k_markets_ms",
            _median_ms(full),
            "ms",
            f"{markets} markets, {len(table.events)} events, {len(found)} arbs: refresh+scan",
        ),
        Figure("scan_5k_screen_ms", _median_ms(lambda: screen(table)), "ms", "numpy screen only"),
    ]


if __name__ == "__main__":
    from bench.figures import print_table

    print_table(run())
