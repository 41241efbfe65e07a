"""One settings model for every service.

Sources, first wins: environment variables, then an optional YAML file
(``--config FILE`` or ``KHV_CONFIG``), then files in a secrets directory
(``KHV_SECRETS_DIR``, e.g. Docker's ``/run/secrets``), then the defaults.
Nested keys come from the environment as ``KHV_<SECTION>__<KEY>``; the common
URLs and the secrets keep their conventional names (``REDIS_URL``,
``DATABASE_URL``, ``KALSHI_KEY_ID``, ``KALSHI_PRIVATE_KEY_PATH``,
``DASHBOARD_TOKEN``). ``config/settings.example.yaml`` documents every key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from shared.feeds_config import FeedsSettings
from shared.risk.limits import RiskLimits
from shared.strategy_config import StrategySettings

KALSHI_URLS: dict[str, tuple[str, str]] = {
    "production": (
        "https://external-api.kalshi.com/trade-api/v2",
        "wss://external-api-ws.kalshi.com/trade-api/ws/v2",
    ),
    "demo": (
        "https://external-api.demo.kalshi.co/trade-api/v2",
        "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2",
    ),
    "simulator": (
        "http://127.0.0.1:8100/trade-api/v2",
        "ws://127.0.0.1:8100/trade-api/ws/v2",
    ),
}


class ConfigError(Exception):
    """Settings that cannot be used; the message is one line naming the setting."""


class BusSettings(BaseModel):
    shards: int = Field(8, ge=1, le=1024, description="event shards of md and signals")
    batch: int = Field(256, ge=1, le=10_000, description="entries read per XREADGROUP")
    block_ms: int = Field(1000, ge=1, le=60_000, description="XREADGROUP BLOCK")
    claim_idle_ms: int = Field(15_000, ge=100, description="reclaim entries idle this long")
    claim_every_ms: int = Field(5_000, ge=100, description="how often to look for them")
    max_failures: int = Field(5, ge=1, le=100, description="failures before dead-letter")
    lease_ttl_ms: int = Field(3_000, ge=200, le=60_000, description="leader lease lifetime")


class KalshiSettings(BaseModel):
    env: Literal["simulator", "demo", "production"] = "simulator"
    rest_url: str = ""
    ws_url: str = ""
    tier: Literal["basic", "advanced", "expert", "premier", "paragon", "prime", "prestige"] = (
        "basic"
    )

    @model_validator(mode="after")
    def _default_urls(self) -> KalshiSettings:
        rest, ws = KALSHI_URLS[self.env]
        self.rest_url = self.rest_url or rest
        self.ws_url = self.ws_url or ws
        return self


class DashboardSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    cors_origins: list[str] = Field(default_factory=list)
    backtests_dir: Path = Field(
        Path("backtests"),
        description="backtest runs to show: each subdirectory is one run's --out directory",
    )


class SimulatorSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8100, ge=1, le=65535)
    scenario: Literal["weather", "fed", "mixed", "replay"] = "mixed"
    seed: int = 7


class IngestSettings(BaseModel):
    series: list[str] = Field(
        default_factory=list, description="series tickers to follow; empty = every open market"
    )
    max_markets: int = Field(2000, ge=1, description="most markets one process subscribes to")
    discovery_interval_s: float = Field(60.0, gt=0, description="how often to list markets")
    snapshot_interval_s: float = Field(30.0, gt=0, description="full books for late consumers")
    stale_after_s: float = Field(5.0, gt=0, description="no message and no ping: feed stale")
    resubscribe_after_s: float = Field(
        1.0, gt=0, description="an invalid book without a snapshot this long is resubscribed"
    )
    record: bool = Field(True, description="write every snapshot and delta to Postgres")


class RiskSettings(RiskLimits):
    """The risk guardian's limits and how the service publishes what it sees."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    maker_strategies: list[str] = Field(
        default_factory=list,
        description="strategies whose one-leg signals rest as maker orders; all others snipe",
    )
    publish_interval_s: float = Field(0.25, gt=0, description="portfolio published this often")
    snapshot_interval_s: float = Field(
        60.0, gt=0, description="portfolio written to Postgres this often"
    )


class ExecutionSettings(BaseModel):
    """How execution routes and looks after its orders."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_reprices: int = Field(3, ge=0, description="times a maker order follows a higher bid")
    unwind_slippage_cents: int = Field(
        5, ge=0, le=99, description="an uneven arbitrage leg is sold back this far under the bid"
    )
    fade_interval_s: float = Field(0.1, gt=0, description="how often resting makers are reviewed")
    maker_ttl_s: float = Field(
        30.0, gt=0, description="a resting maker order is canceled after this"
    )
    settle_poll_s: float = Field(
        30.0, gt=0, description="how often closed markets we hold are checked for a result"
    )


class MetricsSettings(BaseModel):
    enabled: bool = True
    host: str = "127.0.0.1"
    base_port: int = Field(9100, ge=1, le=65000, description="service N listens on base+N")


class Settings(BaseSettings):
    """Everything a service can be told. Secrets are SecretStr: never printed."""

    model_config = SettingsConfigDict(
        env_prefix="KHV_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    mode: Literal["paper", "live"] = "paper"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    key_prefix: str = Field("khv:", min_length=1, description="prefix of every Redis key")
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", validation_alias=AliasChoices("REDIS_URL", "redis_url")
    )
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/kalshi_bot",
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
    )
    kalshi_key_id: SecretStr | None = Field(
        None, validation_alias=AliasChoices("KALSHI_KEY_ID", "kalshi_key_id")
    )
    kalshi_private_key_path: Path | None = Field(
        None, validation_alias=AliasChoices("KALSHI_PRIVATE_KEY_PATH", "kalshi_private_key_path")
    )
    dashboard_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("DASHBOARD_TOKEN", "dashboard_token")
    )
    bus: BusSettings = Field(default_factory=BusSettings)
    kalshi: KalshiSettings = Field(default_factory=KalshiSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    feeds: FeedsSettings = Field(default_factory=FeedsSettings)
    strategy: StrategySettings = Field(default_factory=StrategySettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @field_validator("kalshi_key_id", "dashboard_token", "kalshi_private_key_path", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _live_needs_credentials(self) -> Settings:
        if self.mode == "live" and (self.kalshi_key_id is None or not self.kalshi_private_key_path):
            raise ValueError("mode=live needs KALSHI_KEY_ID and KALSHI_PRIVATE_KEY_PATH")
        key = self.kalshi_private_key_path
        if key is not None and not key.is_file():
            raise ValueError(f"KALSHI_PRIVATE_KEY_PATH: no such file {str(key)!r}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("yaml_file"):
            sources.append(YamlConfigSettingsSource(settings_cls))
        sources.append(file_secret_settings)
        return tuple(sources)


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "settings"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error.get("type") in {"missing", "value_error", "extra_forbidden"}:
        return f"{where}: {message}"
    shown = error.get("input")
    if isinstance(shown, str | int | float | bool):
        return f"{where}: {message} (got {shown!r})"
    return f"{where}: {message}"


def _with_file(path: Path) -> type[Settings]:
    class FileSettings(Settings):
        model_config = SettingsConfigDict(yaml_file=path)

    return FileSettings


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Load and validate settings; raise ConfigError with one clear line on any problem."""
    config_file = config_file or os.environ.get("KHV_CONFIG") or None
    settings_cls = Settings
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        settings_cls = _with_file(path)
    secrets_dir = os.environ.get("KHV_SECRETS_DIR")
    try:
        if secrets_dir:
            return settings_cls(_secrets_dir=secrets_dir, **overrides)
        return settings_cls(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(_describe(dict(first)) + more) from None
    except Exception as exc:  # YAML syntax and file errors surface here
        raise ConfigError(f"cannot read settings: {' '.join(str(exc).split())}") from None
