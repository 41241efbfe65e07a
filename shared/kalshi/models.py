"""Typed shapes of the JSON Kalshi sends and accepts, as msgspec Structs.

Wire models keep money and counts as the wire's strings (``*_dollars``,
``*_fp``); convert them with :func:`to_micros`, :func:`to_count` and
:func:`parse_levels`, which are exact (integers, never a float). Unknown
fields are ignored so new fields from Kalshi never break decoding; fields
Kalshi may omit have defaults.

``Series.fee_multiplier`` arrives as a JSON number (``0.07``, ``1``) or a
string. It is kept as exact decimal text: :func:`decode_series` reads JSON
numbers as ``Decimal`` (from their digits, no float in between) and writes
them out in plain notation, ready for :func:`shared.fees.taker_rate`.

WebSocket messages decode through one :func:`decode_ws` over a union tagged
by ``type``; an unknown type or a malformed message becomes an
:class:`UnknownMessage` or :class:`MalformedMessage`, never an exception.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final, Literal, TypeAlias

import msgspec

from shared.money import (
    MICROS_PER_CENT,
    ONE_DOLLAR,
    Count,
    Micros,
    format_count,
    format_dollars,
    parse_count,
    parse_dollars,
)

Level: TypeAlias = tuple[str, str]
"""One book level as sent: [price dollars, count fp]."""

BookSide = Literal["bid", "ask"]
LegSide = Literal["yes", "no"]
Action = Literal["buy", "sell"]
TimeInForce = Literal["fill_or_kill", "good_till_canceled", "immediate_or_cancel"]
SelfTradePrevention = Literal["taker_at_cross", "maker"]


def to_micros(text: str) -> Micros:
    """``"0.5600"`` -> 560_000 micro-dollars (exact)."""
    return parse_dollars(text)


def to_count(text: str) -> Count:
    """``"10.00"`` -> 1000 hundredths of a contract (exact)."""
    return parse_count(text)


def parse_levels(levels: list[Level] | None) -> list[tuple[Micros, Count]]:
    """Wire levels to (micro-dollars, hundredths), in the order given."""
    return [(to_micros(price), parse_count(size)) for price, size in levels or ()]


# --- exchange and market data -----------------------------------------------------------


class ExchangeStatus(msgspec.Struct, kw_only=True):
    exchange_active: bool
    trading_active: bool
    exchange_estimated_resume_time: str | None = None


class BucketLimits(msgspec.Struct, kw_only=True):
    refill_rate: int
    bucket_capacity: int


class AccountLimits(msgspec.Struct, kw_only=True):
    usage_tier: str
    read: BucketLimits
    write: BucketLimits


class PriceRange(msgspec.Struct, kw_only=True):
    start: str
    end: str
    step: str


def price_grid(ranges: list[PriceRange]) -> list[tuple[Micros, Micros, Micros]]:
    """A market's valid prices as (start, end, step) in micro-dollars."""
    return [(to_micros(r.start), to_micros(r.end), to_micros(r.step)) for r in ranges]


class Market(msgspec.Struct, kw_only=True):
    ticker: str
    event_ticker: str
    status: str
    market_type: str = "binary"
    title: str = ""
    yes_sub_title: str = ""
    no_sub_title: str = ""
    open_time: str | None = None
    close_time: str | None = None
    expected_expiration_time: str | None = None
    latest_expiration_time: str | None = None
    strike_type: str | None = None
    floor_strike: float | None = None
    cap_strike: float | None = None
    price_level_structure: str = ""
    price_ranges: list[PriceRange] = []
    yes_bid_dollars: str | None = None
    yes_ask_dollars: str | None = None
    no_bid_dollars: str | None = None
    no_ask_dollars: str | None = None
    yes_bid_size_fp: str | None = None
    yes_ask_size_fp: str | None = None
    last_price_dollars: str | None = None
    volume_fp: str | None = None
    volume_24h_fp: str | None = None
    open_interest_fp: str | None = None
    notional_value_dollars: str | None = None
    result: str = ""
    can_close_early: bool | None = None
    settlement_value_dollars: str | None = None
    settlement_ts: str | None = None
    rules_primary: str = ""
    exchange_index: int | None = None


class MarketsPage(msgspec.Struct, kw_only=True):
    markets: list[Market] = []
    cursor: str | None = None


class MarketResponse(msgspec.Struct, kw_only=True):
    market: Market


class Event(msgspec.Struct, kw_only=True):
    event_ticker: str
    series_ticker: str
    title: str = ""
    sub_title: str = ""
    mutually_exclusive: bool = False
    collateral_return_type: str = ""
    strike_date: str | None = None
    exchange_index: int | None = None
    markets: list[Market] | None = None


class EventsPage(msgspec.Struct, kw_only=True):
    events: list[Event] = []
    cursor: str | None = None


class EventResponse(msgspec.Struct, kw_only=True):
    event: Event
    markets: list[Market] = []


class Series(msgspec.Struct, kw_only=True):
    ticker: str
    fee_type: str
    fee_multiplier: str
    """Exact decimal text, e.g. ``"0.5"``; see :func:`decode_series`."""
    title: str = ""
    frequency: str = ""
    category: str = ""
    tags: list[str] | None = None
    exchange_index: int | None = None


class SeriesResponse(msgspec.Struct, kw_only=True):
    series: Series


class SeriesList(msgspec.Struct, kw_only=True):
    series: list[Series] = []


_exact_decoder: Final = msgspec.json.Decoder(float_hook=Decimal)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _fix_multiplier(series: Any) -> None:
    if isinstance(series, dict) and "fee_multiplier" in series:
        series["fee_multiplier"] = _plain(series["fee_multiplier"])


def decode_series(data: bytes) -> Series:
    """``GET /series/{ticker}``'s body, with ``fee_multiplier`` as exact text."""
    body = _exact_decoder.decode(data)
    _fix_multiplier(body.get("series") if isinstance(body, dict) else None)
    return msgspec.convert(body, SeriesResponse).series


def decode_series_list(data: bytes) -> list[Series]:
    """``GET /series``'s body, with every ``fee_multiplier`` as exact text."""
    body = _exact_decoder.decode(data)
    for series in (body.get("series") if isinstance(body, dict) else None) or ():
        _fix_multiplier(series)
    return msgspec.convert(body, SeriesList).series


class Orderbook(msgspec.Struct, kw_only=True):
    """REST ``orderbook_fp``: bids only, ascending (best last); sort if you rely on order."""

    yes_dollars: list[Level] | None = None
    no_dollars: list[Level] | None = None

    def yes_levels(self) -> list[tuple[Micros, Count]]:
        return parse_levels(self.yes_dollars)

    def no_levels(self) -> list[tuple[Micros, Count]]:
        return parse_levels(self.no_dollars)


class OrderbookResponse(msgspec.Struct, kw_only=True):
    orderbook_fp: Orderbook


class TickerOrderbook(msgspec.Struct, kw_only=True):
    ticker: str
    orderbook_fp: Orderbook


class OrderbooksResponse(msgspec.Struct, kw_only=True):
    orderbooks: list[TickerOrderbook] = []


# --- portfolio --------------------------------------------------------------------------


class Balance(msgspec.Struct, kw_only=True):
    balance: int
    """Cents (Kalshi still sends the balance as an integer of cents)."""
    balance_dollars: str | None = None
    portfolio_value: int | None = None
    updated_ts: int | None = None

    def available_micros(self) -> Micros:
        if self.balance_dollars is not None:
            return to_micros(self.balance_dollars)
        return self.balance * MICROS_PER_CENT


class MarketPosition(msgspec.Struct, kw_only=True):
    ticker: str
    position_fp: str
    """Signed: positive holds YES, negative holds NO."""
    total_traded_dollars: str = "0"
    market_exposure_dollars: str = "0"
    realized_pnl_dollars: str = "0"
    fees_paid_dollars: str = "0"
    resting_orders_count: int | None = None
    last_updated_ts: str | int | None = None
    exchange_index: int | None = None


class EventPosition(msgspec.Struct, kw_only=True):
    event_ticker: str
    total_cost_dollars: str = "0"
    total_cost_shares_fp: str = "0"
    event_exposure_dollars: str = "0"
    realized_pnl_dollars: str = "0"
    fees_paid_dollars: str = "0"


class PositionsPage(msgspec.Struct, kw_only=True):
    market_positions: list[MarketPosition] | None = None
    event_positions: list[EventPosition] | None = None
    cursor: str | None = None


class Fill(msgspec.Struct, kw_only=True):
    trade_id: str
    order_id: str
    count_fp: str
    yes_price_dollars: str
    is_taker: bool
    fill_id: str = ""
    ticker: str = ""
    market_ticker: str = ""
    side: str = ""
    action: str = ""
    outcome_side: str = ""
    book_side: str = ""
    no_price_dollars: str | None = None
    fee_cost: str = "0"
    created_time: str | None = None
    ts: int | None = None
    exchange_index: int | None = None


class FillsPage(msgspec.Struct, kw_only=True):
    fills: list[Fill] = []
    cursor: str | None = None


class Order(msgspec.Struct, kw_only=True):
    order_id: str
    ticker: str
    status: str
    """``resting``, ``canceled`` or ``executed``."""
    client_order_id: str = ""
    user_id: str = ""
    side: str = ""
    action: str = ""
    outcome_side: str = ""
    book_side: str = ""
    type: str = "limit"
    yes_price_dollars: str = "0"
    no_price_dollars: str = "0"
    fill_count_fp: str = "0"
    remaining_count_fp: str = "0"
    initial_count_fp: str = "0"
    taker_fill_cost_dollars: str = "0"
    maker_fill_cost_dollars: str = "0"
    taker_fees_dollars: str = "0"
    maker_fees_dollars: str = "0"
    expiration_time: str | None = None
    created_time: str | None = None
    last_update_time: str | None = None
    self_trade_prevention_type: str | None = None
    order_group_id: str | None = None
    time_in_force: str | None = None
    exchange_index: int | None = None


class OrdersPage(msgspec.Struct, kw_only=True):
    orders: list[Order] = []
    cursor: str | None = None


class OrderResponse(msgspec.Struct, kw_only=True):
    order: Order


# --- V2 order entry ---------------------------------------------------------------------


class CreateOrderV2(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Body of ``POST /portfolio/events/orders``: ``side`` bid/ask, ``price`` on YES."""

    ticker: str
    side: BookSide
    count: str
    price: str
    time_in_force: TimeInForce
    """Required by Kalshi, so no default here (``omit_defaults`` would drop it)."""
    self_trade_prevention_type: SelfTradePrevention
    client_order_id: str | None = None
    expiration_time: int | None = None
    post_only: bool | None = None
    reduce_only: bool | None = None
    cancel_order_on_pause: bool | None = None
    order_group_id: str | None = None
    subaccount: int | None = None
    exchange_index: int | None = None


def v2_direction(side: LegSide, action: Action, leg_price: Micros) -> tuple[BookSide, Micros]:
    """Legacy (side, action, price of that leg) to V2 (book side, YES price).

    Per Kalshi's direction table: buy YES and sell NO are ``bid`` (long YES);
    buy NO and sell YES are ``ask`` (long NO). A NO-leg price p is the YES
    price 1 - p: buy NO at $0.40 is ``ask`` at $0.60.
    """
    book_side: BookSide = "bid" if (side == "yes") == (action == "buy") else "ask"
    yes_price = leg_price if side == "yes" else ONE_DOLLAR - leg_price
    return book_side, yes_price


def new_order(
    ticker: str,
    side: LegSide,
    action: Action,
    price: Micros,
    count: Count,
    *,
    client_order_id: str | None = None,
    time_in_force: TimeInForce = "good_till_canceled",
    self_trade_prevention_type: SelfTradePrevention = "taker_at_cross",
    post_only: bool | None = None,
    reduce_only: bool | None = None,
    expiration_time: int | None = None,
) -> CreateOrderV2:
    """A V2 order from our vocabulary: ``price`` is the price of ``side``'s leg."""
    book_side, yes_price = v2_direction(side, action, price)
    return CreateOrderV2(
        ticker=ticker,
        side=book_side,
        count=format_count(count),
        price=format_dollars(yes_price, 4 if yes_price % 100 == 0 else 6),
        time_in_force=time_in_force,
        self_trade_prevention_type=self_trade_prevention_type,
        client_order_id=client_order_id,
        post_only=post_only,
        reduce_only=reduce_only,
        expiration_time=expiration_time,
    )


class CreateOrderV2Response(msgspec.Struct, kw_only=True):
    order_id: str
    client_order_id: str | None = None
    fill_count: str = "0"
    remaining_count: str = "0"
    average_fill_price: str | None = None
    average_fee_paid: str | None = None
    ts_ms: int | None = None


AmendOrderV2Response = CreateOrderV2Response


class CancelOrderV2Response(msgspec.Struct, kw_only=True):
    order_id: str
    client_order_id: str | None = None
    reduced_by: str = "0"
    ts_ms: int | None = None


class DecreaseOrderV2Response(msgspec.Struct, kw_only=True):
    order_id: str
    client_order_id: str | None = None
    remaining_count: str = "0"
    ts_ms: int | None = None


class ErrorBody(msgspec.Struct, kw_only=True):
    code: str = ""
    message: str = ""
    details: str = ""


class BatchCreateItem(msgspec.Struct, kw_only=True):
    """One order of a batch: the created order's fields, or ``error``."""

    client_order_id: str | None = None
    order_id: str | None = None
    fill_count: str | None = None
    remaining_count: str | None = None
    average_fill_price: str | None = None
    average_fee_paid: str | None = None
    ts_ms: int | None = None
    error: ErrorBody | None = None


class BatchCreateResponse(msgspec.Struct, kw_only=True):
    orders: list[BatchCreateItem] = []


class BatchCancelItem(msgspec.Struct, kw_only=True):
    order_id: str | None = None
    client_order_id: str | None = None
    reduced_by: str | None = None
    ts_ms: int | None = None
    error: ErrorBody | None = None


class BatchCancelResponse(msgspec.Struct, kw_only=True):
    orders: list[BatchCancelItem] = []


# --- WebSocket --------------------------------------------------------------------------


class WsMessage(msgspec.Struct, kw_only=True, tag_field="type", gc=False):
    """Base of every message the WebSocket sends; ``type`` is the tag."""


class OrderbookSnapshotMsg(msgspec.Struct, kw_only=True, gc=False):
    market_ticker: str
    market_id: str = ""
    yes_dollars_fp: list[Level] | None = None
    """Absent (None) when the side has no bids."""
    no_dollars_fp: list[Level] | None = None


class OrderbookSnapshot(WsMessage, tag="orderbook_snapshot"):
    sid: int
    seq: int
    msg: OrderbookSnapshotMsg


class OrderbookDeltaMsg(msgspec.Struct, kw_only=True, gc=False):
    market_ticker: str
    price_dollars: str
    delta_fp: str
    side: LegSide
    market_id: str = ""
    ts_ms: int | None = None
    client_order_id: str | None = None
    subaccount: int | None = None


class OrderbookDelta(WsMessage, tag="orderbook_delta"):
    sid: int
    seq: int
    msg: OrderbookDeltaMsg


class TickerMsg(msgspec.Struct, kw_only=True, gc=False):
    market_ticker: str
    market_id: str = ""
    price_dollars: str | None = None
    yes_bid_dollars: str | None = None
    yes_ask_dollars: str | None = None
    yes_bid_size_fp: str | None = None
    yes_ask_size_fp: str | None = None
    last_trade_size_fp: str | None = None
    volume_fp: str | None = None
    open_interest_fp: str | None = None
    ts_ms: int | None = None


class Ticker(WsMessage, tag="ticker"):
    sid: int
    msg: TickerMsg
    seq: int | None = None


class TradeMsg(msgspec.Struct, kw_only=True, gc=False):
    trade_id: str
    market_ticker: str
    yes_price_dollars: str
    count_fp: str
    no_price_dollars: str | None = None
    taker_side: str | None = None
    taker_outcome_side: str | None = None
    taker_book_side: str | None = None
    is_block_trade: bool | None = None
    ts_ms: int | None = None


class Trade(WsMessage, tag="trade"):
    sid: int
    msg: TradeMsg
    seq: int | None = None


class FillMsg(msgspec.Struct, kw_only=True, gc=False):
    trade_id: str
    order_id: str
    market_ticker: str
    is_taker: bool
    yes_price_dollars: str
    count_fp: str
    side: str = ""
    action: str = ""
    outcome_side: str = ""
    book_side: str = ""
    purchased_side: str = ""
    fee_cost: str | None = None
    post_position_fp: str | None = None
    client_order_id: str | None = None
    exchange_index: int | None = None
    ts_ms: int | None = None


class FillMessage(WsMessage, tag="fill"):
    sid: int
    msg: FillMsg
    seq: int | None = None


class UserOrderMsg(msgspec.Struct, kw_only=True, gc=False):
    order_id: str
    ticker: str
    status: str
    yes_price_dollars: str
    fill_count_fp: str
    remaining_count_fp: str
    user_id: str = ""
    client_order_id: str = ""
    side: str = ""
    outcome_side: str = ""
    book_side: str = ""
    initial_count_fp: str | None = None
    taker_fill_cost_dollars: str | None = None
    maker_fill_cost_dollars: str | None = None
    taker_fees_dollars: str | None = None
    maker_fees_dollars: str | None = None
    self_trade_prevention_type: str | None = None
    created_ts_ms: int | None = None
    last_updated_ts_ms: int | None = None
    expiration_ts_ms: int | None = None


class UserOrder(WsMessage, tag="user_order"):
    sid: int
    msg: UserOrderMsg
    seq: int | None = None


class MarketLifecycleMsg(msgspec.Struct, kw_only=True, gc=False):
    event_type: str
    market_ticker: str
    open_ts: int | None = None
    close_ts: int | None = None
    result: str | None = None
    determination_ts: int | None = None
    settled_ts: int | None = None
    is_deactivated: bool | None = None
    price_level_structure: str | None = None
    price_ranges: list[PriceRange] | None = None
    exchange_index: int | None = None
    additional_metadata: dict[str, Any] | None = None


class MarketLifecycle(WsMessage, tag="market_lifecycle_v2"):
    sid: int
    msg: MarketLifecycleMsg
    seq: int | None = None


class SubscribedMsg(msgspec.Struct, kw_only=True, gc=False):
    channel: str
    sid: int


class Subscribed(WsMessage, tag="subscribed"):
    msg: SubscribedMsg
    id: int = 0


class SubscriptionInfo(msgspec.Struct, kw_only=True, gc=False):
    channel: str
    sid: int


class OkMsg(msgspec.Struct, kw_only=True, gc=False):
    market_tickers: list[str] | None = None


class Ok(WsMessage, tag="ok"):
    id: int = 0
    sid: int | None = None
    seq: int | None = None
    msg: list[SubscriptionInfo] | OkMsg | None = None


class Unsubscribed(WsMessage, tag="unsubscribed"):
    sid: int
    id: int = 0
    seq: int | None = None


class ErrorMsg(msgspec.Struct, kw_only=True, gc=False):
    code: int
    msg: str = ""
    market_ticker: str | None = None


class Error(WsMessage, tag="error"):
    msg: ErrorMsg
    id: int = 0


KnownWsMessage: TypeAlias = (
    OrderbookSnapshot
    | OrderbookDelta
    | Ticker
    | Trade
    | FillMessage
    | UserOrder
    | MarketLifecycle
    | Subscribed
    | Ok
    | Unsubscribed
    | Error
)
WS_TYPES: Final = frozenset(
    {
        "orderbook_snapshot",
        "orderbook_delta",
        "ticker",
        "trade",
        "fill",
        "user_order",
        "market_lifecycle_v2",
        "subscribed",
        "ok",
        "unsubscribed",
        "error",
    }
)


class UnknownMessage(msgspec.Struct, kw_only=True, gc=False):
    """A message of a type this client does not model (a new channel, say)."""

    type: str
    raw: bytes
    sid: int | None = None
    seq: int | None = None


class MalformedMessage(msgspec.Struct, kw_only=True, gc=False):
    """A message that is not JSON or does not fit its type's shape."""

    raw: bytes
    error: str
    type: str | None = None
    sid: int | None = None
    seq: int | None = None


class _Envelope(msgspec.Struct, kw_only=True, gc=False):
    type: str = ""
    sid: int | None = None
    seq: int | None = None


DecodedWs: TypeAlias = KnownWsMessage | UnknownMessage | MalformedMessage

_ws_decoder: Final = msgspec.json.Decoder(KnownWsMessage)
_envelope_decoder: Final = msgspec.json.Decoder(_Envelope)


def decode_ws(data: bytes | str) -> DecodedWs:
    """Decode one WebSocket text frame; never raises."""
    try:
        message: KnownWsMessage = _ws_decoder.decode(data)
    except msgspec.DecodeError as exc:
        return _undecodable(data.encode() if isinstance(data, str) else data, exc)
    return message


def _undecodable(raw: bytes, exc: msgspec.DecodeError) -> UnknownMessage | MalformedMessage:
    try:
        envelope = _envelope_decoder.decode(raw)
    except msgspec.DecodeError:
        return MalformedMessage(raw=raw, error=str(exc))
    if envelope.type and envelope.type not in WS_TYPES:
        return UnknownMessage(type=envelope.type, raw=raw, sid=envelope.sid, seq=envelope.seq)
    return MalformedMessage(
        raw=raw, error=str(exc), type=envelope.type or None, sid=envelope.sid, seq=envelope.seq
    )
