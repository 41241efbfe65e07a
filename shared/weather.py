"""NWS weather for Kalshi's daily-high markets: stations, observations, the climate day.

Pure functions over api.weather.gov's JSON (no I/O). Kalshi's KXHIGH* markets
settle on the NWS Daily Climate Report (CLI) of one station per city, for the
local *standard* time day: midnight to midnight LST, which during daylight
saving time is 01:00-00:59 on the local clock. Temperatures leave this module
as integer tenths of a degree Fahrenheit.

Quality control: NWS passes the MADIS QC descriptor of every value. We accept
``V`` (verified, QC levels 1-3), ``S`` (screened, 1-2), ``C`` (coarse pass,
level 1) and ``G`` (subjectively good); we reject ``X`` (failed level 1),
``Q`` (questioned), ``B`` (subjectively bad), ``Z`` (no QC applied yet),
``T`` (a substituted value) and anything missing, null or unknown. A running
maximum is a one-way ratchet: one accepted spike can never be taken back, so
an unchecked value is worth less than a missing one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final


class WeatherFormatError(ValueError):
    """An NWS payload that does not have the shape we read."""


# --- stations ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Station:
    """The station a KXHIGH* series settles on, and its standard-time offset from UTC."""

    series: str
    city: str
    station: str
    wfo: str
    cli: str
    utc_offset_h: int
    lat: float
    lon: float


# protocols.md 4.4 (from the series' settlement_sources); offsets are standard time, so
# Phoenix (no DST) needs no exception. Re-derive from GET /series/{ticker} when it matters.
STATIONS: Final[tuple[Station, ...]] = (
    Station("KXHIGHNY", "New York (Central Park)", "KNYC", "OKX", "NYC", -5, 40.78, -73.97),
    Station("KXHIGHCHI", "Chicago (Midway)", "KMDW", "LOT", "MDW", -6, 41.79, -87.75),
    Station("KXHIGHMIA", "Miami", "KMIA", "MFL", "MIA", -5, 25.79, -80.32),
    Station("KXHIGHAUS", "Austin-Bergstrom", "KAUS", "EWX", "AUS", -6, 30.18, -97.68),
    Station("KXHIGHLAX", "Los Angeles", "KLAX", "LOX", "LAX", -8, 33.94, -118.39),
    Station("KXHIGHPHIL", "Philadelphia", "KPHL", "PHI", "PHL", -5, 39.87, -75.23),
    Station("KXHIGHDEN", "Denver", "KDEN", "BOU", "DEN", -7, 39.85, -104.66),
    Station("KXHIGHTATL", "Atlanta", "KATL", "FFC", "ATL", -5, 33.64, -84.43),
    Station("KXHIGHTBOS", "Boston Logan", "KBOS", "BOX", "BOS", -5, 42.36, -71.01),
    Station("KXHIGHTDAL", "Dallas/Fort Worth", "KDFW", "FWD", "DFW", -6, 32.90, -97.04),
    Station("KXHIGHTDC", "Washington National", "KDCA", "LWX", "DCA", -5, 38.85, -77.03),
    Station("KXHIGHTHOU", "Houston Hobby", "KHOU", "HGX", "HOU", -6, 29.64, -95.28),
    Station("KXHIGHTLV", "Las Vegas", "KLAS", "VEF", "LAS", -8, 36.08, -115.15),
    Station("KXHIGHTMIN", "Minneapolis", "KMSP", "MPX", "MSP", -6, 44.88, -93.22),
    Station("KXHIGHTNOLA", "New Orleans", "KMSY", "LIX", "MSY", -6, 29.99, -90.26),
    Station("KXHIGHTOKC", "Oklahoma City", "KOKC", "OUN", "OKC", -6, 35.39, -97.60),
    Station("KXHIGHTPHX", "Phoenix", "KPHX", "PSR", "PHX", -7, 33.43, -112.01),
    Station("KXHIGHTSATX", "San Antonio", "KSAT", "EWX", "SAT", -6, 29.53, -98.47),
    Station("KXHIGHTSEA", "Seattle-Tacoma", "KSEA", "SEW", "SEA", -8, 47.45, -122.31),
    Station("KXHIGHTSFO", "San Francisco", "KSFO", "MTR", "SFO", -8, 37.62, -122.37),
)
STATIONS_BY_ID: Final[Mapping[str, Station]] = {s.station: s for s in STATIONS}
STATIONS_BY_SERIES: Final[Mapping[str, Station]] = {s.series: s for s in STATIONS}


# --- quality control and units -------------------------------------------------------------

ACCEPTED_QC: Final = frozenset({"V", "S", "C", "G"})


def qc_passed(code: object) -> bool:
    """Whether a MADIS QC descriptor lets a value through (older payloads write ``qc:V``)."""
    if not isinstance(code, str):
        return False
    return code.rsplit(":", 1)[-1].strip().upper() in ACCEPTED_QC


def _exact(value: object) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise WeatherFormatError(f"temperature {value!r} is not a number")
    # repr gives the shortest decimal that reads back as this float: 22.8, not 22.80000000000000071
    text = repr(value) if isinstance(value, float) else str(value)
    try:
        exact = Fraction(Decimal(text))
    except (ArithmeticError, ValueError) as exc:
        raise WeatherFormatError(f"temperature {value!r} is not a finite number") from exc
    return exact


def _round_half_up(value: Fraction) -> int:
    """Nearest integer, halves toward +infinity (FMH-1: "0.5 rounds up", -3.5 -> -3)."""
    return math.floor(value + Fraction(1, 2))


def celsius_to_tenths_f(celsius: object) -> int:
    """°C -> integer tenths of °F: round-half-up(C x 18 + 320), computed exactly.

    NWS carries °C to a tenth (the METAR T-group); 0.1 °C is 0.18 °F, so such a
    value never lands on a half tenth of °F and the result is its nearest tenth.
    """
    return _round_half_up(_exact(celsius) * 18 + 320)


def fahrenheit_to_tenths_f(fahrenheit: object) -> int:
    return _round_half_up(_exact(fahrenheit) * 10)


def whole_degrees_f(tenths_f: int) -> int:
    """Tenths of °F -> whole °F as the CLI reports it (halves round up)."""
    return _round_half_up(Fraction(tenths_f, 10))


def quantity_tenths_f(quantity: object) -> int | None:
    """An NWS ``{value, unitCode, qualityControl}`` temperature -> tenths of °F, or None.

    None when the value is missing, failed or lacks QC, or has a unit we do not know.
    """
    if not isinstance(quantity, Mapping):
        return None
    value = quantity.get("value")
    if value is None or not qc_passed(quantity.get("qualityControl")):
        return None
    unit = str(quantity.get("unitCode", "")).rsplit(":", 1)[-1]
    if unit == "degC":
        return celsius_to_tenths_f(value)
    if unit == "degF":
        return fahrenheit_to_tenths_f(value)
    return None


# --- observations --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TemperatureObservation:
    """One station observation; ``tenths_f`` is None unless the value passed QC."""

    station: str
    observed_at: datetime
    tenths_f: int | None
    qc: str | None


def parse_timestamp(text: object) -> datetime:
    """An ISO-8601 timestamp with an offset -> an aware UTC datetime."""
    if not isinstance(text, str):
        raise WeatherFormatError(f"timestamp {text!r} is not a string")
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise WeatherFormatError(f"timestamp {text!r} is not ISO-8601") from exc
    if parsed.tzinfo is None:
        raise WeatherFormatError(f"timestamp {text!r} has no UTC offset")
    return parsed.astimezone(UTC)


def _station_id(properties: Mapping[str, Any]) -> str:
    station = properties.get("stationId")
    if isinstance(station, str) and station:
        return station
    url = properties.get("station")
    if isinstance(url, str) and url:
        return url.rstrip("/").rsplit("/", 1)[-1]
    raise WeatherFormatError("observation names no station")


def parse_observation(feature: Mapping[str, Any]) -> TemperatureObservation:
    """One GeoJSON Feature of ``/stations/{id}/observations[/latest]``."""
    properties = feature.get("properties")
    if not isinstance(properties, Mapping):
        raise WeatherFormatError("observation has no properties")
    temperature = properties.get("temperature")
    qc = temperature.get("qualityControl") if isinstance(temperature, Mapping) else None
    return TemperatureObservation(
        station=_station_id(properties),
        observed_at=parse_timestamp(properties.get("timestamp")),
        tenths_f=quantity_tenths_f(temperature),
        qc=qc if isinstance(qc, str) else None,
    )


def parse_observations(collection: Mapping[str, Any]) -> list[TemperatureObservation]:
    """A FeatureCollection of observations, oldest first (NWS sends newest first)."""
    features = collection.get("features")
    if not isinstance(features, list):
        raise WeatherFormatError("observation collection has no features list")
    return sorted((parse_observation(f) for f in features), key=lambda o: o.observed_at)


# --- the climate day -----------------------------------------------------------------------


def climate_date(at: datetime, utc_offset_h: int) -> date:
    """The local-standard-time date (the CLI day) an instant falls in; days are [00:00, 24:00)."""
    if at.tzinfo is None:
        raise ValueError("climate_date needs an aware datetime")
    return (at.astimezone(UTC) + timedelta(hours=utc_offset_h)).date()


def climate_day_start(day: date, utc_offset_h: int) -> datetime:
    """The UTC instant a climate day begins (local standard midnight)."""
    return datetime.combine(day, time(), tzinfo=UTC) - timedelta(hours=utc_offset_h)


@dataclass
class DailyMax:
    """The running maximum of accepted temperatures over one station's climate day.

    Moves to a new day (and forgets the old maximum) when an observation or the
    clock crosses local standard midnight; observations of an earlier day are ignored.
    """

    utc_offset_h: int
    day: date | None = None
    max_tenths_f: int | None = None
    max_at: datetime | None = None
    latest_at: datetime | None = None
    """The newest observation seen this day, accepted by QC or not."""

    def roll_to(self, now: datetime) -> bool:
        """Start the climate day ``now`` falls in, if it is newer; True if the day changed."""
        today = climate_date(now, self.utc_offset_h)
        if self.day is not None and today <= self.day:
            return False
        self.day, self.max_tenths_f, self.max_at, self.latest_at = today, None, None, None
        return True

    def add(self, observation: TemperatureObservation) -> bool:
        """Take one observation; True if the day, the maximum or the latest time changed."""
        rolled = self.roll_to(observation.observed_at)
        if climate_date(observation.observed_at, self.utc_offset_h) != self.day:
            return False
        changed = rolled
        if self.latest_at is None or observation.observed_at > self.latest_at:
            self.latest_at, changed = observation.observed_at, True
        value = observation.tenths_f
        if value is not None and (self.max_tenths_f is None or value > self.max_tenths_f):
            self.max_tenths_f, self.max_at, changed = value, observation.observed_at, True
        return changed

    def add_all(self, observations: Iterable[TemperatureObservation]) -> bool:
        changed = False
        for observation in observations:
            changed = self.add(observation) or changed
        return changed


# --- the gridpoint forecast ----------------------------------------------------------------


def _period_tenths_f(period: Mapping[str, Any]) -> int | None:
    temperature = period.get("temperature")
    if isinstance(temperature, Mapping):  # the newer quantity form {value, unitCode}
        unit = str(temperature.get("unitCode", "")).rsplit(":", 1)[-1]
        value = temperature.get("value")
    else:
        unit = "degC" if period.get("temperatureUnit") == "C" else "degF"
        value = temperature
    if value is None:
        return None
    return celsius_to_tenths_f(value) if unit == "degC" else fahrenheit_to_tenths_f(value)


def parse_forecast_highs(forecast: Mapping[str, Any], utc_offset_h: int) -> dict[date, int]:
    """``/gridpoints/{wfo}/{x},{y}/forecast`` -> {climate date: daytime high in tenths °F}."""
    properties = forecast.get("properties")
    periods = properties.get("periods") if isinstance(properties, Mapping) else None
    if not isinstance(periods, list):
        raise WeatherFormatError("forecast has no periods")
    highs: dict[date, int] = {}
    for period in periods:
        if not isinstance(period, Mapping) or period.get("isDaytime") is not True:
            continue
        day = climate_date(parse_timestamp(period.get("startTime")), utc_offset_h)
        value = _period_tenths_f(period)
        if value is not None:
            highs.setdefault(day, value)
    return highs


def forecast_url_from_points(points: Mapping[str, Any]) -> str:
    """``/points/{lat},{lon}`` -> the gridpoint forecast URL."""
    properties = points.get("properties")
    url = properties.get("forecast") if isinstance(properties, Mapping) else None
    if not isinstance(url, str) or not url:
        raise WeatherFormatError("points response has no forecast URL")
    return url
