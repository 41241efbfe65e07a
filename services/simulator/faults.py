"""Fault injection, outside Kalshi's API: what to break, and a log of every break.

Rates are probabilities per message or per request, drawn from a seeded
random generator; durations start when the fault is set. Every fault that
actually hits something is logged with its time and target so a test can
check what the client did about it.

What each does on the wire (the WebSocket ones in :mod:`services.simulator.ws`):

* ``ws_drop_rate``: a data message is not sent, its ``seq`` is still used (a gap);
* ``ws_duplicate_rate``: a data message is sent twice, same ``seq``;
* ``ws_reorder_rate``: a data message is held and sent right after the next one;
* ``ws_disconnect``: every open socket is closed (code 1011) when the fault is set;
  clients reconnect and subscribe again (fresh sids, fresh snapshots);
* ``feed_stall_s``: no WebSocket output at all for that long, neither messages nor
  the server's heartbeat pings (nor pongs), as a stuck Kalshi feed looks; what was
  queued meanwhile is sent when the stall ends;
* ``latency_ms``: every trade-api REST response is delayed that long;
* ``http_error_rate`` / ``http_error_status``, ``rate_limit_storm_s`` (every REST call
  answers 429), ``reject_orders`` (order entry answers 400).
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

LOG_KEPT = 100_000
"""Most recent fault records kept (a drop rate on a busy feed logs every message)."""


class FaultConfigError(ValueError):
    """A fault setting that is unknown or out of range."""


@dataclass
class FaultConfig:
    ws_drop_rate: float = 0.0
    ws_duplicate_rate: float = 0.0
    ws_reorder_rate: float = 0.0
    ws_disconnect: bool = False
    feed_stall_s: float = 0.0
    http_error_rate: float = 0.0
    http_error_status: int = 503
    rate_limit_storm_s: float = 0.0
    latency_ms: float = 0.0
    reject_orders: bool = False

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> FaultConfig:
        known = {f.name: f.type for f in fields(cls)}
        unknown = set(body) - set(known)
        if unknown:
            raise FaultConfigError(f"unknown faults: {sorted(unknown)}")
        config = cls()
        for name, value in body.items():
            default = getattr(config, name)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise FaultConfigError(f"{name} must be true or false")
            elif not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise FaultConfigError(f"{name} must be a non-negative number")
            setattr(config, name, type(default)(value))
        for rate in ("ws_drop_rate", "ws_duplicate_rate", "ws_reorder_rate", "http_error_rate"):
            if getattr(config, rate) > 1:
                raise FaultConfigError(f"{rate} must be at most 1")
        return config


@dataclass(frozen=True)
class FaultRecord:
    ts_ms: int
    fault: str
    target: str
    detail: str = ""


@dataclass
class FaultInjector:
    seed: int = 0
    clock: Callable[[], float] = time.time
    config: FaultConfig = field(default_factory=FaultConfig)
    log: deque[FaultRecord] = field(default_factory=lambda: deque(maxlen=LOG_KEPT))
    storm_until: float = 0.0
    stall_until: float = 0.0
    disconnect_pending: bool = False
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self.set(self.config)

    def set(self, config: FaultConfig) -> None:
        now = self.clock()
        self.config = config
        self.storm_until = now + config.rate_limit_storm_s if config.rate_limit_storm_s else 0.0
        self.stall_until = now + config.feed_stall_s if config.feed_stall_s else 0.0
        self.disconnect_pending = config.ws_disconnect
        self.record("faults_set", "simulator", repr(asdict(config)))

    def clear(self) -> None:
        self.set(FaultConfig())

    def record(self, fault: str, target: str, detail: str = "") -> None:
        self.log.append(FaultRecord(int(self.clock() * 1000), fault, target, detail))

    def _hit(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    # --- REST ---------------------------------------------------------------------------

    def storming(self) -> bool:
        return self.clock() < self.storm_until

    def http_error(self) -> int | None:
        return self.config.http_error_status if self._hit(self.config.http_error_rate) else None

    # --- WebSocket -----------------------------------------------------------------------

    def stalled(self) -> bool:
        return self.clock() < self.stall_until

    def stall_remaining(self) -> float:
        return max(0.0, self.stall_until - self.clock())

    def ws_action(self) -> str:
        """What to do with the next outgoing WS data message: send, drop, duplicate, reorder."""
        if self._hit(self.config.ws_drop_rate):
            return "drop"
        if self._hit(self.config.ws_duplicate_rate):
            return "duplicate"
        if self._hit(self.config.ws_reorder_rate):
            return "reorder"
        return "send"

    def take_disconnect(self) -> bool:
        """True once after ``ws_disconnect`` was set (the hub then closes every socket)."""
        pending, self.disconnect_pending = self.disconnect_pending, False
        return pending
