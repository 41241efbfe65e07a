"""Kalshi's REST API under ``/trade-api/v2``: thin handlers over the engine.

Handlers are ``async`` so they run on the event loop that owns the engine;
every engine call is followed by :meth:`SimState.commit`, which publishes its
effects on the WebSocket before the response leaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

import msgspec
from fastapi import APIRouter, Depends, Request, Response

from services.simulator import shapes
from services.simulator.engine import OrderError, OrderRequest
from services.simulator.model import (
    BookSide,
    MarketStatus,
    Order,
    SelfTradePrevention,
    TimeInForce,
)
from services.simulator.ratelimit import COSTS, DEFAULT_COST, Bucket
from services.simulator.state import SimState
from shared.kalshi.signing import AuthError
from shared.money import (
    COUNT_PER_CONTRACT,
    MICROS_PER_CENT,
    ONE_DOLLAR,
    Count,
    Micros,
    MoneyFormatError,
    parse_count,
    parse_dollars,
)

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)
PREFIX = "/trade-api/v2"
_encoder = msgspec.json.Encoder(decimal_format="number")
STATUS_FILTER = {
    "unopened": MarketStatus.INITIALIZED,
    "open": MarketStatus.ACTIVE,
    "paused": MarketStatus.INACTIVE,
    "closed": MarketStatus.CLOSED,
    "settled": MarketStatus.FINALIZED,
}


class KalshiError(Exception):
    """An error answered with Kalshi's body; ``body`` overrides the usual shape."""

    def __init__(
        self, status: int, code: str, message: str, body: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.body = body


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "details": ""}


def json_response(data: Any, status: int = 200) -> Response:
    return Response(_encoder.encode(data), status_code=status, media_type="application/json")


def sim(request: Request) -> SimState:
    state: SimState = request.app.state.sim
    return state


async def apply_faults(request: Request) -> None:
    """Injected latency, HTTP errors and rate-limit storms, each logged."""
    state = sim(request)
    faults = state.faults
    target = f"{request.method} {request.url.path}"
    if faults.config.latency_ms:
        faults.record("latency", target, f"{faults.config.latency_ms:g} ms")
        await asyncio.sleep(faults.config.latency_ms / 1000)
    if faults.storming():
        faults.record("rate_limit_storm", target)
        raise KalshiError(429, "too_many_requests", "", {"error": "too many requests"})
    status = faults.http_error()
    if status is not None:
        faults.record("http_error", target, str(status))
        raise KalshiError(status, "service_unavailable", "injected failure")


router = APIRouter(prefix=PREFIX, dependencies=[Depends(apply_faults)])


def authenticate(request: Request) -> str:
    try:
        return sim(request).auth.check(request.headers, request.method, request.url.path)
    except AuthError as exc:
        raise KalshiError(401, "authentication_error", str(exc)) from None


def limit(request: Request, user: str, bucket: Bucket, cost: int = DEFAULT_COST) -> None:
    if not sim(request).limiter.allow(user, bucket, cost):
        raise KalshiError(429, "too_many_requests", "", {"error": "too many requests"})


def public_read(request: Request) -> None:
    """Market data needs no auth; it is limited per key when signed, else per address."""
    user = request.headers.get("KALSHI-ACCESS-KEY") or (
        f"ip:{request.client.host}" if request.client else "ip:?"
    )
    limit(request, user, "read")


def private(request: Request, bucket: Bucket = "read", cost: int = DEFAULT_COST) -> str:
    user = authenticate(request)
    limit(request, user, bucket, cost)
    return user


def page(items: list[Any], request: Request, default: int, maximum: int) -> tuple[list[Any], str]:
    """Cursor pagination: the cursor is the offset of the next page."""
    params = request.query_params
    try:
        size = int(params.get("limit", default))
        start = int(params.get("cursor") or 0)
    except ValueError:
        raise KalshiError(400, "invalid_parameters", "bad limit or cursor") from None
    if not 1 <= size <= maximum or start < 0:
        raise KalshiError(400, "invalid_parameters", f"limit must be 1..{maximum}")
    end = start + size
    return items[start:end], (str(end) if end < len(items) else "")


def csv(request: Request, name: str) -> list[str]:
    raw = request.query_params.get(name, "")
    return [part for part in raw.split(",") if part]


# --- exchange and market data ---------------------------------------------------------------


@router.get("/exchange/status")
async def exchange_status(request: Request) -> Response:
    public_read(request)
    return json_response(
        {"exchange_active": True, "trading_active": True, "exchange_estimated_resume_time": None}
    )


@router.get("/account/limits")
async def account_limits(request: Request) -> Response:
    private(request)
    state = sim(request)
    return json_response(state.limiter.describe(state.settings.tier or "prestige"))


def _market_matches(request: Request, state: SimState, ticker: str) -> bool:
    market = state.exchange.markets[ticker]
    params = request.query_params
    if params.get("event_ticker") and market.event_ticker != params["event_ticker"]:
        return False
    if params.get("series_ticker") and market.series_ticker != params["series_ticker"]:
        return False
    status = params.get("status")
    if status and STATUS_FILTER.get(status) is not market.status:
        return False
    try:
        if "min_close_ts" in params and market.close_ms < int(params["min_close_ts"]) * 1000:
            return False
        if "max_close_ts" in params and market.close_ms > int(params["max_close_ts"]) * 1000:
            return False
    except ValueError:
        raise KalshiError(400, "invalid_parameters", "bad timestamp") from None
    return True


@router.get("/markets")
async def get_markets(request: Request) -> Response:
    public_read(request)
    state = sim(request)
    status = request.query_params.get("status")
    if status and status not in STATUS_FILTER:
        raise KalshiError(400, "invalid_parameters", f"unknown status {status}")
    wanted = csv(request, "tickers") or list(state.exchange.markets)
    tickers = [
        t for t in wanted if t in state.exchange.markets and _market_matches(request, state, t)
    ]
    chosen, cursor = page(tickers, request, 100, 1000)
    markets = [
        shapes.market_json(state.exchange.markets[t], state.exchange.book(t)) for t in chosen
    ]
    return json_response({"markets": markets, "cursor": cursor})


@router.get("/markets/trades")
async def get_trades(request: Request) -> Response:
    public_read(request)
    ticker = request.query_params.get("ticker")
    trades = [t for t in reversed(sim(request).exchange.trades) if not ticker or t.ticker == ticker]
    chosen, cursor = page(trades, request, 100, 1000)
    return json_response({"trades": [shapes.trade_json(t) for t in chosen], "cursor": cursor})


@router.get("/markets/orderbooks")
async def get_orderbooks(request: Request) -> Response:
    public_read(request)
    state = sim(request)
    tickers = csv(request, "tickers")
    if not tickers:
        raise KalshiError(400, "invalid_parameters", "tickers required")
    books = []
    for ticker in tickers:
        if ticker not in state.exchange.markets:
            raise KalshiError(404, "not_found", f"market {ticker} not found")
        books.append(
            {"ticker": ticker, "orderbook_fp": shapes.orderbook_json(state.exchange.book(ticker))}
        )
    return json_response({"orderbooks": books})


@router.get("/markets/{ticker}")
async def get_market(ticker: str, request: Request) -> Response:
    public_read(request)
    exchange = sim(request).exchange
    if ticker not in exchange.markets:
        raise KalshiError(404, "not_found", f"market {ticker} not found")
    return json_response(
        {"market": shapes.market_json(exchange.markets[ticker], exchange.book(ticker))}
    )


@router.get("/markets/{ticker}/orderbook")
async def get_orderbook(ticker: str, request: Request) -> Response:
    public_read(request)
    exchange = sim(request).exchange
    if ticker not in exchange.markets:
        raise KalshiError(404, "not_found", f"market {ticker} not found")
    try:
        depth = int(request.query_params.get("depth", 0))
    except ValueError:
        raise KalshiError(400, "invalid_parameters", "bad depth") from None
    if not 0 <= depth <= 100:
        raise KalshiError(400, "invalid_parameters", "depth must be 0..100")
    return json_response({"orderbook_fp": shapes.orderbook_json(exchange.book(ticker), depth)})


def _event_markets(state: SimState, event_ticker: str) -> list[dict[str, Any]]:
    exchange = state.exchange
    return [
        shapes.market_json(exchange.markets[t], exchange.book(t))
        for t in exchange.events[event_ticker].markets
    ]


@router.get("/events")
async def get_events(request: Request) -> Response:
    public_read(request)
    state = sim(request)
    params = request.query_params
    status = params.get("status")
    events = []
    for event in state.exchange.events.values():
        if params.get("series_ticker") and event.series_ticker != params["series_ticker"]:
            continue
        if status and not any(
            STATUS_FILTER.get(status) is state.exchange.markets[t].status for t in event.markets
        ):
            continue
        events.append(event)
    chosen, cursor = page(events, request, 200, 200)
    nested = params.get("with_nested_markets") == "true"
    body = [
        shapes.event_json(e, _event_markets(state, e.event_ticker) if nested else None)
        for e in chosen
    ]
    return json_response({"events": body, "cursor": cursor})


@router.get("/events/{event_ticker}")
async def get_event(event_ticker: str, request: Request) -> Response:
    public_read(request)
    state = sim(request)
    event = state.exchange.events.get(event_ticker)
    if event is None:
        raise KalshiError(404, "not_found", f"event {event_ticker} not found")
    markets = _event_markets(state, event_ticker)
    nested = request.query_params.get("with_nested_markets") == "true"
    return json_response(
        {"event": shapes.event_json(event, markets if nested else None), "markets": markets}
    )


def _series_volume(state: SimState, series_ticker: str) -> Count:
    return sum(
        m.volume for m in state.exchange.markets.values() if m.series_ticker == series_ticker
    )


@router.get("/series")
async def get_series_list(request: Request) -> Response:
    public_read(request)
    state = sim(request)
    category = request.query_params.get("category")
    series = [
        shapes.series_json(s, _series_volume(state, s.ticker))
        for s in state.exchange.series.values()
        if not category or s.category == category
    ]
    return json_response({"series": series})


@router.get("/series/{series_ticker}")
async def get_series(series_ticker: str, request: Request) -> Response:
    public_read(request)
    state = sim(request)
    series = state.exchange.series.get(series_ticker)
    if series is None:
        raise KalshiError(404, "not_found", f"series {series_ticker} not found")
    return json_response(
        {"series": shapes.series_json(series, _series_volume(state, series_ticker))}
    )


# --- portfolio ------------------------------------------------------------------------------


@router.get("/portfolio/balance")
async def get_balance(request: Request) -> Response:
    user = private(request)
    state = sim(request)
    account = state.exchange.ledger[user]
    value = 0
    for ticker, position in account.positions.items():
        last = state.exchange.markets[ticker].last_price
        mark = last if position.position > 0 else ONE_DOLLAR - last
        value += abs(position.position) * mark // COUNT_PER_CONTRACT
    return json_response(shapes.balance_json(account, value, state.clock_ms()))


@router.get("/portfolio/positions")
async def get_positions(request: Request) -> Response:
    user = private(request)
    state = sim(request)
    account = state.exchange.ledger[user]
    params = request.query_params
    by_event: dict[str, list[Any]] = {}
    rows = []
    for ticker, position in account.positions.items():
        market = state.exchange.markets[ticker]
        if params.get("ticker") and ticker != params["ticker"]:
            continue
        if params.get("event_ticker") and market.event_ticker != params["event_ticker"]:
            continue
        if params.get("count_filter") == "position" and position.position == 0:
            continue
        resting = sum(
            1 for o in account.orders.values() if o.ticker == ticker and o.status.value == "resting"
        )
        rows.append(shapes.market_position_json(ticker, position, resting))
        by_event.setdefault(market.event_ticker, []).append(position)
    chosen, cursor = page(rows, request, 100, 1000)
    events = [shapes.event_position_json(e, ps) for e, ps in by_event.items()]
    return json_response({"market_positions": chosen, "event_positions": events, "cursor": cursor})


def _ts_filter(request: Request, ms: int) -> bool:
    params = request.query_params
    if "min_ts" in params and ms < int(params["min_ts"]) * 1000:
        return False
    return not ("max_ts" in params and ms > int(params["max_ts"]) * 1000)


@router.get("/portfolio/fills")
async def get_fills(request: Request) -> Response:
    user = private(request)
    params = request.query_params
    fills = [
        f
        for f in reversed(sim(request).exchange.ledger[user].fills)
        if (not params.get("ticker") or f.ticker == params["ticker"])
        and (not params.get("order_id") or f.order_id == params["order_id"])
        and _ts_filter(request, f.ts_ms)
    ]
    chosen, cursor = page(fills, request, 100, 1000)
    return json_response({"fills": [shapes.fill_json(f) for f in chosen], "cursor": cursor})


@router.get("/portfolio/settlements")
async def get_settlements(request: Request) -> Response:
    user = private(request)
    records = list(reversed(sim(request).exchange.ledger[user].settlements))
    chosen, cursor = page(records, request, 100, 1000)
    body = [shapes.settlement_json(r) for r in chosen]
    return json_response({"settlements": body, "cursor": cursor})


@router.get("/portfolio/orders")
async def get_orders(request: Request) -> Response:
    user = private(request)
    state = sim(request)
    account = state.exchange.ledger[user]
    params = request.query_params
    events = set(csv(request, "event_ticker"))
    orders = [
        o
        for o in reversed(account.orders.values())
        if (not params.get("ticker") or o.ticker == params["ticker"])
        and (not events or state.exchange.markets[o.ticker].event_ticker in events)
        and (not params.get("status") or o.status.value == params["status"])
        and _ts_filter(request, o.created_ms)
    ]
    chosen, cursor = page(orders, request, 100, 1000)
    body = [shapes.order_json(o, account.user_id) for o in chosen]
    return json_response({"orders": body, "cursor": cursor})


@router.get("/portfolio/orders/queue_positions")
async def get_queue_positions(request: Request) -> Response:
    user = private(request)
    state = sim(request)
    tickers = set(csv(request, "market_tickers"))
    event = request.query_params.get("event_ticker")
    if not tickers and not event:
        raise KalshiError(400, "invalid_parameters", "market_tickers or event_ticker required")
    rows = []
    for order in state.exchange.ledger[user].orders.values():
        market = state.exchange.markets[order.ticker]
        if order.status.value != "resting":
            continue
        if (tickers and order.ticker not in tickers) or (event and market.event_ticker != event):
            continue
        position = state.exchange.queue_position(user, order.order_id)
        rows.append(
            {
                "order_id": order.order_id,
                "market_ticker": order.ticker,
                "queue_position_fp": shapes.count(position),
            }
        )
    return json_response({"queue_positions": rows})


@router.get("/portfolio/orders/{order_id}")
async def get_order(order_id: str, request: Request) -> Response:
    user = private(request, "read", COSTS["get_order"])
    account = sim(request).exchange.ledger[user]
    order = account.orders.get(order_id)
    if order is None:
        raise KalshiError(404, "not_found", "order not found")
    return json_response({"order": shapes.order_json(order, account.user_id)})


@router.get("/portfolio/orders/{order_id}/queue_position")
async def get_queue_position(order_id: str, request: Request) -> Response:
    user = private(request)
    position = _engine(lambda: sim(request).exchange.queue_position(user, order_id))
    return json_response({"queue_position_fp": shapes.count(position)})


# --- order entry helpers ------------------------------------------------------------------


def _engine(call: Callable[[], T]) -> T:
    try:
        return call()
    except OrderError as exc:
        raise KalshiError(exc.status, exc.code, exc.message) from None


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = msgspec.json.decode(await request.body())
    except msgspec.DecodeError:
        raise KalshiError(400, "invalid_parameters", "body is not JSON") from None
    if not isinstance(body, dict):
        raise KalshiError(400, "invalid_parameters", "body must be a JSON object")
    return body


def _money(value: Any, name: str) -> Micros:
    if not isinstance(value, str):
        raise KalshiError(400, "invalid_parameters", f"{name} must be a dollar string")
    try:
        return parse_dollars(value)
    except MoneyFormatError as exc:
        raise KalshiError(400, "invalid_parameters", f"{name}: {exc}") from None


def _count(value: Any, name: str) -> Count:
    if isinstance(value, int) and not isinstance(value, bool):
        return value * COUNT_PER_CONTRACT
    if not isinstance(value, str):
        raise KalshiError(400, "invalid_parameters", f"{name} must be a count string")
    try:
        return parse_count(value)
    except MoneyFormatError as exc:
        raise KalshiError(400, "invalid_parameters", f"{name}: {exc}") from None


def _enum(kind: type[E], value: Any, name: str) -> E:
    try:
        return kind(value)
    except ValueError:
        raise KalshiError(400, "invalid_parameters", f"bad {name} {value!r}") from None


def _reject_if_faulted(request: Request, what: str) -> None:
    state = sim(request)
    if state.faults.config.reject_orders:
        state.faults.record("reject_order", f"{request.method} {request.url.path}", what)
        raise KalshiError(400, "order_rejected", "order rejected (injected fault)")


def parse_v2_order(body: dict[str, Any]) -> OrderRequest:
    for required in ("ticker", "side", "count", "price", "time_in_force"):
        if required not in body:
            raise KalshiError(400, "invalid_parameters", f"{required} is required")
    if "self_trade_prevention_type" not in body:
        raise KalshiError(400, "invalid_parameters", "self_trade_prevention_type is required")
    expiration = body.get("expiration_time")
    return OrderRequest(
        ticker=str(body["ticker"]),
        book_side=_enum(BookSide, body["side"], "side"),
        yes_price=_money(body["price"], "price"),
        count=_count(body["count"], "count"),
        time_in_force=_enum(TimeInForce, body["time_in_force"], "time_in_force"),
        stp=_enum(SelfTradePrevention, body["self_trade_prevention_type"], "stp"),
        client_order_id=str(body.get("client_order_id") or ""),
        post_only=bool(body.get("post_only", False)),
        reduce_only=bool(body.get("reduce_only", False)),
        expiration_ms=int(expiration) * 1000 if expiration else None,
    )


def _legacy_yes_price(body: dict[str, Any]) -> Micros:
    given = [
        name
        for name in ("yes_price", "no_price", "yes_price_dollars", "no_price_dollars")
        if body.get(name) is not None
    ]
    if len(given) != 1:
        raise KalshiError(400, "invalid_parameters", "give exactly one price field")
    name = given[0]
    value = body[name]
    if name.endswith("_dollars"):
        price = _money(value, name)
    elif isinstance(value, int) and 1 <= value <= 99:
        price = value * MICROS_PER_CENT
    else:
        raise KalshiError(400, "invalid_parameters", f"{name} must be 1..99 cents")
    return price if name.startswith("yes") else ONE_DOLLAR - price


def _legacy_count(body: dict[str, Any], int_name: str, fp_name: str) -> Count | None:
    whole, fp = body.get(int_name), body.get(fp_name)
    counted = _count(whole, int_name) if whole is not None else None
    fixed = _count(fp, fp_name) if fp is not None else None
    if counted is not None and fixed is not None and counted != fixed:
        raise KalshiError(400, "invalid_parameters", f"{int_name} and {fp_name} disagree")
    return counted if counted is not None else fixed


def legacy_direction(side: str, action: str) -> BookSide:
    """Legacy (side, action) to V2 book side: buy yes / sell no bid; buy no / sell yes ask."""
    return BookSide.BID if (side == "yes") == (action == "buy") else BookSide.ASK


def parse_legacy_order(body: dict[str, Any]) -> OrderRequest:
    side, action = body.get("side"), body.get("action")
    if side not in ("yes", "no") or action not in ("buy", "sell") or not body.get("ticker"):
        raise KalshiError(400, "invalid_parameters", "ticker, side and action are required")
    count = _legacy_count(body, "count", "count_fp")
    if count is None:
        raise KalshiError(400, "invalid_parameters", "count or count_fp is required")
    tif = body.get("time_in_force") or (
        "fill_or_kill" if body.get("buy_max_cost") else "good_till_canceled"
    )
    expiration = body.get("expiration_ts")
    return OrderRequest(
        ticker=str(body["ticker"]),
        book_side=legacy_direction(side, action),
        yes_price=_legacy_yes_price(body),
        count=count,
        time_in_force=_enum(TimeInForce, tif, "time_in_force"),
        stp=_enum(
            SelfTradePrevention,
            body.get("self_trade_prevention_type") or "taker_at_cross",
            "self_trade_prevention_type",
        ),
        client_order_id=str(body.get("client_order_id") or ""),
        post_only=bool(body.get("post_only", False)),
        reduce_only=bool(body.get("reduce_only", False)),
        expiration_ms=int(expiration) * 1000 if expiration else None,
        legacy_side=side,
        legacy_action=action,
    )


def _user_id(request: Request, user: str) -> str:
    return sim(request).exchange.ledger[user].user_id


def _order_json(request: Request, user: str, order: Order) -> dict[str, Any]:
    return shapes.order_json(order, _user_id(request, user))


def _place(request: Request, user: str, parsed: OrderRequest) -> Order:
    state = sim(request)
    try:
        return _engine(lambda: state.exchange.place(user, parsed))
    finally:
        state.commit()


# --- V2 order entry -------------------------------------------------------------------------


@router.post("/portfolio/events/orders", status_code=201)
async def create_order_v2(request: Request) -> Response:
    user = private(request, "write", COSTS["v2_create"])
    body = await _body(request)
    _reject_if_faulted(request, str(body.get("ticker")))
    order = _place(request, user, parse_v2_order(body))
    return json_response(shapes.order_v2_json(order, sim(request).clock_ms()), 201)


@router.post("/portfolio/events/orders/batched", status_code=201)
async def batch_create_v2(request: Request) -> Response:
    authenticate(request)
    body = await _body(request)
    items = body.get("orders")
    if not isinstance(items, list) or not items:
        raise KalshiError(400, "invalid_parameters", "orders is required")
    user = private(request, "write", COSTS["v2_batch_create_each"] * len(items))
    _reject_if_faulted(request, "batch")
    results = []
    for item in items:
        try:
            if not isinstance(item, dict):
                raise KalshiError(400, "invalid_parameters", "each order must be an object")
            order = _place(request, user, parse_v2_order(item))
            results.append(shapes.order_v2_json(order, sim(request).clock_ms()))
        except KalshiError as exc:
            client_id = item.get("client_order_id") if isinstance(item, dict) else None
            results.append(
                {"client_order_id": client_id, "error": error_body(exc.code, exc.message)}
            )
    return json_response({"orders": results}, 201)


@router.delete("/portfolio/events/orders/batched")
async def batch_cancel_v2(request: Request) -> Response:
    authenticate(request)
    body = await _body(request)
    items = body.get("orders")
    if not isinstance(items, list) or not items:
        raise KalshiError(400, "invalid_parameters", "orders is required")
    user = private(request, "write", COSTS["v2_batch_cancel_each"] * len(items))
    results = []
    for item in items:
        order_id = str(item.get("order_id")) if isinstance(item, dict) else ""
        try:
            order, reduced = _cancel(request, user, order_id)
            results.append(_cancel_v2_json(request, order, reduced))
        except KalshiError as exc:
            results.append({"order_id": order_id, "error": error_body(exc.code, exc.message)})
    return json_response({"orders": results})


def _cancel(request: Request, user: str, order_id: str) -> tuple[Order, Count]:
    state = sim(request)
    try:
        return _engine(lambda: state.exchange.cancel(user, order_id))
    finally:
        state.commit()


def _cancel_v2_json(request: Request, order: Order, reduced: Count) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "client_order_id": order.client_order_id,
        "reduced_by": shapes.count(reduced),
        "ts_ms": sim(request).clock_ms(),
    }


@router.delete("/portfolio/events/orders/{order_id}")
async def cancel_order_v2(order_id: str, request: Request) -> Response:
    user = private(request, "write", COSTS["v2_cancel"])
    order, reduced = _cancel(request, user, order_id)
    return json_response(_cancel_v2_json(request, order, reduced))


def _amend(
    request: Request, user: str, order_id: str, *, price: Micros, count: Count, new_id: str
) -> tuple[Order, Order]:
    state = sim(request)
    try:
        return _engine(lambda: state.exchange.amend(user, order_id, price, count, new_id))
    finally:
        state.commit()


def _check_order_matches(request: Request, user: str, order_id: str, body: dict[str, Any]) -> None:
    order = sim(request).exchange.ledger[user].orders.get(order_id)
    if order is None:
        raise KalshiError(404, "not_found", "order not found")
    if body.get("ticker") not in (None, order.ticker):
        raise KalshiError(400, "order_ticker_mismatch", "ticker does not match the order")
    client_id = body.get("client_order_id")
    if client_id and client_id != order.client_order_id:
        raise KalshiError(
            400, "order_id_and_client_order_id_mismatch", "client_order_id does not match"
        )


@router.post("/portfolio/events/orders/{order_id}/amend")
async def amend_order_v2(order_id: str, request: Request) -> Response:
    user = private(request, "write", COSTS["v2_create"])
    body = await _body(request)
    _check_order_matches(request, user, order_id, body)
    order = sim(request).exchange.ledger[user].orders[order_id]
    if body.get("side") not in (None, order.book_side.value):
        raise KalshiError(400, "order_side_mismatch", "side does not match the order")
    price = _money(body["price"], "price") if "price" in body else order.yes_price
    count = _count(body["count"], "count") if "count" in body else order.filled + order.remaining
    new_id = str(body.get("updated_client_order_id") or "")
    _, after = _amend(request, user, order_id, price=price, count=count, new_id=new_id)
    return json_response(shapes.order_v2_json(after, sim(request).clock_ms()))


def _decrease(request: Request, user: str, order_id: str, body: dict[str, Any]) -> Order:
    reduce_by = _legacy_count(body, "reduce_by", "reduce_by_fp")
    reduce_to = _legacy_count(body, "reduce_to", "reduce_to_fp")
    state = sim(request)
    try:
        return _engine(lambda: state.exchange.decrease(user, order_id, reduce_by, reduce_to))
    finally:
        state.commit()


@router.post("/portfolio/events/orders/{order_id}/decrease")
async def decrease_order_v2(order_id: str, request: Request) -> Response:
    user = private(request, "write", COSTS["v2_cancel"])
    body = await _body(request)
    order = _decrease(request, user, order_id, body)
    return json_response(
        {
            "order_id": order.order_id,
            "client_order_id": order.client_order_id,
            "remaining_count": shapes.count(order.remaining),
            "ts_ms": sim(request).clock_ms(),
        }
    )


# --- legacy order entry ---------------------------------------------------------------------


@router.post("/portfolio/orders", status_code=201)
async def create_order_legacy(request: Request) -> Response:
    user = private(request, "write", COSTS["legacy_create"])
    body = await _body(request)
    _reject_if_faulted(request, str(body.get("ticker")))
    order = _place(request, user, parse_legacy_order(body))
    return json_response({"order": _order_json(request, user, order)}, 201)


@router.post("/portfolio/orders/batched", status_code=201)
async def batch_create_legacy(request: Request) -> Response:
    authenticate(request)
    body = await _body(request)
    items = body.get("orders")
    if not isinstance(items, list) or not items:
        raise KalshiError(400, "invalid_parameters", "orders is required")
    user = private(request, "write", COSTS["legacy_batch_create_each"] * len(items))
    _reject_if_faulted(request, "batch")
    results: list[dict[str, Any]] = []
    for item in items:
        client_id = item.get("client_order_id") if isinstance(item, dict) else None
        try:
            if not isinstance(item, dict):
                raise KalshiError(400, "invalid_parameters", "each order must be an object")
            order = _place(request, user, parse_legacy_order(item))
            results.append(
                {"client_order_id": client_id, "order": _order_json(request, user, order)}
            )
        except KalshiError as exc:
            results.append(
                {
                    "client_order_id": client_id,
                    "order": None,
                    "error": error_body(exc.code, exc.message),
                }
            )
    return json_response({"orders": results}, 201)


@router.delete("/portfolio/orders/batched")
async def batch_cancel_legacy(request: Request) -> Response:
    authenticate(request)
    body = await _body(request)
    items = body.get("orders") or [{"order_id": i} for i in body.get("ids") or []]
    if not isinstance(items, list) or not items:
        raise KalshiError(400, "invalid_parameters", "orders is required")
    user = private(request, "write", COSTS["v2_batch_cancel_each"] * len(items))
    results: list[dict[str, Any]] = []
    for item in items:
        order_id = str(item.get("order_id")) if isinstance(item, dict) else ""
        try:
            order, reduced = _cancel(request, user, order_id)
            results.append(
                {
                    "order_id": order_id,
                    "order": _order_json(request, user, order),
                    "reduced_by_fp": shapes.count(reduced),
                }
            )
        except KalshiError as exc:
            results.append(
                {
                    "order_id": order_id,
                    "reduced_by_fp": "0.00",
                    "error": error_body(exc.code, exc.message),
                }
            )
    return json_response({"orders": results})


@router.delete("/portfolio/orders/{order_id}")
async def cancel_order_legacy(order_id: str, request: Request) -> Response:
    user = private(request, "write", COSTS["legacy_cancel"])
    order, reduced = _cancel(request, user, order_id)
    return json_response(
        {"order": _order_json(request, user, order), "reduced_by_fp": shapes.count(reduced)}
    )


@router.post("/portfolio/orders/{order_id}/amend")
async def amend_order_legacy(order_id: str, request: Request) -> Response:
    user = private(request, "write", COSTS["legacy_amend"])
    body = await _body(request)
    _check_order_matches(request, user, order_id, body)
    order = sim(request).exchange.ledger[user].orders[order_id]
    if body.get("side") not in (None, order.side) or body.get("action") not in (None, order.action):
        raise KalshiError(400, "order_side_mismatch", "side or action does not match the order")
    price = _legacy_yes_price(body)
    count = _legacy_count(body, "count", "count_fp") or order.filled + order.remaining
    new_id = str(body.get("updated_client_order_id") or "")
    before, after = _amend(request, user, order_id, price=price, count=count, new_id=new_id)
    return json_response(
        {
            "old_order": _order_json(request, user, before),
            "order": _order_json(request, user, after),
        }
    )


@router.post("/portfolio/orders/{order_id}/decrease")
async def decrease_order_legacy(order_id: str, request: Request) -> Response:
    user = private(request, "write", COSTS["legacy_decrease"])
    body = await _body(request)
    order = _decrease(request, user, order_id, body)
    return json_response({"order": _order_json(request, user, order)})
