"""Everything one running simulator holds, shared by the REST and WebSocket layers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.simulator.auth import AccountSpec, Authenticator
from services.simulator.engine import Exchange
from services.simulator.faults import FaultConfig, FaultInjector
from services.simulator.model import BookDelta
from services.simulator.ratelimit import TIERS, RateLimiter
from services.simulator.ws import Hub
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


class SimState:
    def __init__(self, settings: SimSettings, clock_ms: Callable[[], int] = now_ms) -> None:
        self.settings = settings
        self.clock_ms = clock_ms
        self.exchange = Exchange(clock_ms, seed=settings.seed)
        self.auth = Authenticator(Verifier({}, max_skew_ms=settings.max_skew_ms))
        self.limiter = RateLimiter(TIERS[settings.tier] if settings.tier else None)
        self.faults = FaultInjector(seed=settings.seed, config=settings.faults)
        self.hub = Hub(self.exchange, self.faults)
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
        return sum(isinstance(event, BookDelta) for event in events)
