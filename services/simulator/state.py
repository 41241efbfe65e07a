"""Everything one running simulator holds, shared by the REST and WebSocket layers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.simulator.auth import AccountSpec, Authenticator
from services.simulator.engine import Exchange
from services.simulator.faults import FaultConfig, FaultInjector
from services.simulator.model import BookDelta, ExchangeEvent
from services.simulator.ratelimit import TIERS, RateLimiter
from services.simulator.ws import DEFAULT_QUEUE_LIMIT, Hub
from shared.kalshi.signing import DEFAULT_MAX_SKEW_MS, Verifier, now_ms


@dataclass
class SimSettings:
    host: str = "127.0.0.1"
    port: int = 8100
    scenario: str = "mixed"
    seed: int = 7
    accounts: list[AccountSpec] = field(default_factory=list)
    tier: str | None = "basic"
    """Rate-limit tier of every account; None switches rate limiting off."""
    flow_rate: float = 50.0
    """Book changes per second the agents aim for."""
    mispricing_rate: float = 0.02
    """Mispricings injected per second."""
    agents: bool = True
    replay_file: str | None = None
    replay_speed: float = 1.0
    max_skew_ms: int = DEFAULT_MAX_SKEW_MS
    faults: FaultConfig = field(default_factory=FaultConfig)
    start_ms: int | None = None
    """Scenario start (markets, hidden paths); default: now."""
    clock: str = "wall"
    """``wall``: the exchange runs on real time. ``tick``: scenario time starts at
    ``start_ms`` and moves 50 ms per agent tick, so a seed replays the same flow,
    timestamps included."""
    ws_queue_limit: int = DEFAULT_QUEUE_LIMIT
    """Data messages waiting for one WebSocket client before error 25."""
    ping_interval_s: float = 10.0
    """Kalshi's heartbeat ping period."""


CLOCKS = ("wall", "tick")


class TickClock:
    """Scenario time that moves only when told to (by the agents' ticks)."""

    def __init__(self, start_ms: int) -> None:
        self.now_ms = start_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


class SimState:
    def __init__(self, settings: SimSettings, clock_ms: Callable[[], int] | None = None) -> None:
        if settings.clock not in CLOCKS:
            raise ValueError(f"clock must be one of {CLOCKS}, got {settings.clock!r}")
        if settings.ws_queue_limit < 1:
            raise ValueError("ws_queue_limit must be at least 1")
        self.settings = settings
        self.tick_clock: TickClock | None = None
        if clock_ms is None and settings.clock == "tick":
            clock_ms = self.tick_clock = TickClock(settings.start_ms or now_ms())
        self.clock_ms: Callable[[], int] = clock_ms or now_ms
        self.exchange = Exchange(self.clock_ms, seed=settings.seed)
        self.auth = Authenticator(Verifier({}, max_skew_ms=settings.max_skew_ms))
        self.limiter = RateLimiter(TIERS[settings.tier] if settings.tier else None)
        self.faults = FaultInjector(seed=settings.seed, config=settings.faults)
        self.hub = Hub(self.exchange, self.faults, settings.ws_queue_limit)
        self.observers: list[Callable[[list[ExchangeEvent]], None]] = []
        """Called with every batch of events published (the agents watch their quotes)."""
        self.scenario: Any = None
        self.agents: Any = None
        self.replayer: Any = None
        self.replay_done = False
        for spec in settings.accounts:
            self.add_account(spec)

    def add_account(self, spec: AccountSpec) -> None:
        self.auth.register(spec.key_id, spec.public_key)
        if spec.key_id not in self.exchange.ledger:
            self.exchange.open_account(spec.key_id, spec.cash)

    def commit(self) -> int:
        """Publish what the last engine calls changed; return how many book changes."""
        events = self.exchange.drain()
        self.hub.publish(events)
        for observe in self.observers:
            observe(events)
        return sum(isinstance(event, BookDelta) for event in events)
