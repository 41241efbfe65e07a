"""The errors of the Kalshi client, one class per decision a caller makes.

``KalshiApiError`` carries what the exchange answered (HTTP status, Kalshi's
``code``, ``message`` and ``details``); its subclasses name the statuses a
caller branches on. ``OrderStateUnknown`` is not an API error: it says an
order-creating request may or may not have reached the exchange, and only a
lookup by ``client_order_id`` can tell.
"""

from __future__ import annotations

from typing import Any

import msgspec


class KalshiError(Exception):
    """Base of every error raised by the Kalshi client."""


class KalshiApiError(KalshiError):
    """The exchange answered with an error status."""

    def __init__(self, status: int, code: str, message: str, details: str = "") -> None:
        super().__init__(f"HTTP {status} {code}: {message}" + (f" ({details})" if details else ""))
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class BadRequest(KalshiApiError):
    """400: the request is invalid (bad price, unknown field, order rejected ...)."""


class Unauthorized(KalshiApiError):
    """401/403: missing, unknown or badly signed API key, or a stale timestamp."""


class NotFound(KalshiApiError):
    """404: no such market, event, series or order."""


class Conflict(KalshiApiError):
    """409: the resource exists already or cannot be modified."""


class RateLimited(KalshiApiError):
    """429: the exchange's token bucket was empty (Kalshi sends no Retry-After)."""


class ServerError(KalshiApiError):
    """5xx: the exchange failed; the request may be retried if it is idempotent."""


class KalshiTransportError(KalshiError):
    """No HTTP answer after every attempt: connection refused, reset or timed out."""


class KalshiProtocolError(KalshiError):
    """An answer that does not have the shape Kalshi documents."""


class OrderStateUnknown(KalshiError):
    """An order-creating request may or may not have been executed.

    Raised instead of retrying when a create (or batch create) timed out after
    being sent, lost its connection mid-flight, or got a 5xx: retrying blindly
    could place the order twice. Resolve it with
    ``KalshiRest.find_order_by_client_id(client_order_ids[i], ticker=...)``.
    """

    def __init__(self, client_order_ids: list[str], cause: str) -> None:
        super().__init__(f"order state unknown for {client_order_ids}: {cause}")
        self.client_order_ids = client_order_ids
        self.cause = cause


class SendAborted(KalshiError):
    """An order-creating request given up before an attempt left, because the caller's
    ``may_send`` said no (execution: trading halted, the kill switch).

    Every earlier attempt, if any, was refused before it had any effect (429, or a
    connection that never opened), so the order does not exist at the exchange.
    """

    def __init__(self, client_order_ids: list[str], cause: str) -> None:
        super().__init__(f"not sent {client_order_ids}: {cause}")
        self.client_order_ids = client_order_ids
        self.cause = cause


class KalshiWsError(KalshiError):
    """A WebSocket command failed: an ``error`` reply, a timeout, or a lost connection."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message if code is None else f"WS error {code}: {message}")
        self.code = code
        self.message = message


_BY_STATUS: dict[int, type[KalshiApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
    429: RateLimited,
}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _fields(body: Any) -> tuple[str, str, str]:
    """(code, message, details) from a flat ``{code,message,details}`` or nested ``{error:{}}``."""
    if not isinstance(body, dict):
        return "", "", ""
    inner = body.get("error")
    if isinstance(inner, dict):
        body = inner
    elif isinstance(inner, str) and "message" not in body:
        return _text(body.get("code")), inner, _text(body.get("details"))
    return _text(body.get("code")), _text(body.get("message")), _text(body.get("details"))


def api_error(status: int, body: bytes) -> KalshiApiError:
    """The error for one HTTP error answer; tolerates any body, JSON or not."""
    try:
        code, message, details = _fields(msgspec.json.decode(body))
    except msgspec.DecodeError:
        code, message, details = "", body[:200].decode(errors="replace"), ""
    kind = _BY_STATUS.get(status) or (ServerError if status >= 500 else KalshiApiError)
    return kind(status, code or f"http_{status}", message, details)
