"""What the exchange holds: series, events, markets, orders, and the events it emits.

Money is integer micro-dollars and counts integer hundredths of a contract
(:mod:`shared.money`). An order's price is always its YES price; a resting
``ask`` (sell YES = buy NO) sits in the NO bids at ``$1 - price``, as Kalshi
publishes its book.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from shared.money import ONE_DOLLAR, Count, Micros, parse_dollars


class BookSide(StrEnum):
    """V2 direction: ``bid`` buys YES, ``ask`` sells YES (buys NO), priced on YES."""

    BID = "bid"
    ASK = "ask"

    @property
    def opposite(self) -> BookSide:
        return BookSide.ASK if self is BookSide.BID else BookSide.BID

    @property
    def leg(self) -> str:
        """The side of the published book this order rests in: ``yes`` or ``no``."""
        return "yes" if self is BookSide.BID else "no"


class TimeInForce(StrEnum):
    GTC = "good_till_canceled"
    IOC = "immediate_or_cancel"
    FOK = "fill_or_kill"


class SelfTradePrevention(StrEnum):
    TAKER_AT_CROSS = "taker_at_cross"
    MAKER = "maker"


class OrderStatus(StrEnum):
    RESTING = "resting"
    CANCELED = "canceled"
    EXECUTED = "executed"


class MarketStatus(StrEnum):
    INITIALIZED = "initialized"
    ACTIVE = "active"
    INACTIVE = "inactive"
    CLOSED = "closed"
    DETERMINED = "determined"
    FINALIZED = "finalized"


@dataclass(frozen=True, slots=True)
class PriceRange:
    start: Micros
    end: Micros
    step: Micros


def _ranges(*spec: tuple[str, str, str]) -> tuple[PriceRange, ...]:
    return tuple(PriceRange(*(parse_dollars(part) for part in item)) for item in spec)


PRICE_LEVEL_STRUCTURES: Final[dict[str, tuple[PriceRange, ...]]] = {
    "linear_cent": _ranges(("0", "1", "0.01")),
    "deci_cent": _ranges(("0", "1", "0.001")),
    "tapered_deci_cent": _ranges(
        ("0", "0.1", "0.001"), ("0.1", "0.9", "0.01"), ("0.9", "1", "0.001")
    ),
    "center_half_edge_half_cent": _ranges(("0", "1", "0.005")),
    "center_centi_edge_centi_cent": _ranges(("0", "1", "0.0001")),
}


def on_grid(price: Micros, ranges: tuple[PriceRange, ...]) -> bool:
    """A tradable price: strictly inside (0, 1) and on one of the market's ranges."""
    if not 0 < price < ONE_DOLLAR:
        return False
    return any(r.start <= price <= r.end and (price - r.start) % r.step == 0 for r in ranges)


def floor_to_grid(price: Micros, ranges: tuple[PriceRange, ...]) -> Micros:
    """The highest tradable price at or below ``price`` (the lowest tick if none)."""
    best = 0
    for r in ranges:
        if r.start <= price:
            top = min(price, r.end)
            best = max(best, r.start + (top - r.start) // r.step * r.step)
    return best if on_grid(best, ranges) else ranges[0].start + ranges[0].step


def ceil_to_grid(price: Micros, ranges: tuple[PriceRange, ...]) -> Micros:
    """The lowest tradable price at or above ``price`` (the highest tick if none)."""
    best = ONE_DOLLAR
    for r in ranges:
        if r.end >= price:
            bottom = max(price, r.start)
            best = min(best, r.start - (r.start - bottom) // r.step * r.step)
    return best if on_grid(best, ranges) else ranges[-1].end - ranges[-1].step


@dataclass(slots=True)
class Series:
    ticker: str
    title: str
    category: str
    frequency: str = "daily"
    fee_type: str = "quadratic"
    fee_multiplier: str = "1"
    tags: list[str] = field(default_factory=list)
    settlement_sources: list[dict[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class Event:
    event_ticker: str
    series_ticker: str
    title: str
    sub_title: str
    mutually_exclusive: bool
    markets: list[str] = field(default_factory=list)
    strike_date_ms: int | None = None


@dataclass(slots=True)
class Market:
    ticker: str
    event_ticker: str
    series_ticker: str
    market_id: str
    title: str
    yes_sub_title: str
    no_sub_title: str
    open_ms: int
    close_ms: int
    expected_expiration_ms: int
    rules_primary: str
    price_level_structure: str = "linear_cent"
    fractional: bool = True
    strike_type: str | None = None
    floor_strike: float | None = None
    cap_strike: float | None = None
    status: MarketStatus = MarketStatus.ACTIVE
    result: str = ""
    settled_ms: int | None = None
    created_ms: int = 0
    volume: Count = 0
    open_interest: Count = 0
    last_price: Micros = 0
    previous_price: Micros = 0
    previous_yes_bid: Micros = 0
    previous_yes_ask: Micros = ONE_DOLLAR

    @property
    def price_ranges(self) -> tuple[PriceRange, ...]:
        return PRICE_LEVEL_STRUCTURES[self.price_level_structure]


@dataclass(slots=True)
class Order:
    order_id: str
    account: str
    client_order_id: str
    ticker: str
    book_side: BookSide
    yes_price: Micros
    initial_count: Count
    time_in_force: TimeInForce
    stp: SelfTradePrevention
    created_ms: int
    post_only: bool = False
    reduce_only: bool = False
    expiration_ms: int | None = None
    legacy_side: str = ""
    legacy_action: str = ""
    remaining: Count = 0
    filled: Count = 0
    status: OrderStatus = OrderStatus.RESTING
    updated_ms: int = 0
    taker_fill_cost: Micros = 0
    maker_fill_cost: Micros = 0
    taker_fees: Micros = 0
    maker_fees: Micros = 0
    taker_fee_numerator: int = 0
    maker_fee_numerator: int = 0
    reserved: Micros = 0
    reserved_initial: Micros = 0
    cancel_reason: str = ""

    @property
    def leg_price(self) -> Micros:
        """The price in the leg the order buys: YES price for bids, NO price for asks."""
        return self.yes_price if self.book_side is BookSide.BID else ONE_DOLLAR - self.yes_price

    def leg_price_at(self, yes_price: Micros) -> Micros:
        """What this order pays per contract in its own leg when trading at ``yes_price``."""
        return yes_price if self.book_side is BookSide.BID else ONE_DOLLAR - yes_price

    @property
    def side(self) -> str:
        """Legacy ``side`` (yes/no) as the order was entered, or derived from ``book_side``."""
        return self.legacy_side or self.book_side.leg

    @property
    def action(self) -> str:
        return self.legacy_action or "buy"


# --- what the engine tells the outside world ------------------------------------------


@dataclass(frozen=True, slots=True)
class BookDelta:
    """The resting count at ``price`` (in the ``side`` leg's own price) changed by ``delta``."""

    ticker: str
    side: str
    price: Micros
    delta: Count
    ts_ms: int
    account: str | None = None
    client_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class Trade:
    trade_id: str
    ticker: str
    yes_price: Micros
    count: Count
    taker_side: BookSide
    ts_ms: int


@dataclass(frozen=True, slots=True)
class Fill:
    """One account's share of a trade."""

    trade_id: str
    account: str
    order_id: str
    client_order_id: str
    ticker: str
    book_side: BookSide
    side: str
    action: str
    yes_price: Micros
    count: Count
    fee: Micros
    is_taker: bool
    post_position: Count
    ts_ms: int


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    account: str
    order: Order


@dataclass(frozen=True, slots=True)
class Lifecycle:
    ticker: str
    event_type: str
    ts_ms: int
    result: str = ""


@dataclass(frozen=True, slots=True)
class PositionUpdate:
    """An account's position in a market after it changed (a fill or a settlement)."""

    account: str
    ticker: str
    position: Count
    cost: Micros
    realized_pnl: Micros
    fees_paid: Micros
    fee_cost: Micros
    volume: Count
    ts_ms: int


ExchangeEvent = BookDelta | Trade | Fill | OrderUpdate | Lifecycle | PositionUpdate
