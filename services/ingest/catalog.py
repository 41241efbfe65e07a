"""From Kalshi's events, markets and series to our market metadata (pure).

Discovery lists open events with their markets; this module turns them into
:class:`~shared.messages.MarketInfo`, decides which of them this ingest replica
follows (the events of the shards it owns, up to a cap), and says what changed
since the last listing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from shared.book import PriceGrid
from shared.kalshi.models import Event, Market, Series
from shared.messages import MarketInfo, PriceRange
from shared.money import parse_dollars
from shared.streams import shard_of

OPEN_STATUSES = frozenset({"active", "open"})


def close_ts_ns(iso: str | None) -> int:
    """Kalshi's ISO-8601 close time in ns since the epoch (0 when absent)."""
    if not iso:
        return 0
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def price_ranges(market: Market) -> list[PriceRange]:
    ranges = [
        PriceRange(parse_dollars(r.start), parse_dollars(r.end), parse_dollars(r.step))
        for r in market.price_ranges
    ]
    return ranges or list(PriceGrid.cents().ranges)


def market_info(market: Market, event: Event, series: Series | None) -> MarketInfo:
    return MarketInfo(
        market=market.ticker,
        event=event.event_ticker,
        series=event.series_ticker,
        status=market.status,
        close_ts_ns=close_ts_ns(market.close_time),
        price_ranges=price_ranges(market),
        mutually_exclusive=event.mutually_exclusive,
        strike_type=market.strike_type or "",
        floor_strike=market.floor_strike,
        cap_strike=market.cap_strike,
        fee_type=series.fee_type if series else "quadratic",
        fee_multiplier=series.fee_multiplier if series else "1",
        title=market.title,
    )


def grid_of(info: MarketInfo) -> PriceGrid:
    return PriceGrid.from_ranges(info.price_ranges)


@dataclass(frozen=True, slots=True)
class Changes:
    added: list[MarketInfo]
    changed: list[MarketInfo]
    removed: list[str]


def diff(before: dict[str, MarketInfo], after: Iterable[MarketInfo]) -> Changes:
    """What a new listing changed (by value, ignoring hop stamps)."""
    after_map = {info.market: info for info in after}
    added = [info for ticker, info in after_map.items() if ticker not in before]
    changed = [
        info
        for ticker, info in after_map.items()
        if ticker in before and _facts(before[ticker]) != _facts(info)
    ]
    removed = [ticker for ticker in before if ticker not in after_map]
    return Changes(added, changed, removed)


def _facts(info: MarketInfo) -> tuple[object, ...]:
    return tuple(getattr(info, name) for name in info.__struct_fields__ if name != "hops")


def followed(
    catalog: Iterable[MarketInfo], owned_shards: set[int], shards: int, max_markets: int
) -> set[str]:
    """The open markets of events on this replica's shards, capped, whole events first."""
    by_event: dict[str, list[str]] = {}
    for info in catalog:
        if info.status in OPEN_STATUSES and shard_of(info.event, shards) in owned_shards:
            by_event.setdefault(info.event, []).append(info.market)
    chosen: set[str] = set()
    for event in sorted(by_event):
        markets = by_event[event]
        if len(chosen) + len(markets) > max_markets:
            break  # never half an event: arbitrage needs all its markets
        chosen.update(markets)
    return chosen
