"""Polymarket, for comparison across venues: Gamma market records, CLOB WebSocket books.

Pure parsing and book keeping, no I/O. Prices are parsed exactly into integer
micro-dollars (Polymarket writes them with or without the leading zero:
``".48"``). Sizes are shares with up to six decimals (``"219.217767"``); our
counts are hundredths of a contract, so sizes are rounded DOWN to the
hundredth: a book must never show more than is really there, since a
cross-venue trade sized on it could not be hedged in full. A level smaller
than 0.01 therefore shows as empty and is dropped.

Each binary market has a YES and a NO token with separate books. A Kalshi
market maps to one token; when it maps to the NO token, the book is turned
into YES prices: a NO bid at p is a YES ask at 1 - p and a NO ask at p a YES
bid at 1 - p.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from shared.messages import Level, VenueBook
from shared.money import (
    ONE_DOLLAR,
    Count,
    Micros,
    MoneyFormatError,
    complement,
    parse_count,
    parse_dollars,
)

VENUE: Final = "polymarket"
BookSide = Literal["BUY", "SELL"]


class PolymarketFormatError(ValueError):
    """A Polymarket payload that does not have the shape we read."""


# --- numbers -------------------------------------------------------------------------------


def parse_price(text: object) -> Micros:
    """``".48"`` -> 480_000 micro-dollars; exact, between $0 and $1."""
    if not isinstance(text, str):
        raise PolymarketFormatError(f"price {text!r} is not a string")
    try:
        price = parse_dollars(text)
    except MoneyFormatError as exc:
        raise PolymarketFormatError(str(exc)) from exc
    if not 0 <= price <= ONE_DOLLAR:
        raise PolymarketFormatError(f"price {text!r} is outside [0, 1]")
    return price


def parse_size(text: object) -> Count:
    """``"219.217767"`` -> 21921 hundredths: rounded down, never up (see the module doc)."""
    if not isinstance(text, str):
        raise PolymarketFormatError(f"size {text!r} is not a string")
    whole, dot, frac = text.strip().partition(".")
    if frac and not frac.isdigit():
        raise PolymarketFormatError(f"size {text!r} is not a decimal number")
    try:
        size = parse_count(f"{whole}{dot}{frac[:2]}")
    except MoneyFormatError as exc:
        raise PolymarketFormatError(str(exc)) from exc
    if size < 0:
        raise PolymarketFormatError(f"size {text!r} is negative")
    return size


# --- Gamma ---------------------------------------------------------------------------------


def _json_list(value: object, what: str) -> list[str]:
    """Gamma's outcomes, outcomePrices and clobTokenIds: JSON-encoded strings of arrays."""
    decoded = json.loads(value) if isinstance(value, str) else value
    if not isinstance(decoded, list):
        raise PolymarketFormatError(f"{what} is not a JSON array: {value!r}")
    return [str(item) for item in decoded]


@dataclass(frozen=True, slots=True)
class GammaMarket:
    """A Gamma market record: a binary question with one CLOB token per outcome."""

    id: str
    question: str
    condition_id: str
    slug: str
    outcomes: tuple[str, ...]
    outcome_prices: tuple[Micros, ...]
    token_ids: tuple[str, ...]
    enable_order_book: bool
    closed: bool

    def token_for(self, outcome: str) -> str:
        """The token id of an outcome by name (case-insensitive)."""
        for name, token in zip(self.outcomes, self.token_ids, strict=True):
            if name.lower() == outcome.lower():
                return token
        raise KeyError(f"market {self.id} has no outcome {outcome!r}")

    @property
    def first_token(self) -> str:
        """Index 0: the Yes token of a Yes/No market."""
        return self.token_ids[0]

    @property
    def second_token(self) -> str:
        """Index 1: the No token of a Yes/No market."""
        return self.token_ids[1]


def parse_gamma_market(record: Mapping[str, Any]) -> GammaMarket:
    outcomes = _json_list(record.get("outcomes"), "outcomes")
    prices = _json_list(record.get("outcomePrices") or "[]", "outcomePrices")
    tokens = _json_list(record.get("clobTokenIds") or "[]", "clobTokenIds")
    if len(tokens) != len(outcomes) or (prices and len(prices) != len(outcomes)):
        raise PolymarketFormatError("outcomes, outcomePrices and clobTokenIds differ in length")
    return GammaMarket(
        id=str(record.get("id", "")),
        question=str(record.get("question", "")),
        condition_id=str(record.get("conditionId", "")),
        slug=str(record.get("slug", "")),
        outcomes=tuple(outcomes),
        outcome_prices=tuple(parse_price(p) for p in prices),
        token_ids=tuple(tokens),
        enable_order_book=bool(record.get("enableOrderBook", False)),
        closed=bool(record.get("closed", False)),
    )


# --- CLOB market-channel messages ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BookMessage:
    """``book``: the full book of one token."""

    asset_id: str
    market: str
    bids: dict[Micros, Count]
    asks: dict[Micros, Count]
    timestamp_ms: int
    tick_size: Micros | None = None


@dataclass(frozen=True, slots=True)
class PriceChange:
    """One level of ``price_change``: ``size`` is the new total there; 0 removes the level."""

    asset_id: str
    side: BookSide
    price: Micros
    size: Count
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class TickSizeChange:
    asset_id: str
    tick_size: Micros
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class LastTrade:
    asset_id: str
    price: Micros
    side: str
    size: Count
    fee_rate_bps: int
    timestamp_ms: int


ClobEvent = BookMessage | PriceChange | TickSizeChange | LastTrade


def _text(message: Mapping[str, Any], key: str) -> str:
    value = message.get(key)
    if not isinstance(value, str) or not value:
        raise PolymarketFormatError(f"message has no {key!r}")
    return value


def _timestamp_ms(message: Mapping[str, Any]) -> int:
    value = message.get("timestamp", 0)
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise PolymarketFormatError(f"timestamp {value!r} is not milliseconds") from exc


def _levels(raw: object) -> dict[Micros, Count]:
    if not isinstance(raw, list):
        raise PolymarketFormatError("book side is not a list")
    levels: dict[Micros, Count] = {}
    for level in raw:
        if not isinstance(level, Mapping):
            raise PolymarketFormatError(f"level {level!r} is not an object")
        size = parse_size(level.get("size"))
        if size > 0:
            levels[parse_price(level.get("price"))] = size
    return levels


def _side(value: object) -> BookSide:
    if value == "BUY":
        return "BUY"
    if value == "SELL":
        return "SELL"
    raise PolymarketFormatError(f"side {value!r} is neither BUY nor SELL")


def _book(message: Mapping[str, Any]) -> BookMessage:
    tick = message.get("tick_size")
    return BookMessage(
        asset_id=_text(message, "asset_id"),
        market=str(message.get("market", "")),
        bids=_levels(message.get("bids", [])),
        asks=_levels(message.get("asks", [])),
        timestamp_ms=_timestamp_ms(message),
        tick_size=parse_price(tick) if isinstance(tick, str) else None,
    )


def _price_changes(message: Mapping[str, Any]) -> list[PriceChange]:
    # current shape: price_changes[] each naming its asset; older: one asset_id and changes[]
    ts = _timestamp_ms(message)
    rows = message.get("price_changes")
    if rows is None:
        rows = [{**row, "asset_id": message.get("asset_id")} for row in message.get("changes", [])]
    if not isinstance(rows, list):
        raise PolymarketFormatError("price_change has no list of changes")
    return [
        PriceChange(
            asset_id=_text(row, "asset_id"),
            side=_side(row.get("side")),
            price=parse_price(row.get("price")),
            size=parse_size(row.get("size")),
            timestamp_ms=ts,
        )
        for row in rows
    ]


def parse_clob_event(message: Mapping[str, Any]) -> list[ClobEvent]:
    """One market-channel message -> its events; types we do not use give []."""
    kind = message.get("event_type")
    if kind == "book":
        return [_book(message)]
    if kind == "price_change":
        return list(_price_changes(message))
    if kind == "tick_size_change":
        new_tick = parse_price(message.get("new_tick_size"))
        return [TickSizeChange(_text(message, "asset_id"), new_tick, _timestamp_ms(message))]
    if kind == "last_trade_price":
        return [
            LastTrade(
                asset_id=_text(message, "asset_id"),
                price=parse_price(message.get("price")),
                side=str(message.get("side", "")),
                size=parse_size(message.get("size", "0")),
                fee_rate_bps=int(message.get("fee_rate_bps") or 0),
                timestamp_ms=_timestamp_ms(message),
            )
        ]
    return []


def parse_clob_frame(payload: Any) -> list[ClobEvent]:
    """A decoded WS frame: one message object, or a list of them (the initial books)."""
    messages = payload if isinstance(payload, list) else [payload]
    events: list[ClobEvent] = []
    for message in messages:
        if not isinstance(message, Mapping):
            raise PolymarketFormatError(f"frame item {message!r} is not an object")
        events.extend(parse_clob_event(message))
    return events


# --- books ---------------------------------------------------------------------------------


@dataclass
class TokenBook:
    """One token's book as the market channel describes it."""

    asset_id: str
    bids: dict[Micros, Count] = field(default_factory=dict)
    asks: dict[Micros, Count] = field(default_factory=dict)
    tick_size: Micros | None = None
    last_trade: LastTrade | None = None
    timestamp_ms: int = 0

    def bid_levels(self) -> list[Level]:
        """Best (highest) first."""
        return [Level(p, self.bids[p]) for p in sorted(self.bids, reverse=True)]

    def ask_levels(self) -> list[Level]:
        """Best (lowest) first."""
        return [Level(p, self.asks[p]) for p in sorted(self.asks)]


class BookKeeper:
    """Books of many tokens; a token's book is known only after its ``book`` message."""

    def __init__(self) -> None:
        self.books: dict[str, TokenBook] = {}

    def clear(self) -> None:
        """Forget every book (after a disconnect: the next snapshots rebuild them)."""
        self.books.clear()

    def apply(self, event: ClobEvent) -> bool:
        """Apply one event; True if a known book's levels changed."""
        if isinstance(event, BookMessage):
            self._replace(event)
            return True
        book = self.books.get(event.asset_id)
        if book is None:
            return False
        if isinstance(event, PriceChange):
            return _apply_change(book, event)
        if isinstance(event, TickSizeChange):
            book.tick_size = event.tick_size
        else:
            book.last_trade = event
        return False

    def _replace(self, snapshot: BookMessage) -> None:
        book = self.books.setdefault(snapshot.asset_id, TokenBook(snapshot.asset_id))
        book.bids, book.asks = dict(snapshot.bids), dict(snapshot.asks)
        book.timestamp_ms = snapshot.timestamp_ms
        book.tick_size = snapshot.tick_size or book.tick_size


def _apply_change(book: TokenBook, change: PriceChange) -> bool:
    levels = book.bids if change.side == "BUY" else book.asks
    book.timestamp_ms = max(book.timestamp_ms, change.timestamp_ms)
    if change.size == 0:
        return levels.pop(change.price, None) is not None
    if levels.get(change.price) == change.size:
        return False
    levels[change.price] = change.size
    return True


@dataclass(frozen=True, slots=True)
class MarketLink:
    """A Kalshi market mapped to a Polymarket token (its YES, or its NO when ``token_is_no``)."""

    kalshi_market: str
    token_id: str
    token_is_no: bool = False
    taker_fee_rate: float = 0.05


def yes_side_levels(book: TokenBook, token_is_no: bool) -> tuple[list[Level], list[Level]]:
    """(bids, asks) in YES prices, best first."""
    if not token_is_no:
        return book.bid_levels(), book.ask_levels()
    bids = [Level(complement(level.price), level.count) for level in book.ask_levels()]
    asks = [Level(complement(level.price), level.count) for level in book.bid_levels()]
    return bids, asks


def venue_book(book: TokenBook, link: MarketLink, observed_at_ns: int) -> VenueBook:
    bids, asks = yes_side_levels(book, link.token_is_no)
    return VenueBook(
        venue=VENUE,
        market=link.kalshi_market,
        bids=bids,
        asks=asks,
        taker_fee_rate=link.taker_fee_rate,
        observed_at_ns=observed_at_ns,
    )
