"""The JSON shapes Kalshi sends, built from the engine's integer state.

Prices go out as ``*_dollars`` strings (four decimals, six where a sub-cent
amount needs them) and counts as ``*_fp`` strings with two decimals.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.simulator.accounts import Account, Position, Settlement
from services.simulator.book import OrderBook
from services.simulator.model import (
    BookSide,
    Event,
    Fill,
    Market,
    MarketStatus,
    Order,
    Series,
    Trade,
)
from shared.money import (
    MICROS_PER_CENT,
    ONE_DOLLAR,
    Count,
    Micros,
    format_count,
    format_dollars,
)

JSON = dict[str, Any]


def dollars(value: Micros) -> str:
    """Kalshi's ``*_dollars``: four decimals, six when the amount has sub-0.0001 parts."""
    return format_dollars(value, 4 if value % 100 == 0 else 6)


def count(value: Count) -> str:
    return format_count(value)


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def iso_required(ms: int) -> str:
    return iso(ms) or ""


def levels(pairs: list[tuple[Micros, Count]]) -> list[list[str]]:
    return [[dollars(price), count(size)] for price, size in pairs]


# --- market data ----------------------------------------------------------------------


def top_of_book(book: OrderBook) -> JSON:
    best_yes, best_no = book.yes.best(), book.no.best()
    return {
        "yes_bid_dollars": dollars(best_yes or 0),
        "yes_bid_size_fp": count(book.yes.size_at(best_yes) if best_yes else 0),
        "yes_ask_dollars": dollars(ONE_DOLLAR - best_no if best_no else ONE_DOLLAR),
        "yes_ask_size_fp": count(book.no.size_at(best_no) if best_no else 0),
        "no_bid_dollars": dollars(best_no or 0),
        "no_ask_dollars": dollars(ONE_DOLLAR - best_yes if best_yes else ONE_DOLLAR),
    }


def market_json(market: Market, book: OrderBook) -> JSON:
    out: JSON = {
        "ticker": market.ticker,
        "event_ticker": market.event_ticker,
        "market_type": "binary",
        "title": market.title,
        "yes_sub_title": market.yes_sub_title,
        "no_sub_title": market.no_sub_title,
        "created_time": iso(market.created_ms or market.open_ms),
        "updated_time": iso(market.created_ms or market.open_ms),
        "open_time": iso(market.open_ms),
        "close_time": iso(market.close_ms),
        "expected_expiration_time": iso(market.expected_expiration_ms),
        "latest_expiration_time": iso(market.expected_expiration_ms + 7 * 86_400_000),
        "settlement_timer_seconds": 3600,
        "status": market.status.value,
        **top_of_book(book),
        "last_price_dollars": dollars(market.last_price),
        "previous_yes_bid_dollars": dollars(market.previous_yes_bid),
        "previous_yes_ask_dollars": dollars(market.previous_yes_ask),
        "previous_price_dollars": dollars(market.previous_price),
        "volume_fp": count(market.volume),
        "volume_24h_fp": count(market.volume),
        "liquidity_dollars": "0.0000",
        "open_interest_fp": count(market.open_interest),
        "notional_value_dollars": "1.0000",
        "result": market.result,
        "can_close_early": True,
        "fractional_trading_enabled": market.fractional,
        "expiration_value": "",
        "rules_primary": market.rules_primary,
        "rules_secondary": "",
        "price_level_structure": market.price_level_structure,
        "price_ranges": [
            {"start": dollars(r.start), "end": dollars(r.end), "step": dollars(r.step)}
            for r in market.price_ranges
        ],
    }
    if market.strike_type:
        out["strike_type"] = market.strike_type
    if market.floor_strike is not None:
        out["floor_strike"] = market.floor_strike
    if market.cap_strike is not None:
        out["cap_strike"] = market.cap_strike
    if market.status in (MarketStatus.DETERMINED, MarketStatus.FINALIZED):
        out["settlement_value_dollars"] = "1.0000" if market.result == "yes" else "0.0000"
        out["settlement_ts"] = iso(market.settled_ms)
    return out


def event_json(event: Event, markets: list[JSON] | None = None) -> JSON:
    out: JSON = {
        "event_ticker": event.event_ticker,
        "series_ticker": event.series_ticker,
        "title": event.title,
        "sub_title": event.sub_title,
        "collateral_return_type": "MECNET" if event.mutually_exclusive else "",
        "mutually_exclusive": event.mutually_exclusive,
        "available_on_brokers": False,
        "product_metadata": None,
    }
    if event.strike_date_ms is not None:
        out["strike_date"] = iso(event.strike_date_ms)
    if markets is not None:
        out["markets"] = markets
    return out


def series_json(series: Series, volume: Count = 0) -> JSON:
    return {
        "ticker": series.ticker,
        "frequency": series.frequency,
        "title": series.title,
        "category": series.category,
        "tags": series.tags,
        "settlement_sources": series.settlement_sources,
        "contract_url": "",
        "contract_terms_url": "",
        "fee_type": series.fee_type,
        "fee_multiplier": Decimal(series.fee_multiplier),
        "additional_prohibitions": [],
        "volume_fp": count(volume),
    }


def orderbook_json(book: OrderBook, depth: int = 0) -> JSON:
    return {
        "yes_dollars": levels(book.yes.depth(depth)),
        "no_dollars": levels(book.no.depth(depth)),
    }


def trade_json(trade: Trade) -> JSON:
    taker_outcome = "yes" if trade.taker_side is BookSide.BID else "no"
    return {
        "trade_id": trade.trade_id,
        "ticker": trade.ticker,
        "count_fp": count(trade.count),
        "yes_price_dollars": dollars(trade.yes_price),
        "no_price_dollars": dollars(ONE_DOLLAR - trade.yes_price),
        "taker_side": taker_outcome,
        "taker_outcome_side": taker_outcome,
        "taker_book_side": trade.taker_side.value,
        "created_time": iso(trade.ts_ms),
        "is_block_trade": False,
    }


# --- portfolio --------------------------------------------------------------------------


def order_json(order: Order, user_id: str) -> JSON:
    return {
        "order_id": order.order_id,
        "user_id": user_id,
        "client_order_id": order.client_order_id,
        "ticker": order.ticker,
        "side": order.side,
        "action": order.action,
        "outcome_side": order.book_side.leg,
        "book_side": order.book_side.value,
        "type": "limit",
        "status": order.status.value,
        "yes_price_dollars": dollars(order.yes_price),
        "no_price_dollars": dollars(ONE_DOLLAR - order.yes_price),
        "fill_count_fp": count(order.filled),
        "remaining_count_fp": count(order.remaining),
        "initial_count_fp": count(order.initial_count),
        "taker_fill_cost_dollars": dollars(order.taker_fill_cost),
        "maker_fill_cost_dollars": dollars(order.maker_fill_cost),
        "taker_fees_dollars": dollars(order.taker_fees),
        "maker_fees_dollars": dollars(order.maker_fees),
        "expiration_time": iso(order.expiration_ms),
        "created_time": iso(order.created_ms),
        "last_update_time": iso(order.updated_ms),
        "self_trade_prevention_type": order.stp.value,
        "order_group_id": None,
        "cancel_order_on_pause": False,
        "time_in_force": order.time_in_force.value,
        "post_only": order.post_only,
        "reduce_only": order.reduce_only,
    }


def average_fill_price(order: Order) -> Micros | None:
    """Mean YES price of the order's fills, to the micro-dollar."""
    if not order.filled:
        return None
    leg_cost = order.taker_fill_cost + order.maker_fill_cost
    leg_mean = leg_cost * 100 // order.filled
    return leg_mean if order.book_side is BookSide.BID else ONE_DOLLAR - leg_mean


def order_v2_json(order: Order, ts_ms: int) -> JSON:
    out: JSON = {
        "order_id": order.order_id,
        "client_order_id": order.client_order_id,
        "fill_count": count(order.filled),
        "remaining_count": count(order.remaining),
        "ts_ms": ts_ms,
    }
    mean = average_fill_price(order)
    if mean is not None:
        fee_per_contract = (order.taker_fees + order.maker_fees) * 100 // order.filled
        out["average_fill_price"] = format_dollars(mean, 6)
        out["average_fee_paid"] = format_dollars(fee_per_contract, 6)
    return out


def fill_json(fill: Fill) -> JSON:
    return {
        "fill_id": fill.trade_id,
        "trade_id": fill.trade_id,
        "order_id": fill.order_id,
        "ticker": fill.ticker,
        "market_ticker": fill.ticker,
        "side": fill.side,
        "action": fill.action,
        "outcome_side": fill.book_side.leg,
        "book_side": fill.book_side.value,
        "count_fp": count(fill.count),
        "yes_price_dollars": dollars(fill.yes_price),
        "no_price_dollars": dollars(ONE_DOLLAR - fill.yes_price),
        "is_taker": fill.is_taker,
        "created_time": iso(fill.ts_ms),
        "fee_cost": dollars(fill.fee),
        "ts": fill.ts_ms // 1000,
    }


def market_position_json(ticker: str, position: Position, resting: int) -> JSON:
    return {
        "ticker": ticker,
        "total_traded_dollars": dollars(position.total_traded),
        "position_fp": count(position.position),
        "market_exposure_dollars": dollars(position.cost),
        "realized_pnl_dollars": dollars(position.realized_pnl),
        "resting_orders_count": resting,
        "fees_paid_dollars": dollars(position.fees_paid),
        "last_updated_ts": iso(position.updated_ms),
    }


def event_position_json(event_ticker: str, positions: list[Position]) -> JSON:
    return {
        "event_ticker": event_ticker,
        "total_cost_dollars": dollars(sum(p.total_traded for p in positions)),
        "total_cost_shares_fp": count(sum(abs(p.position) for p in positions)),
        "event_exposure_dollars": dollars(sum(p.cost for p in positions)),
        "realized_pnl_dollars": dollars(sum(p.realized_pnl for p in positions)),
        "fees_paid_dollars": dollars(sum(p.fees_paid for p in positions)),
    }


def settlement_json(record: Settlement) -> JSON:
    return {
        "ticker": record.ticker,
        "event_ticker": record.event_ticker,
        "market_result": record.result,
        "yes_count_fp": count(record.yes_count),
        "yes_total_cost_dollars": dollars(record.yes_cost),
        "no_count_fp": count(record.no_count),
        "no_total_cost_dollars": dollars(record.no_cost),
        "revenue": record.revenue // MICROS_PER_CENT,
        "settled_time": iso(record.settled_ms),
        "fee_cost": dollars(record.fees),
        "value": 100 if record.result == "yes" else 0,
    }


def balance_json(account: Account, portfolio_value: Micros, now_ms: int) -> JSON:
    available = max(0, account.available)
    return {
        "balance": available // MICROS_PER_CENT,
        "balance_dollars": dollars(available),
        "portfolio_value": portfolio_value // MICROS_PER_CENT,
        "updated_ts": now_ms // 1000,
    }
