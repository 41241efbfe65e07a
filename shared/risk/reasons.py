"""Why risk said no: a fixed set of codes, apart from the exchange's own rejections.

The value of each code is what goes into ``RiskDecision.reason`` on the bus;
dashboards and audits group by it, so codes are only ever added, never renamed.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    APPROVED = "approved"
    MALFORMED = "malformed"
    """No legs, a count <= 0, a price outside $0-$1 or off the $0.0001 tick."""
    DUPLICATE = "duplicate"
    EXPIRED = "expired"
    HALTED = "halted"
    REDUCING_ONLY = "reducing_only"
    MARKET_HALTED = "market_halted"
    UNKNOWN_MARKET = "unknown_market"
    MARKET_CLOSED = "market_closed"
    BOOK_NOT_VALID = "book_not_valid"
    FEED_STALE = "feed_stale"
    NO_MARK = "no_mark"
    NO_NAV = "no_nav"
    """NAV <= 0."""
    KELLY_NOT_POSITIVE = "kelly_not_positive"
    EDGE_NOT_POSITIVE = "edge_not_positive"
    PRICE_SANITY = "price_sanity"
    ORDER_NOTIONAL = "order_notional"
    OPEN_ORDERS = "open_orders"
    MARKET_POSITION = "market_position"
    EXCHANGE_POSITION_LIMIT = "exchange_position_limit"
    EVENT_EXPOSURE = "event_exposure"
    SERIES_EXPOSURE = "series_exposure"
    CORRELATED_EXPOSURE = "correlated_exposure"
    SELF_TRADE = "self_trade"
    SUBMIT_RATE = "submit_rate"
