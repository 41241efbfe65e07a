"""Finding the open markets to follow, over REST, and telling the rest of the system.

Lists open events with their markets (of the configured series, or all), with
each series' fee type and multiplier; publishes a :class:`MarketInfo` for every
market that appeared or changed (and, with status ``closed``, for every one
that left the listing), and keeps the ``markets`` table current.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from psycopg.types.json import Jsonb

from services.ingest.catalog import OPEN_STATUSES, Changes, diff, market_info
from shared.bus.publisher import Publisher
from shared.kalshi.errors import KalshiError
from shared.kalshi.models import Series
from shared.kalshi.rest import KalshiRest
from shared.messages import MarketInfo
from shared.store.pool import Pool
from shared.store.writer import ts_from_ns
from shared.streams import MARKETS

log = structlog.get_logger("ingest")

UPSERT = """
INSERT INTO markets (ticker, event, series, title, status, strike_type, floor_strike, cap_strike,
                     close_time, mutually_exclusive, fee_type, fee_multiplier, price_ranges,
                     updated_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
ON CONFLICT (ticker) DO UPDATE SET
    status = EXCLUDED.status, title = EXCLUDED.title, close_time = EXCLUDED.close_time,
    mutually_exclusive = EXCLUDED.mutually_exclusive, fee_type = EXCLUDED.fee_type,
    fee_multiplier = EXCLUDED.fee_multiplier, price_ranges = EXCLUDED.price_ranges,
    updated_at = now()
"""


def _row(info: MarketInfo) -> tuple[object, ...]:
    ranges = Jsonb([[r.start, r.end, r.step] for r in info.price_ranges])
    return (
        info.market,
        info.event,
        info.series,
        info.title,
        info.status,
        info.strike_type,
        info.floor_strike,
        info.cap_strike,
        ts_from_ns(info.close_ts_ns),
        info.mutually_exclusive,
        info.fee_type,
        info.fee_multiplier,
        ranges,
    )


class Discovery:
    """The catalog of open markets, refreshed on demand."""

    def __init__(
        self, rest: KalshiRest, publisher: Publisher, pool: Pool | None, series: Sequence[str]
    ) -> None:
        self.rest = rest
        self.publisher = publisher
        self.pool = pool
        self.series = list(series)
        self.catalog: dict[str, MarketInfo] = {}
        self._series: dict[str, Series] = {}

    async def refresh(self) -> Changes:
        listing = await self.list_open()
        changes = diff(self.catalog, listing)
        gone = [self.catalog[t] for t in changes.removed]
        for info in gone:
            info.status = "closed"
        updates = changes.added + changes.changed + gone
        if updates:
            await self.publisher.publish_many(MARKETS, updates)
            await self._store(updates)
            log.info(
                "markets",
                open=len(listing),
                added=len(changes.added),
                changed=len(changes.changed),
                closed=len(gone),
            )
        self.catalog = {info.market: info for info in listing}
        return changes

    async def list_open(self) -> list[MarketInfo]:
        listing: list[MarketInfo] = []
        wanted: list[str | None] = [*self.series] or [None]
        for series in wanted:
            async for event in self.rest.iter_events(
                series_ticker=series, status="open", with_nested_markets=True
            ):
                fees = await self._fees(event.series_ticker)
                listing.extend(
                    market_info(market, event, fees)
                    for market in event.markets or ()
                    if market.status in OPEN_STATUSES
                )
        return listing

    async def _fees(self, series: str) -> Series | None:
        if series not in self._series:
            try:
                self._series[series] = await self.rest.get_series(series)
            except KalshiError as exc:  # an unknown series must not stop discovery
                log.warning(
                    "series lookup failed; default fees assumed", series=series, error=str(exc)
                )
                return None
        return self._series[series]

    async def _store(self, infos: list[MarketInfo]) -> None:
        if self.pool is None:
            return
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany(UPSERT, [_row(info) for info in infos])
