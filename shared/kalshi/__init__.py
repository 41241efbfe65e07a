"""Kalshi protocol helpers shared by the client services and the simulator.

The client: :class:`KalshiRest` (REST), :class:`KalshiWebSocket` (streams),
:class:`RateLimiter` (token buckets), typed wire models in :mod:`.models`
and errors in :mod:`.errors`. See ``docs/kalshi-client.md``.
"""

from shared.kalshi.errors import (
    BadRequest,
    Conflict,
    KalshiApiError,
    KalshiError,
    KalshiProtocolError,
    KalshiTransportError,
    KalshiWsError,
    NotFound,
    OrderStateUnknown,
    RateLimited,
    ServerError,
    Unauthorized,
)
from shared.kalshi.models import decode_ws, new_order, v2_direction
from shared.kalshi.ratelimit import TIERS, RateLimiter, RateLimitExceeded, cost_of
from shared.kalshi.rest import KalshiRest, RetryPolicy
from shared.kalshi.signing import Signer
from shared.kalshi.ws import (
    Connected,
    Disconnected,
    KalshiWebSocket,
    ReconnectPolicy,
    Resubscribed,
    SubscriptionActive,
    SubscriptionSpec,
    WsEvent,
)

__all__ = [
    "TIERS",
    "BadRequest",
    "Conflict",
    "Connected",
    "Disconnected",
    "KalshiApiError",
    "KalshiError",
    "KalshiProtocolError",
    "KalshiRest",
    "KalshiTransportError",
    "KalshiWebSocket",
    "KalshiWsError",
    "NotFound",
    "OrderStateUnknown",
    "RateLimitExceeded",
    "RateLimited",
    "RateLimiter",
    "ReconnectPolicy",
    "Resubscribed",
    "RetryPolicy",
    "ServerError",
    "Signer",
    "SubscriptionActive",
    "SubscriptionSpec",
    "Unauthorized",
    "WsEvent",
    "cost_of",
    "decode_ws",
    "new_order",
    "v2_direction",
]
