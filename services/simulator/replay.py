"""The replay scenario: plays a file of recorded Kalshi WebSocket messages.

The file holds one JSON object per line: either a message as Kalshi sent it
(``orderbook_snapshot``, ``orderbook_delta``; other types are skipped) or
``{"ts_ms": ..., "msg": <message>}`` with the time it was received. NO levels
are read in NO-leg prices, Kalshi's default. Each recorded level becomes
resting liquidity of a replay account, so clients see the recorded books and
can trade against them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from services.simulator.engine import Exchange, OrderError
from services.simulator.model import Event, Market, OrderStatus, Series
from services.simulator.state import SimState
from shared.money import Count, Micros, parse_count, parse_dollars

REPLAY_ACCOUNT: Final = "sim-replay"
REPLAY_SERIES: Final = "REPLAY"
BOOK_TYPES: Final = ("orderbook_snapshot", "orderbook_delta")


@dataclass(frozen=True)
class Recorded:
    ts_ms: int | None
    message: dict[str, Any]


def read_recording(path: str | Path) -> Iterator[Recorded]:
    with Path(path).open() as lines:
        for line in lines:
            if not line.strip():
                continue
            item = json.loads(line)
            if "msg" in item and "type" not in item:
                yield Recorded(item.get("ts_ms"), item["msg"])
            else:
                yield Recorded(item.get("msg", {}).get("ts_ms"), item)


@dataclass
class Replayer:
    exchange: Exchange
    recorded: dict[tuple[str, str, Micros], Count] = field(default_factory=dict)
    orders: dict[tuple[str, str, Micros], list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if REPLAY_ACCOUNT not in self.exchange.ledger:
            self.exchange.open_account(REPLAY_ACCOUNT, 0, keep_history=False)
        if REPLAY_SERIES not in self.exchange.series:
            self.exchange.add_series(Series(REPLAY_SERIES, "Replayed markets", "Replay"))

    def apply(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind not in BOOK_TYPES:
            return
        body = message["msg"]
        ticker = body["market_ticker"]
        self._ensure_market(ticker, body.get("market_id"))
        if kind == "orderbook_snapshot":
            self._snapshot(ticker, body)
        else:
            key = (ticker, body["side"], parse_dollars(body["price_dollars"]))
            self._set_level(key, self.recorded.get(key, 0) + parse_count(body["delta_fp"]))

    def _snapshot(self, ticker: str, body: dict[str, Any]) -> None:
        wanted: dict[tuple[str, str, Micros], Count] = {}
        for leg in ("yes", "no"):
            for price, size in body.get(f"{leg}_dollars_fp") or []:
                wanted[ticker, leg, parse_dollars(price)] = parse_count(size)
        for key in [k for k in self.recorded if k[0] == ticker and k not in wanted]:
            self._set_level(key, 0)
        for key, size in wanted.items():
            self._set_level(key, size)

    def _set_level(self, key: tuple[str, str, Micros], size: Count) -> None:
        ticker, leg, price = key
        self.recorded[key] = max(0, size)
        ids = [
            order_id
            for order_id in self.orders.get(key, [])
            if (o := self.exchange.orders.get(order_id)) and o.status is OrderStatus.RESTING
        ]
        self.orders[key] = ids
        have = sum(self.exchange.orders[i].remaining for i in ids)
        if size > have:
            order = self.exchange.rest_without_matching(
                REPLAY_ACCOUNT, ticker, leg, price, size - have
            )
            ids.append(order.order_id)
        while have > size and ids:
            order = self.exchange.orders[ids[-1]]
            cut = min(order.remaining, have - size)
            try:
                if cut == order.remaining:
                    self.exchange.cancel(REPLAY_ACCOUNT, order.order_id)
                    ids.pop()
                else:
                    self.exchange.decrease(REPLAY_ACCOUNT, order.order_id, cut, None)
            except OrderError:
                ids.pop()
            have -= cut

    def _ensure_market(self, ticker: str, market_id: str | None) -> None:
        if ticker in self.exchange.markets:
            return
        event_ticker = ticker.rsplit("-", 1)[0] if "-" in ticker else ticker
        if event_ticker not in self.exchange.events:
            self.exchange.add_event(Event(event_ticker, REPLAY_SERIES, event_ticker, "", False))
        now = self.exchange.clock_ms()
        self.exchange.add_market(
            Market(
                ticker=ticker,
                event_ticker=event_ticker,
                series_ticker=REPLAY_SERIES,
                market_id=market_id or self.exchange.new_id(),
                title=ticker,
                yes_sub_title=ticker,
                no_sub_title=ticker,
                open_ms=now,
                close_ms=now + 7 * 86_400_000,
                expected_expiration_ms=now + 8 * 86_400_000,
                rules_primary="Replayed from a recording.",
                price_level_structure="center_centi_edge_centi_cent",
                created_ms=now,
            )
        )


def replay_task(path: str, speed: float) -> Callable[[SimState], Coroutine[Any, Any, None]]:
    async def run(state: SimState) -> None:
        replayer = Replayer(state.exchange)
        state.replayer = replayer
        previous: int | None = None
        for item in read_recording(path):
            if speed > 0 and item.ts_ms is not None and previous is not None:
                await asyncio.sleep(max(0.0, (item.ts_ms - previous) / 1000 / speed))
            previous = item.ts_ms if item.ts_ms is not None else previous
            replayer.apply(item.message)
            state.commit()
            await asyncio.sleep(0)
        state.replay_done = True

    return run
