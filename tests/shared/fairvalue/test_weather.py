"""The daily-high model: hand-worked cases, strike semantics, None on bad inputs, properties."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.fairvalue.weather import (
    DEFAULT_WEATHER_CONFIG,
    CalibrationDay,
    HighDistribution,
    WeatherModelConfig,
    calibration_score,
    fit_sigmas,
    high_distribution,
    market_date,
    remaining_fraction,
    strike_probability,
    weather_fair_value,
)
from shared.messages import MarketInfo, WeatherObservation

NS = 10**9
# KNYC is UTC-5 (standard time): the climate day 2026-01-15 runs 05:00Z to 05:00Z next day.
NOON_LST_NS = int(datetime(2026, 1, 15, 17, 0, tzinfo=UTC).timestamp()) * NS


def phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def market(
    ticker: str,
    strike_type: str,
    floor: float | None = None,
    cap: float | None = None,
    series: str = "KXHIGHNY",
) -> MarketInfo:
    return MarketInfo(
        market=ticker,
        event=ticker.rsplit("-", 1)[0],
        series=series,
        status="active",
        close_ts_ns=0,
        price_ranges=[],
        mutually_exclusive=True,
        strike_type=strike_type,
        floor_strike=floor,
        cap_strike=cap,
    )


def observation(
    max_tenths: int | None = 380,
    forecast_tenths: int | None = 420,
    observed_at_ns: int = NOON_LST_NS,
    station: str = "KNYC",
    local_date: str = "2026-01-15",
) -> WeatherObservation:
    return WeatherObservation(
        station=station,
        local_date=local_date,
        observed_max_tenths_f=max_tenths,
        forecast_high_tenths_f=forecast_tenths,
        observed_at_ns=observed_at_ns,
    )


ABOVE_40 = market("KXHIGHNY-26JAN15-T40", "greater", floor=40.0)


# --- hand-worked ---------------------------------------------------------------------------


def test_remaining_fraction_at_lst_noon_is_half() -> None:
    assert remaining_fraction(NOON_LST_NS, market_date(ABOVE_40.market), -5) == 0.5  # type: ignore[arg-type]


def test_greater_with_forecast_at_noon() -> None:
    # noon LST: remaining 0.5, sigma = 0.6 + (4.0 - 0.6) x 0.5 = 2.3; max 38 °F, forecast 42 °F
    # P(H > 40) = P(round(R) >= 41) = 1 - Phi((40.5 - 42) / 2.3) = 1 - Phi(-0.6522) = 0.74286
    fv = weather_fair_value(ABOVE_40, observation(), NOON_LST_NS)
    assert fv is not None
    assert fv.p_yes == pytest.approx(1 - phi((40.5 - 42) / 2.3), abs=1e-12)
    assert fv.p_yes == pytest.approx(0.74286, abs=1e-5)
    # confidence = 0.4 + (1 - 0.4) x (1 - 0.5) = 0.7, fresh report
    assert fv.confidence == pytest.approx(0.7)
    assert fv.model == "weather"
    assert "KNYC" in fv.inputs


def test_bracket_and_tails_with_forecast_at_noon() -> None:
    obs = observation()
    # B41.5 = 41-42 °F: Phi((42.5 - 42) / 2.3) - Phi((40.5 - 42) / 2.3) = 0.58605 - 0.25714
    bracket = weather_fair_value(
        market("KXHIGHNY-26JAN15-B41.5", "between", 41, 42), obs, NOON_LST_NS
    )
    assert bracket is not None
    assert bracket.p_yes == pytest.approx(0.32890, abs=1e-5)
    # less cap 39 = "38 or below": only H = 38, the observed max, i.e. R < 38.5
    # Phi((38.5 - 42) / 2.3) = Phi(-1.5217) = 0.06404
    low = weather_fair_value(market("KXHIGHNY-26JAN15-T39", "less", cap=39), obs, NOON_LST_NS)
    assert low is not None
    assert low.p_yes == pytest.approx(0.06404, abs=1e-5)
    # less cap 38 = "37 or below": below the observed 38, impossible
    gone = weather_fair_value(market("KXHIGHNY-26JAN15-T38", "less", cap=38), obs, NOON_LST_NS)
    assert gone is not None
    assert gone.p_yes == 0.0


def test_or_equal_strikes() -> None:
    dist = HighDistribution(observed_max_f=38, mean_f=42.0, sigma_f=2.3)
    # greater_or_equal 41 == greater 40; less_or_equal 40 == less 41
    assert strike_probability(dist, "greater_or_equal", 41.0, None) == dist.above(40)
    assert strike_probability(dist, "less_or_equal", None, 40.0) == dist.cdf(40)
    assert strike_probability(dist, "less", None, 41.0) == dist.cdf(40)
    # half-degree strikes: > 40.5 means >= 41; between 40.5 and 42.5 means 41..42
    assert strike_probability(dist, "greater", 40.5, None) == dist.above(40)
    assert strike_probability(dist, "between", 40.5, 42.5) == dist.between(41, 42)
    assert strike_probability(dist, "functional", 40.0, None) is None
    assert strike_probability(dist, "greater", None, 40.0) is None


def test_after_the_warm_hours_the_observed_max_replaces_the_forecast() -> None:
    # 18:00 LST: remaining 0.25, sigma = 0.6 + 3.4 x 0.25 = 1.45; max 38 °F, forecast 42 °F
    six_pm = NOON_LST_NS + 6 * 3600 * NS
    obs = observation(observed_at_ns=six_pm)
    # past 17:00 R is centred on 38: 1 - Phi((40.5 - 38) / 1.45) = 1 - Phi(1.7241) = 0.04234
    fv = weather_fair_value(ABOVE_40, obs, six_pm)
    assert fv is not None
    assert fv.p_yes == pytest.approx(0.04234, abs=1e-5)
    # the literal form (forecast all day): 1 - Phi((40.5 - 42) / 1.45) = 0.84954
    literal = WeatherModelConfig(forecast_until_hour=None)
    fv = weather_fair_value(ABOVE_40, obs, six_pm, literal)
    assert fv is not None
    assert fv.p_yes == pytest.approx(0.84954, abs=1e-5)


def test_without_forecast_uses_observed_max_wide_and_less_confident() -> None:
    # sigma = 0.6 + (8.0 - 0.6) x 0.5 = 4.3 around the observed 38 °F
    # P(H > 40) = 1 - Phi((40.5 - 38) / 4.3) = 1 - Phi(0.5814) = 0.28049
    fv = weather_fair_value(ABOVE_40, observation(forecast_tenths=None), NOON_LST_NS)
    assert fv is not None
    assert fv.p_yes == pytest.approx(0.28049, abs=1e-5)
    assert fv.confidence == pytest.approx(0.7 * 0.5)


def test_observed_max_rounds_like_the_cli() -> None:
    # 40.5 °F rounds up to 41 > 40: YES is certain whatever the forecast
    fv = weather_fair_value(ABOVE_40, observation(max_tenths=405, forecast_tenths=300), NOON_LST_NS)
    assert fv is not None
    assert fv.p_yes == 1.0
    fv = weather_fair_value(ABOVE_40, observation(max_tenths=404, forecast_tenths=300), NOON_LST_NS)
    assert fv is not None
    assert fv.p_yes < 0.01


def test_confidence_decays_with_report_age_then_none() -> None:
    # 5400 s old: freshness = (7200 - 5400) / (7200 - 4500) = 2/3; 0.7 x 2/3
    old = observation(observed_at_ns=NOON_LST_NS - 5400 * NS)
    fv = weather_fair_value(ABOVE_40, old, NOON_LST_NS)
    assert fv is not None
    assert fv.confidence == pytest.approx(0.7 * 2 / 3)
    stale = observation(observed_at_ns=NOON_LST_NS - 7200 * NS)
    assert weather_fair_value(ABOVE_40, stale, NOON_LST_NS) is None


def test_confidence_grows_as_the_day_ends() -> None:
    morning = NOON_LST_NS - 5 * 3600 * NS
    early = weather_fair_value(ABOVE_40, observation(observed_at_ns=morning), morning)
    late = weather_fair_value(ABOVE_40, observation(), NOON_LST_NS)
    assert early is not None and late is not None
    assert early.confidence < late.confidence


@pytest.mark.parametrize(
    ("obs", "kwargs", "info"),
    [
        (None, {}, ABOVE_40),
        (observation(max_tenths=None), {}, ABOVE_40),
        (observation(), {"feed_fresh": False}, ABOVE_40),
        (observation(local_date="2026-01-14"), {}, ABOVE_40),
        (observation(station="KXXX"), {}, ABOVE_40),
        (observation(station="KMDW"), {}, ABOVE_40),  # Chicago's report for a New York market
        (observation(), {}, market("KXHIGHNY-26JAN15-X", "custom", 40.0)),
        (observation(), {}, market("KXHIGHNY-NODATE", "greater", 40.0)),
    ],
)
def test_no_value_without_good_inputs(
    obs: WeatherObservation | None, kwargs: dict[str, bool], info: MarketInfo
) -> None:
    assert weather_fair_value(info, obs, NOON_LST_NS, **kwargs) is None  # type: ignore[arg-type]


def test_unknown_station_with_explicit_offset() -> None:
    obs = observation(station="KXXX")
    info = market("KXHIGHXYZ-26JAN15-T40", "greater", floor=40.0, series="KXHIGHXYZ")
    assert weather_fair_value(info, obs, NOON_LST_NS) is None
    assert weather_fair_value(info, obs, NOON_LST_NS, utc_offset_h=-5) is not None


def test_market_date() -> None:
    assert str(market_date("KXHIGHNY-25DEC05-T37")) == "2025-12-05"
    assert str(market_date("KXHIGHNYABV-26MAY11-T70")) == "2026-05-11"
    assert market_date("KXHIGHNY-25XYZ05-T37") is None
    assert market_date("KXHIGHNY-25FEB30-T37") is None


def test_config_rejects_inverted_ages() -> None:
    with pytest.raises(ValueError, match="full_confidence_age_s"):
        WeatherModelConfig(full_confidence_age_s=8000, stale_after_s=7200)


# --- properties ----------------------------------------------------------------------------

temperatures = st.integers(min_value=-20, max_value=115)
forecasts = st.one_of(st.none(), st.floats(min_value=-20, max_value=115))
fractions = st.floats(min_value=0.0, max_value=1.0)


@settings(max_examples=200, deadline=None)
@given(observed=temperatures, forecast=forecasts, remaining=fractions, k=temperatures)
def test_p_above_is_non_increasing_in_the_strike(
    observed: int, forecast: float | None, remaining: float, k: int
) -> None:
    dist = high_distribution(observed, forecast, remaining)
    assert 0.0 <= dist.above(k + 1) <= dist.above(k) <= 1.0


@settings(max_examples=200, deadline=None)
@given(
    observed=temperatures,
    forecast=forecasts,
    remaining=fractions,
    low_edge=st.integers(min_value=-30, max_value=110),
    widths=st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=8),
)
def test_a_contiguous_exhaustive_ladder_sums_to_one(
    observed: int, forecast: float | None, remaining: float, low_edge: int, widths: list[int]
) -> None:
    # Kalshi's layout: "< low_edge", brackets B<a+0.5> with floor a and cap b, "> last cap"
    dist = high_distribution(observed, forecast, remaining)
    total = strike_probability(dist, "less", None, float(low_edge)) or 0.0
    a = low_edge
    for width in widths:
        total += strike_probability(dist, "between", float(a), float(a + width - 1)) or 0.0
        a += width
    total += strike_probability(dist, "greater", float(a - 1), None) or 0.0
    assert total == pytest.approx(1.0, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    observed_tenths=st.integers(min_value=-200, max_value=1150),
    forecast_tenths=st.one_of(st.none(), st.integers(min_value=-200, max_value=1150)),
    late_s=st.integers(min_value=0, max_value=2 * 3600),
    below=st.integers(min_value=1, max_value=30),
)
def test_late_with_observed_max_above_the_strike_yes_is_certain(
    observed_tenths: int, forecast_tenths: int | None, late_s: int, below: int
) -> None:
    # the last two hours of 2026-01-15 LST (ends 05:00Z on the 16th)
    now = int(datetime(2026, 1, 16, 5, 0, tzinfo=UTC).timestamp()) * NS - late_s * NS
    observed_f = math.floor(observed_tenths / 10 + 0.5)
    strike = observed_f - below
    info = market(f"KXHIGHNY-26JAN15-T{strike}", "greater", floor=float(strike))
    obs = observation(observed_tenths, forecast_tenths, observed_at_ns=now)
    fv = weather_fair_value(info, obs, now)
    assert fv is not None
    assert fv.p_yes == 1.0


# --- calibration ---------------------------------------------------------------------------


def synthetic_day(high_f: int, forecast_f: int | None) -> CalibrationDay:
    """A day rising from high - 15 at 03:00 to ``high_f`` at 15:00, reported hourly."""
    path = [
        (float(h), round(10 * (high_f - 7.5 + 7.5 * math.cos((h - 15) / 24 * 2 * math.pi))))
        for h in range(24)
    ]
    return CalibrationDay(
        forecast_high_tenths_f=None if forecast_f is None else forecast_f * 10,
        path=path,
        actual_high_f=high_f,
    )


def test_calibration_scores_a_good_forecast_better() -> None:
    days = [synthetic_day(70 + i, 70 + i) for i in range(5)]
    right = calibration_score(days)
    wrong = calibration_score([synthetic_day(70 + i, 80 + i) for i in range(5)])
    assert right.checkpoints == wrong.checkpoints == 5 * 24
    assert right.log_loss < wrong.log_loss
    assert right.brier < wrong.brier
    assert 0.0 <= right.brier <= 1.0


def test_fit_sigmas_prefers_tight_spreads_when_forecasts_are_exact() -> None:
    days = [synthetic_day(60 + 3 * i, 60 + 3 * i) for i in range(4)]
    best, score = fit_sigmas(days, [1.0, 4.0, 8.0], [0.3, 2.0])
    assert (best.sigma_start_f, best.sigma_end_f) == (1.0, 0.3)
    assert score.log_loss == calibration_score(days, best).log_loss
    assert best.stale_after_s == DEFAULT_WEATHER_CONFIG.stale_after_s


def test_calibration_needs_checkpoints() -> None:
    with pytest.raises(ValueError, match="no checkpoints"):
        calibration_score([])
