"""Fair value of Kalshi's daily-high markets (KXHIGH*) from the observed maximum and forecast.

The market settles on the NWS CLI high H, a whole °F, for the LST climate day.
H = max(M, round(R)) where M is the maximum observed so far (whole °F) and R
the rest of the day's maximum, modelled as Normal(forecast high, sigma(t)) with

    sigma(t) = sigma_end + (sigma_start - sigma_end) x remaining_fraction

(``remaining_fraction``: the part of the LST climate day still ahead, 1 at
midnight, 0 at the next). Once the day's warm hours are past
(``forecast_until_hour``, LST) the forecast says little about the rest of the
day, so R is centred on the observed maximum instead (None keeps the forecast
all day; calibration on the simulator prefers the switch). Rounding R to
whole degrees is the continuity correction, P(round(R) <= k) =
Phi((k + 0.5 - mean) / sigma), hence

    P(H <= k) = 0                           for k < M,
    P(H <= k) = Phi((k + 0.5 - mean) / sigma) for k >= M.

Without a forecast the mean is M itself with a wider spread and a lower
confidence; without an observation, or from a stale feed, there is no value.
See docs/fair-value.md for the calibration on the simulator.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.fairvalue.model import FairValue, age_s, clamp_probability, freshness
from shared.messages import MarketInfo, WeatherObservation
from shared.weather import STATIONS_BY_ID, STATIONS_BY_SERIES, climate_day_start, whole_degrees_f

MODEL: Final = "weather"
NS_PER_DAY: Final = 86_400 * 10**9
_TICKER_DATE = re.compile(r"-(\d{2})([A-Z]{3})(\d{2})(?:-|$)")
_MONTHS: Final = (
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
)  # fmt: skip
_LOG_FLOOR: Final = 1e-12
"""log-loss of an outcome the model gave probability 0 is capped at -ln(1e-12)."""


class WeatherModelConfig(BaseModel):
    """Parameters of the daily-high model (defaults to be calibrated, docs/fair-value.md)."""

    model_config = ConfigDict(frozen=True)

    sigma_start_f: float = Field(4.0, gt=0, description="spread of R at LST midnight, °F")
    sigma_end_f: float = Field(0.6, gt=0, description="spread of R at the end of the day, °F")
    no_forecast_sigma_start_f: float = Field(
        8.0, gt=0, description="spread at midnight when R is centred on the observed max"
    )
    forecast_until_hour: float | None = Field(
        17.0,
        ge=0,
        le=24,
        description="LST hour after which R is centred on the observed max, not the forecast",
    )
    confidence_start: float = Field(0.4, ge=0, le=1, description="confidence at LST midnight")
    no_forecast_confidence: float = Field(
        0.5, ge=0, le=1, description="confidence factor without a forecast"
    )
    full_confidence_age_s: float = Field(
        4500, ge=0, description="reports this old keep full confidence (hourly METAR + lag)"
    )
    stale_after_s: float = Field(7200, gt=0, description="older newest report: no value")

    @model_validator(mode="after")
    def _ages_ordered(self) -> Self:
        if self.full_confidence_age_s >= self.stale_after_s:
            raise ValueError("full_confidence_age_s must be below stale_after_s")
        return self


DEFAULT_WEATHER_CONFIG: Final = WeatherModelConfig()


def _phi(x: float) -> float:
    """Standard normal CDF; erfc keeps the tails precise."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _phi_upper(x: float) -> float:
    """1 - Phi(x) without cancellation."""
    return 0.5 * math.erfc(x / math.sqrt(2.0))


@dataclass(frozen=True, slots=True)
class HighDistribution:
    """The settling high H = max(observed_max_f, round(R)), R ~ Normal(mean_f, sigma_f)."""

    observed_max_f: int
    mean_f: float
    sigma_f: float

    def cdf(self, k: int) -> float:
        """P(H <= k)."""
        if k < self.observed_max_f:
            return 0.0
        return _phi((k + 0.5 - self.mean_f) / self.sigma_f)

    def above(self, k: int) -> float:
        """P(H > k)."""
        if k < self.observed_max_f:
            return 1.0
        return _phi_upper((k + 0.5 - self.mean_f) / self.sigma_f)

    def between(self, low: int, high: int) -> float:
        """P(low <= H <= high), whole degrees, both ends included."""
        if low > high:
            return 0.0
        return clamp_probability(self.cdf(high) - self.cdf(low - 1))

    def pmf(self, k: int) -> float:
        return self.between(k, k)


def sigma_f(remaining_fraction: float, start_f: float, end_f: float) -> float:
    """The spread of R: linear in the fraction of the climate day remaining."""
    return end_f + (start_f - end_f) * min(1.0, max(0.0, remaining_fraction))


def high_distribution(
    observed_max_f: int,
    forecast_high_f: float | None,
    remaining_fraction: float,
    config: WeatherModelConfig = DEFAULT_WEATHER_CONFIG,
) -> HighDistribution:
    """The model's distribution of the CLI high, from whole-°F observed max and the forecast."""
    if forecast_high_f is None:
        spread = sigma_f(remaining_fraction, config.no_forecast_sigma_start_f, config.sigma_end_f)
        return HighDistribution(observed_max_f, float(observed_max_f), spread)
    spread = sigma_f(remaining_fraction, config.sigma_start_f, config.sigma_end_f)
    hours_elapsed = 24.0 * (1.0 - remaining_fraction)
    past_peak = config.forecast_until_hour is not None and (
        hours_elapsed >= config.forecast_until_hour
    )
    mean = float(observed_max_f) if past_peak else forecast_high_f
    return HighDistribution(observed_max_f, mean, spread)


def strike_probability(
    distribution: HighDistribution,
    strike_type: str,
    floor_strike: float | None,
    cap_strike: float | None,
) -> float | None:
    """P(YES) under Kalshi's strike semantics (protocols.md 4.3); None for other kinds."""
    if strike_type == "greater" and floor_strike is not None:
        return distribution.above(math.floor(floor_strike))
    if strike_type == "greater_or_equal" and floor_strike is not None:
        return distribution.above(math.ceil(floor_strike) - 1)
    if strike_type == "less" and cap_strike is not None:
        return distribution.cdf(math.ceil(cap_strike) - 1)
    if strike_type == "less_or_equal" and cap_strike is not None:
        return distribution.cdf(math.floor(cap_strike))
    if strike_type == "between" and floor_strike is not None and cap_strike is not None:
        return distribution.between(math.ceil(floor_strike), math.floor(cap_strike))
    return None


def market_date(ticker: str) -> date | None:
    """``KXHIGHNY-25DEC05-T37`` -> 2025-12-05 (the first ``-YYMMMDD`` part)."""
    match = _TICKER_DATE.search(ticker)
    if match is None or match.group(2) not in _MONTHS:
        return None
    year, month, day = int(match.group(1)), _MONTHS.index(match.group(2)) + 1, int(match.group(3))
    try:
        return date(2000 + year, month, day)
    except ValueError:
        return None


def remaining_fraction(now_ns: int, day: date, utc_offset_h: int) -> float:
    """The part of the LST climate day ``day`` still ahead at ``now_ns``, in [0, 1]."""
    start_ns = int(climate_day_start(day, utc_offset_h).timestamp()) * 10**9
    return min(1.0, max(0.0, 1.0 - (now_ns - start_ns) / NS_PER_DAY))


def _station_offset(station_id: str) -> int | None:
    station = STATIONS_BY_ID.get(station_id)
    return None if station is None else station.utc_offset_h


def _station_matches(market: MarketInfo, station: str) -> bool:
    known = STATIONS_BY_SERIES.get(market.series)
    return known is None or known.station == station


def _confidence(
    remaining: float, has_forecast: bool, fresh: float, cfg: WeatherModelConfig
) -> float:
    by_time = cfg.confidence_start + (1.0 - cfg.confidence_start) * (1.0 - remaining)
    return by_time * (1.0 if has_forecast else cfg.no_forecast_confidence) * fresh


def weather_fair_value(
    market: MarketInfo,
    observation: WeatherObservation | None,
    now_ns: int,
    config: WeatherModelConfig = DEFAULT_WEATHER_CONFIG,
    *,
    utc_offset_h: int | None = None,
    feed_fresh: bool = True,
) -> FairValue | None:
    """P(YES) of one daily-high market from its station's latest observation, or None.

    None when there is no observation of the market's own climate day, no
    observed maximum yet, the feed is stale (``feed_fresh`` False or the newest
    report older than ``stale_after_s``), the station is unknown (pass
    ``utc_offset_h`` for stations outside :data:`shared.weather.STATIONS`) or
    the strike kind is not one we price.
    """
    if observation is None or observation.observed_max_tenths_f is None or not feed_fresh:
        return None
    day = market_date(market.market)
    offset = utc_offset_h if utc_offset_h is not None else _station_offset(observation.station)
    if day is None or offset is None or day.isoformat() != observation.local_date:
        return None
    fresh = freshness(
        age_s(now_ns, observation.observed_at_ns),
        config.full_confidence_age_s,
        config.stale_after_s,
    )
    if fresh is None or not _station_matches(market, observation.station):
        return None
    remaining = remaining_fraction(now_ns, day, offset)
    observed = whole_degrees_f(observation.observed_max_tenths_f)
    forecast = observation.forecast_high_tenths_f
    forecast_f = None if forecast is None else forecast / 10
    distribution = high_distribution(observed, forecast_f, remaining, config)
    p = strike_probability(distribution, market.strike_type, market.floor_strike, market.cap_strike)
    if p is None:
        return None
    return FairValue(
        market=market.market,
        p_yes=clamp_probability(p),
        confidence=_confidence(remaining, forecast is not None, fresh, config),
        model=MODEL,
        inputs=(
            f"{observation.station} {observation.local_date} max={observed}F "
            f"forecast={forecast_f if forecast_f is not None else '-'}F "
            f"sigma={distribution.sigma_f:.2f} remaining={remaining:.3f}"
        ),
    )


# --- calibration -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CalibrationDay:
    """One station-day as the simulator (or a recorded day) shows it.

    ``path``: (hours since LST midnight, temperature in tenths °F) in time
    order, each a report the ingest would have seen; ``actual_high_f`` the
    settling CLI value (``/sim/truth`` ``hidden.weather[].settles_at_f``).
    """

    forecast_high_tenths_f: int | None
    path: Sequence[tuple[float, int]]
    actual_high_f: int


@dataclass(frozen=True, slots=True)
class CalibrationScore:
    """Mean log-loss of P(H = actual) and mean Brier of P(H > k) over a strike window."""

    log_loss: float
    brier: float
    checkpoints: int


def _checkpoints(day: CalibrationDay) -> Iterable[tuple[int, float]]:
    """(observed max so far in whole °F, remaining fraction) after each report."""
    running: int | None = None
    for hours, tenths in day.path:
        running = tenths if running is None else max(running, tenths)
        yield whole_degrees_f(running), 1.0 - hours / 24.0


def _ladder_brier(dist: HighDistribution, actual_f: int, span_f: int) -> float:
    strikes = range(actual_f - span_f, actual_f + span_f + 1)
    return sum((dist.above(k) - (actual_f > k)) ** 2 for k in strikes) / len(strikes)


def calibration_score(
    days: Iterable[CalibrationDay],
    config: WeatherModelConfig = DEFAULT_WEATHER_CONFIG,
    *,
    strike_span_f: int = 10,
) -> CalibrationScore:
    """Score the model at every report of every day (lower is better for both figures).

    Brier averages over the ``greater`` strikes actual - span .. actual + span,
    the rungs a threshold ladder around the outcome would have.
    """
    log_loss = brier = 0.0
    count = 0
    for day in days:
        forecast = None if day.forecast_high_tenths_f is None else day.forecast_high_tenths_f / 10
        for observed, remaining in _checkpoints(day):
            dist = high_distribution(observed, forecast, remaining, config)
            log_loss -= math.log(max(dist.pmf(day.actual_high_f), _LOG_FLOOR))
            brier += _ladder_brier(dist, day.actual_high_f, strike_span_f)
            count += 1
    if count == 0:
        raise ValueError("no checkpoints to score")
    return CalibrationScore(log_loss / count, brier / count, count)


def fit_sigmas(
    days: Sequence[CalibrationDay],
    sigma_starts_f: Iterable[float],
    sigma_ends_f: Iterable[float],
    base: WeatherModelConfig = DEFAULT_WEATHER_CONFIG,
) -> tuple[WeatherModelConfig, CalibrationScore]:
    """Grid search of (sigma_start, sigma_end) minimising the log-loss."""
    ends = list(sigma_ends_f)
    best: tuple[WeatherModelConfig, CalibrationScore] | None = None
    for start in sigma_starts_f:
        for end in ends:
            candidate = WeatherModelConfig.model_validate(
                {**base.model_dump(), "sigma_start_f": start, "sigma_end_f": end}
            )
            score = calibration_score(days, candidate)
            if best is None or score.log_loss < best[1].log_loss:
                best = (candidate, score)
    if best is None:
        raise ValueError("empty sigma grid")
    return best
