"""Kalshi Trade API v2 over REST: signed, rate limited, retried, typed.

Every request passes the local token bucket first (:mod:`.ratelimit`), is
signed when a signer is given (a fresh signature per attempt), and is retried
with exponential backoff and full jitter on 429, 5xx, timeouts and
connection errors, honouring Retry-After when the server sends one.

Order creation is not idempotent: when a create (single or batch) times out
after it was sent, loses its connection mid-flight or gets a 5xx, the client
does not retry but raises :class:`OrderStateUnknown`; the caller resolves it
with :meth:`KalshiRest.find_order_by_client_id`. A create refused with 429, or
one that never reached the server (connect error), is retried as usual.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import httpx
import msgspec

from shared.config import KalshiSettings
from shared.kalshi import models as m
from shared.kalshi.errors import (
    KalshiApiError,
    KalshiProtocolError,
    KalshiTransportError,
    OrderStateUnknown,
    SendAborted,
    api_error,
)
from shared.kalshi.ratelimit import RateLimiter, cost_of
from shared.kalshi.signing import Signer
from shared.money import Count, format_count

log = logging.getLogger(__name__)

T = TypeVar("T")
P = TypeVar("P")
Params = Mapping[str, str | int | bool | None]

V2_ORDERS: Final = "/portfolio/events/orders"
_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_encoder: Final = msgspec.json.Encoder()


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: sleep uniform(0, min(cap, base x 2^n))."""

    max_attempts: int = 5
    base_delay_s: float = 0.25
    max_delay_s: float = 10.0
    max_retry_after_s: float = 60.0

    def backoff(self, retry: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**retry))


@dataclass
class RestMetrics:
    """Counters for Prometheus; rate-limit waits live on the limiter (``waits``, ``waited_s``)."""

    requests: int = 0
    retries: int = 0
    transport_errors: int = 0
    order_state_unknown: int = 0
    errors_by_status: Counter[int] = field(default_factory=Counter)


def retry_after_s(response: httpx.Response) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), if the server sent one."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class _Decoders:
    """One msgspec decoder per response type, built on first use."""

    def __init__(self) -> None:
        self._by_type: dict[type[Any], msgspec.json.Decoder[Any]] = {}

    def decode(self, kind: type[T], data: bytes) -> T:
        decoder = self._by_type.get(kind)
        if decoder is None:
            decoder = self._by_type[kind] = msgspec.json.Decoder(kind)
        try:
            result: T = decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise KalshiProtocolError(f"unexpected {kind.__name__} body: {exc}") from None
        return result


def _params(values: Params) -> dict[str, str | int]:
    """Drop unset filters; booleans the way Kalshi writes them."""
    out: dict[str, str | int] = {}
    for key, value in values.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return out


class KalshiRest:
    """Async client of one Kalshi REST base URL (production, demo or the simulator)."""

    def __init__(
        self,
        base_url: str,
        *,
        signer: Signer | None = None,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.signer = signer
        self.limiter = limiter
        self.retry = retry or RetryPolicy()
        self.metrics = RestMetrics()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._decoders = _Decoders()
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout_s,
            transport=transport,
            trust_env=False,
            headers={"Accept": "application/json"},
        )

    @classmethod
    def from_settings(
        cls, settings: KalshiSettings, signer: Signer | None = None, **options: Any
    ) -> KalshiRest:
        """Client for the configured environment, rate limited to the configured tier."""
        options.setdefault("limiter", RateLimiter.for_tier(settings.tier))
        return cls(settings.rest_url, signer=signer, **options)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> KalshiRest:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # --- the request core ------------------------------------------------------------------

    def _build(
        self, method: str, path: str, params: Params | None, body: bytes | None
    ) -> httpx.Request:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        request = self._http.build_request(
            method, path, params=_params(params or {}), content=body, headers=headers
        )
        if self.signer is not None:
            request.headers.update(self.signer.headers(method, request.url.path))
        return request

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: bytes | None = None,
        batch_size: int = 1,
        idempotent: bool = True,
        client_order_ids: Sequence[str] = (),
        may_send: Callable[[], bool] | None = None,
    ) -> bytes:
        """One logical call: wait for tokens, send, retry what is safe; the 2xx body.

        ``may_send`` is asked right before every attempt leaves (after any wait for
        tokens or between retries); a no raises :class:`SendAborted`.
        """
        bucket, cost = cost_of(method, path, batch_size)
        attempt = 0
        while True:
            attempt += 1
            if self.limiter is not None:
                await self.limiter.acquire(bucket, cost)
            if may_send is not None and not may_send():
                raise SendAborted(list(client_order_ids), f"{method} {path}: no longer wanted")
            self.metrics.requests += 1
            try:
                response = await self._http.send(self._build(method, path, params, body))
            except httpx.TransportError as exc:
                self.metrics.transport_errors += 1
                if not idempotent and not isinstance(exc, _NOT_SENT):
                    raise self._unknown(client_order_ids, f"{type(exc).__name__}") from exc
                if attempt >= self.retry.max_attempts:
                    raise KalshiTransportError(f"{method} {path}: {exc!r}") from exc
                delay, reason = self.retry.backoff(attempt - 1, self._rng), type(exc).__name__
            else:
                if response.status_code < 400:
                    return response.content
                error = self._error(response, bucket)
                if not self._retryable(error, idempotent, client_order_ids):
                    raise error
                if attempt >= self.retry.max_attempts:
                    raise error
                hinted = retry_after_s(response)
                delay = (
                    min(hinted, self.retry.max_retry_after_s)
                    if hinted is not None
                    else self.retry.backoff(attempt - 1, self._rng)
                )
                reason = f"HTTP {response.status_code}"
            self.metrics.retries += 1
            log.warning(
                "kalshi retry",
                extra={"method": method, "path": path, "reason": reason, "delay_s": delay},
            )
            await self._sleep(delay)

    def _error(self, response: httpx.Response, bucket: Any) -> KalshiApiError:
        status = response.status_code
        self.metrics.errors_by_status[status] += 1
        if status == 429 and self.limiter is not None:
            self.limiter.penalize(bucket)
        return api_error(status, response.content)

    def _retryable(
        self, error: KalshiApiError, idempotent: bool, client_order_ids: Sequence[str]
    ) -> bool:
        if error.status == 429:
            return True  # refused before any effect, even for order creation
        if error.status < 500:
            return False
        if not idempotent:
            raise self._unknown(client_order_ids, f"HTTP {error.status}") from error
        return True

    def _unknown(self, client_order_ids: Sequence[str], cause: str) -> OrderStateUnknown:
        self.metrics.order_state_unknown += 1
        return OrderStateUnknown(list(client_order_ids), cause)

    async def _get(self, kind: type[T], path: str, params: Params | None = None) -> T:
        return self._decoders.decode(kind, await self._send("GET", path, params=params))

    async def _pages(
        self,
        kind: type[P],
        path: str,
        params: Params,
        items: Callable[[P], Sequence[T] | None],
        cursor_of: Callable[[P], str | None],
    ) -> AsyncIterator[T]:
        """Follow ``cursor`` until it comes back empty; yield the items of each page."""
        cursor: str | None = None
        while True:
            page = await self._get(kind, path, {**params, "cursor": cursor})
            for item in items(page) or ():
                yield item
            cursor = cursor_of(page)
            if not cursor:
                return

    # --- exchange and market data -----------------------------------------------------------

    async def exchange_status(self) -> m.ExchangeStatus:
        return await self._get(m.ExchangeStatus, "/exchange/status")

    async def account_limits(self) -> m.AccountLimits:
        return await self._get(m.AccountLimits, "/account/limits")

    def iter_markets(
        self,
        *,
        series_ticker: str | None = None,
        event_ticker: str | None = None,
        status: str | None = None,
        tickers: Sequence[str] | None = None,
        page_size: int = 1000,
    ) -> AsyncIterator[m.Market]:
        """Every market matching the filters; ``status`` is unopened|open|paused|closed|settled."""
        params: Params = {
            "series_ticker": series_ticker,
            "event_ticker": event_ticker,
            "status": status,
            "tickers": ",".join(tickers) if tickers else None,
            "limit": page_size,
        }
        return self._pages(
            m.MarketsPage, "/markets", params, lambda p: p.markets, lambda p: p.cursor
        )

    async def get_market(self, ticker: str) -> m.Market:
        return (await self._get(m.MarketResponse, f"/markets/{ticker}")).market

    def iter_events(
        self,
        *,
        series_ticker: str | None = None,
        status: str | None = None,
        with_nested_markets: bool = False,
        page_size: int = 200,
    ) -> AsyncIterator[m.Event]:
        params: Params = {
            "series_ticker": series_ticker,
            "status": status,
            "with_nested_markets": with_nested_markets or None,
            "limit": page_size,
        }
        return self._pages(m.EventsPage, "/events", params, lambda p: p.events, lambda p: p.cursor)

    async def get_event(
        self, event_ticker: str, *, with_nested_markets: bool = False
    ) -> m.EventResponse:
        params: Params = {"with_nested_markets": with_nested_markets or None}
        return await self._get(m.EventResponse, f"/events/{event_ticker}", params)

    async def get_series(self, series_ticker: str) -> m.Series:
        return m.decode_series(await self._send("GET", f"/series/{series_ticker}"))

    async def list_series(self, *, category: str | None = None) -> list[m.Series]:
        return m.decode_series_list(
            await self._send("GET", "/series", params={"category": category})
        )

    async def orderbook(self, ticker: str, depth: int = 0) -> m.Orderbook:
        """Bids of both sides; ``depth`` 0 means every level."""
        params: Params = {"depth": depth or None}
        response = await self._get(m.OrderbookResponse, f"/markets/{ticker}/orderbook", params)
        return response.orderbook_fp

    async def orderbooks(self, tickers: Sequence[str]) -> dict[str, m.Orderbook]:
        params: Params = {"tickers": ",".join(tickers)}
        response = await self._get(m.OrderbooksResponse, "/markets/orderbooks", params)
        return {book.ticker: book.orderbook_fp for book in response.orderbooks}

    # --- portfolio ------------------------------------------------------------------------

    async def balance(self) -> m.Balance:
        return await self._get(m.Balance, "/portfolio/balance")

    def iter_positions(
        self,
        *,
        ticker: str | None = None,
        event_ticker: str | None = None,
        count_filter: str | None = None,
        page_size: int = 200,
    ) -> AsyncIterator[m.MarketPosition]:
        params: Params = {
            "ticker": ticker,
            "event_ticker": event_ticker,
            "count_filter": count_filter,
            "limit": page_size,
        }
        return self._pages(
            m.PositionsPage,
            "/portfolio/positions",
            params,
            lambda p: p.market_positions,
            lambda p: p.cursor,
        )

    def iter_fills(
        self,
        *,
        ticker: str | None = None,
        order_id: str | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
        page_size: int = 200,
    ) -> AsyncIterator[m.Fill]:
        """Fills, newest first; ``min_ts``/``max_ts`` in Unix seconds."""
        params: Params = {
            "ticker": ticker,
            "order_id": order_id,
            "min_ts": min_ts,
            "max_ts": max_ts,
            "limit": page_size,
        }
        return self._pages(
            m.FillsPage, "/portfolio/fills", params, lambda p: p.fills, lambda p: p.cursor
        )

    def iter_orders(
        self,
        *,
        ticker: str | None = None,
        event_ticker: str | None = None,
        status: str | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
        page_size: int = 200,
    ) -> AsyncIterator[m.Order]:
        """Orders, newest first; ``status`` resting|canceled|executed; times in Unix seconds."""
        params: Params = {
            "ticker": ticker,
            "event_ticker": event_ticker,
            "status": status,
            "min_ts": min_ts,
            "max_ts": max_ts,
            "limit": page_size,
        }
        return self._pages(
            m.OrdersPage, "/portfolio/orders", params, lambda p: p.orders, lambda p: p.cursor
        )

    async def get_order(self, order_id: str) -> m.Order:
        return (await self._get(m.OrderResponse, f"/portfolio/orders/{order_id}")).order

    async def find_order_by_client_id(
        self, client_order_id: str, *, ticker: str | None = None, min_ts: int | None = None
    ) -> m.Order | None:
        """The order we sent with ``client_order_id``, or None if the exchange never took it.

        Kalshi's ``GET /portfolio/orders`` cannot filter by client order id, so
        this scans the orders of ``ticker`` (created since ``min_ts``, Unix
        seconds), newest first. Narrow both as much as you can.
        """
        async for order in self.iter_orders(ticker=ticker, min_ts=min_ts, page_size=1000):
            if order.client_order_id == client_order_id:
                return order
        return None

    # --- V2 order entry -------------------------------------------------------------------

    async def create_order(
        self, order: m.CreateOrderV2, *, may_send: Callable[[], bool] | None = None
    ) -> m.CreateOrderV2Response:
        """``POST /portfolio/events/orders``; build ``order`` with :func:`models.new_order`.

        Raises OrderStateUnknown when the outcome cannot be known (see the module doc),
        SendAborted when ``may_send`` says no before an attempt (nothing was created).
        """
        body = await self._send(
            "POST",
            V2_ORDERS,
            body=_encoder.encode(order),
            idempotent=False,
            client_order_ids=[order.client_order_id] if order.client_order_id else [],
            may_send=may_send,
        )
        return self._decoders.decode(m.CreateOrderV2Response, body)

    async def cancel_order(self, order_id: str) -> m.CancelOrderV2Response:
        body = await self._send("DELETE", f"{V2_ORDERS}/{order_id}")
        return self._decoders.decode(m.CancelOrderV2Response, body)

    async def amend_order(
        self,
        order_id: str,
        *,
        ticker: str,
        side: m.BookSide,
        price: str,
        count: str,
        client_order_id: str | None = None,
        updated_client_order_id: str | None = None,
    ) -> m.AmendOrderV2Response:
        """New YES ``price`` and new total ``count``; only a pure size decrease keeps priority.

        Retried like a read: the request states the target, so repeating it changes nothing.
        """
        payload: dict[str, Any] = {"ticker": ticker, "side": side, "price": price, "count": count}
        if client_order_id:
            payload["client_order_id"] = client_order_id
        if updated_client_order_id:
            payload["updated_client_order_id"] = updated_client_order_id
        body = await self._send(
            "POST", f"{V2_ORDERS}/{order_id}/amend", body=_encoder.encode(payload)
        )
        return self._decoders.decode(m.AmendOrderV2Response, body)

    async def decrease_order(
        self, order_id: str, *, reduce_by: Count | None = None, reduce_to: Count | None = None
    ) -> m.DecreaseOrderV2Response:
        """Shrink a resting order keeping its priority; counts in hundredths.

        ``reduce_to`` is idempotent and retried; ``reduce_by`` is not, so an
        ambiguous failure raises OrderStateUnknown (check with get_order).
        """
        if (reduce_by is None) == (reduce_to is None):
            raise ValueError("give exactly one of reduce_by and reduce_to")
        payload = (
            {"reduce_by": format_count(reduce_by)}
            if reduce_by is not None
            else {"reduce_to": format_count(reduce_to or 0)}
        )
        body = await self._send(
            "POST",
            f"{V2_ORDERS}/{order_id}/decrease",
            body=_encoder.encode(payload),
            idempotent=reduce_by is None,
        )
        return self._decoders.decode(m.DecreaseOrderV2Response, body)

    async def batch_create_orders(
        self, orders: Sequence[m.CreateOrderV2]
    ) -> list[m.BatchCreateItem]:
        """Several creates in one call (10 tokens each); per-order errors come back in ``error``."""
        if not orders:
            return []
        body = await self._send(
            "POST",
            f"{V2_ORDERS}/batched",
            body=_encoder.encode({"orders": list(orders)}),
            batch_size=len(orders),
            idempotent=False,
            client_order_ids=[o.client_order_id for o in orders if o.client_order_id],
        )
        return self._decoders.decode(m.BatchCreateResponse, body).orders

    async def batch_cancel_orders(self, order_ids: Sequence[str]) -> list[m.BatchCancelItem]:
        if not order_ids:
            return []
        payload = {"orders": [{"order_id": order_id} for order_id in order_ids]}
        body = await self._send(
            "DELETE",
            f"{V2_ORDERS}/batched",
            body=_encoder.encode(payload),
            batch_size=len(order_ids),
        )
        return self._decoders.decode(m.BatchCancelResponse, body).orders
