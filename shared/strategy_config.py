"""Settings of the strategy: sizing, scanning and the fair-value models (``strategy:``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.fairvalue import FedModelConfig, VenueModelConfig, WeatherModelConfig
from shared.kelly import KellyConfig
from shared.money import Micros, dollars


class StrategySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arbitrage: bool = Field(True, description="scan for atomic and ladder arbitrage")
    models: list[str] = Field(
        default_factory=lambda: ["weather", "fed", "venue"],
        description="fair-value models that may emit signals: weather, fed, venue",
    )
    kelly_fraction: float = Field(0.25, gt=0, le=1, description="fraction of full Kelly")
    recovery_kelly_fraction: float = Field(
        0.10, gt=0, le=1, description="fraction of full Kelly while risk reports a drawdown"
    )
    min_edge: float = Field(
        0.02, ge=0, lt=1, description="least profit after fees per contract/set, as a share of $1"
    )
    scan_hz: float = Field(
        10.0,
        gt=0,
        description="most scans per second of one event for changes below the best bids "
        "(a moved best bid is scanned at once)",
    )
    signal_ttl_s: float = Field(2.0, gt=0, description="a signal is void this long after its book")
    cooldown_s: float = Field(
        1.0, ge=0, description="the same legs are not signalled again within this (in flight)"
    )
    bankroll_usd: int = Field(
        10_000, gt=0, description="sizing bankroll until risk publishes the portfolio's NAV"
    )
    weather: WeatherModelConfig = Field(default_factory=WeatherModelConfig)
    fed: FedModelConfig = Field(default_factory=FedModelConfig)
    venue: VenueModelConfig = Field(default_factory=VenueModelConfig)

    def kelly(self) -> KellyConfig:
        return KellyConfig(
            fraction=self.kelly_fraction,
            recovery_fraction=self.recovery_kelly_fraction,
            min_edge=self.min_edge,
        )

    @property
    def bankroll(self) -> Micros:
        return dollars(self.bankroll_usd)
