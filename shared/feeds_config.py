"""Settings of the outside-signal feeds (NWS, Fed funds futures, Polymarket).

Plain pydantic models, meant to sit under the global Settings (e.g. as
``feeds.nws``, ``feeds.fed``, ``feeds.polymarket``); docs/feeds.md lists every key.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from shared.polymarket import MarketLink
from shared.weather import STATIONS, STATIONS_BY_ID


class Retry(BaseModel):
    """Exponential backoff with jitter after errors."""

    base_s: float = Field(1.0, gt=0, description="first delay after an error")
    cap_s: float = Field(300.0, gt=0, description="longest delay")


class NwsStationConfig(BaseModel):
    """One station to poll; the forecast comes from ``forecast_url`` or from /points."""

    station: str = Field(min_length=3)
    utc_offset_h: int = Field(ge=-12, le=14, description="standard-time offset (no DST)")
    forecast_url: str | None = None
    lat: float | None = None
    lon: float | None = None


def _known_station(station_id: str) -> NwsStationConfig:
    station = STATIONS_BY_ID.get(station_id)
    if station is None:
        raise ValueError(f"unknown station {station_id!r}: give utc_offset_h for it")
    return NwsStationConfig(
        station=station.station, utc_offset_h=station.utc_offset_h, lat=station.lat, lon=station.lon
    )


class NwsSettings(BaseModel):
    enabled: bool = True
    base_url: str = "https://api.weather.gov"
    user_agent: str = Field(
        "kalshi-hv-bot/0.1 (set feeds.nws.user_agent to your contact)",
        min_length=1,
        description="NWS answers 403 without one; name the app and a contact",
    )
    stations: list[NwsStationConfig] = Field(
        default_factory=lambda: [_known_station(s.station) for s in STATIONS],
        description="station ids of the KXHIGH* table, or full entries",
    )
    poll_interval_s: float = Field(60.0, gt=0)
    reread_interval_s: float = Field(900.0, gt=0, description="read the whole day this often")
    forecast: bool = True
    forecast_interval_s: float = Field(1800.0, gt=0)
    stale_after_s: float = Field(300.0, gt=0, description="no good poll this long: STALE")
    heartbeat_s: float = Field(30.0, gt=0, description="FeedStatus(fresh) at most this often")
    max_observation_age_s: float = Field(
        7200.0, gt=0, description="a latest observation older than this does not count as alive"
    )
    timeout_s: float = Field(10.0, gt=0)
    retry: Retry = Field(default_factory=Retry)

    @field_validator("stations", mode="before")
    @classmethod
    def _station_ids(cls, value: object) -> object:
        if isinstance(value, list):
            return [_known_station(item) if isinstance(item, str) else item for item in value]
        return value


FOMC_DECISION_DAYS: tuple[date, ...] = tuple(
    date.fromisoformat(d)
    for d in (
        "2025-01-29",
        "2025-03-19",
        "2025-05-07",
        "2025-06-18",
        "2025-07-30",
        "2025-09-17",
        "2025-10-29",
        "2025-12-10",
        "2026-01-28",
        "2026-03-18",
        "2026-04-29",
        "2026-06-17",
        "2026-07-29",
        "2026-09-16",
        "2026-10-28",
        "2026-12-09",
    )
)
"""Second (decision) days of the scheduled FOMC meetings; check federalreserve.gov."""


class FedSettings(BaseModel):
    enabled: bool = False
    source: Literal["file", "http"] = "file"
    path: Path | None = Field(None, description="quotes file (.json or .csv) for source=file")
    url: str | None = Field(None, description="endpoint answering the JSON form, source=http")
    headers: dict[str, str] = Field(default_factory=dict, description="sent with source=http")
    poll_interval_s: float = Field(300.0, gt=0)
    stale_after_s: float = Field(900.0, gt=0)
    heartbeat_s: float = Field(300.0, gt=0)
    meetings: list[date] = Field(default_factory=lambda: list(FOMC_DECISION_DAYS))
    current_upper_bp: int | None = Field(
        None, description="target-range upper bound now; the quotes' target_upper_bp wins"
    )
    effr_pct: float | None = Field(None, description="current EFFR; the quotes' effr wins")
    late_days: int = Field(7, ge=1, le=31, description="post-meeting days below which next month")
    timeout_s: float = Field(10.0, gt=0)
    retry: Retry = Field(default_factory=lambda: Retry(base_s=5.0, cap_s=300.0))

    @model_validator(mode="after")
    def _source_named(self) -> FedSettings:
        if self.enabled and self.source == "file" and self.path is None:
            raise ValueError("feeds.fed.source=file needs feeds.fed.path")
        if self.enabled and self.source == "http" and not self.url:
            raise ValueError("feeds.fed.source=http needs feeds.fed.url")
        return self


class PolymarketLinkConfig(BaseModel):
    token_id: str = Field(min_length=1)
    token_is_no: bool = Field(False, description="the token is the NO outcome of the question")
    taker_fee_rate: float | None = Field(None, ge=0, le=1)


class PolymarketSettings(BaseModel):
    enabled: bool = False
    ws_url: str = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
    markets: dict[str, str | PolymarketLinkConfig] = Field(
        default_factory=dict, description="Kalshi ticker -> YES token id, or a full entry"
    )
    taker_fee_rate: float = Field(0.05, ge=0, le=1, description="default rate (category)")
    ping_interval_s: float = Field(10.0, gt=0)
    stale_after_s: float = Field(30.0, gt=0)
    heartbeat_s: float = Field(10.0, gt=0)
    max_updates_per_s: float = Field(10.0, gt=0, description="VenueBook per Kalshi market")
    retry: Retry = Field(default_factory=lambda: Retry(base_s=0.5, cap_s=60.0))

    def links(self) -> list[MarketLink]:
        links: list[MarketLink] = []
        for market, raw in self.markets.items():
            entry = PolymarketLinkConfig(token_id=raw) if isinstance(raw, str) else raw
            rate = self.taker_fee_rate if entry.taker_fee_rate is None else entry.taker_fee_rate
            links.append(MarketLink(market, entry.token_id, entry.token_is_no, rate))
        return links


class FeedsSettings(BaseModel):
    nws: NwsSettings = Field(default_factory=NwsSettings)
    fed: FedSettings = Field(default_factory=FedSettings)
    polymarket: PolymarketSettings = Field(default_factory=PolymarketSettings)
