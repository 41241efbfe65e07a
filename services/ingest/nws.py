"""NWS poller: each station's running climate-day maximum and forecast high onto the bus.

Per station, every ``poll_interval_s``: ``/stations/{id}/observations/latest``
feeds a :class:`shared.weather.DailyMax`; at start, after every error and every
``reread_interval_s`` the day so far is read back from
``/stations/{id}/observations?start=<LST midnight>``, so reports that arrive
late, out of order or turn from unchecked to verified still count. The gridpoint forecast is read
every ``forecast_interval_s`` (its URL from config or from ``/points``). A
``WeatherObservation`` is published whenever the day, the maximum, the
forecast or the latest observation time changes; freshness goes out as
``FeedStatus`` of feed ``nws:<station>``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import httpx
import structlog

from services.ingest.feeds import NS_PER_S, FeedWatch
from shared.backoff import Backoff
from shared.bus.publisher import Publisher
from shared.feeds_config import NwsSettings, NwsStationConfig
from shared.messages import WeatherObservation
from shared.runtime import run_until_stopped
from shared.streams import OBSERVATIONS
from shared.weather import (
    DailyMax,
    WeatherFormatError,
    climate_day_start,
    forecast_url_from_points,
    parse_forecast_highs,
    parse_observation,
    parse_observations,
)

log = structlog.get_logger("ingest.nws")

OBSERVATIONS_LIMIT = 500
"""A climate day of 5-minute and hourly reports fits (NWS caps ``limit`` at 500)."""
FORECAST_RETRY_S = 300.0

FETCH_ERRORS = (httpx.HTTPError, WeatherFormatError, ValueError)
"""Transport, HTTP status, JSON and shape errors: back off and read the day again."""


def feed_name(station: str) -> str:
    return f"nws:{station}"


def nws_client(
    settings: NwsSettings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=settings.base_url.rstrip("/"),
        transport=transport,
        headers={"User-Agent": settings.user_agent, "Accept": "application/geo+json"},
        timeout=settings.timeout_s,
        follow_redirects=True,
    )


@dataclass
class StationPoller:
    """One station: its climate day, its forecast, its freshness."""

    config: NwsStationConfig
    settings: NwsSettings
    client: httpx.AsyncClient
    publisher: Publisher
    watch: FeedWatch
    daily: DailyMax = field(init=False)
    forecast_highs: dict[date, int] = field(default_factory=dict)
    forecast_url: str | None = None
    next_forecast_at: float = 0.0
    next_reread_at: float = 0.0
    last_published: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        self.daily = DailyMax(self.config.utc_offset_h)
        self.forecast_url = self.config.forecast_url

    @property
    def station(self) -> str:
        return self.config.station

    async def run(self) -> None:
        delay = Backoff(self.settings.retry.base_s, self.settings.retry.cap_s)
        while True:
            try:
                await self.poll_once()
                delay.reset()
                wait_s = self.settings.poll_interval_s
            except FETCH_ERRORS as exc:
                self.next_reread_at = 0.0
                wait_s = delay.next()
                log.warning("nws poll failed", station=self.station, error=str(exc), retry_s=wait_s)
            await asyncio.sleep(wait_s)

    async def poll_once(self) -> None:
        now = datetime.now(UTC)
        self.daily.roll_to(now)
        if time.monotonic() >= self.next_reread_at:
            await self._read_day_so_far()
            self.next_reread_at = time.monotonic() + self.settings.reread_interval_s
        latest = parse_observation(await self._get(f"/stations/{self.station}/observations/latest"))
        self.daily.add(latest)
        if self.settings.forecast:
            await self._refresh_forecast()
        age_s = (now - latest.observed_at).total_seconds()
        if age_s <= self.settings.max_observation_age_s:
            await self.watch.beat()
        else:
            log.warning("station not reporting", station=self.station, age_s=round(age_s))
        await self._publish_if_changed()

    async def _get(self, url: str, params: dict[str, str | int] | None = None) -> Any:
        response = await self.client.get(url, params=params)
        response.raise_for_status()
        return response.json()

    async def _read_day_so_far(self) -> None:
        assert self.daily.day is not None  # roll_to ran
        start = climate_day_start(self.daily.day, self.config.utc_offset_h)
        params: dict[str, str | int] = {"start": start.isoformat(), "limit": OBSERVATIONS_LIMIT}
        collection = await self._get(f"/stations/{self.station}/observations", params)
        self.daily.add_all(parse_observations(collection))

    async def _refresh_forecast(self) -> None:
        if time.monotonic() < self.next_forecast_at:
            return
        try:
            if self.forecast_url is None:
                self.forecast_url = await self._forecast_url()
            forecast = await self._get(self.forecast_url)
            self.forecast_highs.update(parse_forecast_highs(forecast, self.config.utc_offset_h))
            self.next_forecast_at = time.monotonic() + self.settings.forecast_interval_s
        except FETCH_ERRORS as exc:
            # the forecast is secondary: observations go on without it
            retry_s = min(FORECAST_RETRY_S, self.settings.forecast_interval_s)
            self.next_forecast_at = time.monotonic() + retry_s
            log.warning("nws forecast failed", station=self.station, error=str(exc))

    async def _forecast_url(self) -> str:
        if self.config.lat is None or self.config.lon is None:
            raise WeatherFormatError(f"{self.station}: no forecast_url and no lat/lon")
        points = await self._get(f"/points/{self.config.lat:.4f},{self.config.lon:.4f}")
        return forecast_url_from_points(points)

    def observation(self) -> WeatherObservation | None:
        day = self.daily.day
        if day is None:
            return None
        latest = self.daily.latest_at
        return WeatherObservation(
            station=self.station,
            local_date=day.isoformat(),
            observed_max_tenths_f=self.daily.max_tenths_f,
            forecast_high_tenths_f=self.forecast_highs.get(day),
            observed_at_ns=int(latest.timestamp()) * NS_PER_S if latest else 0,
        )

    async def _publish_if_changed(self) -> None:
        message = self.observation()
        if message is None:
            return
        key = (
            message.local_date,
            message.observed_max_tenths_f,
            message.forecast_high_tenths_f,
            message.observed_at_ns,
        )
        if key != self.last_published:
            await self.publisher.publish(OBSERVATIONS, message)
            self.last_published = key


class NwsPoller:
    """Every configured station, polled concurrently, until stopped."""

    def __init__(
        self,
        settings: NwsSettings,
        publisher: Publisher,
        *,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self._owns_client = client is None
        self.client = client or nws_client(settings)
        self.stations = [self._station(config) for config in settings.stations]

    def _station(self, config: NwsStationConfig) -> StationPoller:
        watch = FeedWatch(
            self.publisher,
            feed_name(config.station),
            stale_after_s=self.settings.stale_after_s,
            heartbeat_s=self.settings.heartbeat_s,
        )
        return StationPoller(config, self.settings, self.client, self.publisher, watch)

    def info(self) -> dict[str, str]:
        """Freshness per feed, for the service heartbeat's ``info``."""
        return {s.watch.feed: s.watch.label for s in self.stations}

    async def run(self, stop: asyncio.Event) -> None:
        jobs = [s.run() for s in self.stations] + [s.watch.watch() for s in self.stations]
        try:
            await run_until_stopped(stop, *jobs)
        finally:
            if self._owns_client:
                await self.client.aclose()
