"""Settlements: markets we hold that have closed are looked up until they have a result.

Kalshi pays $1 a contract to the winning side at settlement; the ledger books
it (``MarketSettled`` on the ``fills`` stream, a ``settlements`` row) once, by
market. The same REST lookup serves live trading and paper trading against the
simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping

import structlog

from shared.kalshi.errors import KalshiError
from shared.kalshi.rest import KalshiRest
from shared.ledger import Ledger
from shared.messages import MarketInfo, MarketSettled, Side

log = structlog.get_logger("settlement")

OnSettled = Callable[[MarketSettled], Awaitable[None]]


class Settler:
    def __init__(
        self,
        rest: KalshiRest,
        ledger: Ledger,
        catalog: Mapping[str, MarketInfo],
        on_settled: OnSettled,
        *,
        paper: bool,
        every_s: float = 30.0,
    ) -> None:
        self.rest = rest
        self.ledger = ledger
        self.catalog = catalog
        self.on_settled = on_settled
        self.paper = paper
        self.every_s = every_s

    def due(self, now_ns: int) -> list[str]:
        """Held markets past their close time (or of unknown close time)."""
        return sorted(
            market
            for market in self.ledger.holdings
            if (info := self.catalog.get(market)) is None or info.close_ts_ns <= now_ns
        )

    async def check(self) -> int:
        settled = 0
        for market in self.due(time.time_ns()):
            try:
                result = (await self.rest.get_market(market)).result
            except KalshiError as exc:
                log.warning("settlement lookup failed", market=market, error=str(exc))
                continue
            if result in ("yes", "no"):
                await self.on_settled(
                    MarketSettled(
                        market=market, result=Side(result), ts_ns=time.time_ns(), paper=self.paper
                    )
                )
                settled += 1
        return settled

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                await self.check()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.every_s):
                        await stop.wait()
        finally:
            await self.rest.aclose()
