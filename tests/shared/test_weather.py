"""NWS parsing, QC, °C -> tenths °F, the LST climate day and its running maximum."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.weather import (
    STATIONS,
    STATIONS_BY_ID,
    STATIONS_BY_SERIES,
    DailyMax,
    TemperatureObservation,
    WeatherFormatError,
    celsius_to_tenths_f,
    climate_date,
    climate_day_start,
    fahrenheit_to_tenths_f,
    forecast_url_from_points,
    parse_forecast_highs,
    parse_observation,
    parse_observations,
    qc_passed,
    quantity_tenths_f,
    whole_degrees_f,
)

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "nws"


def recorded(name: str) -> Any:
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"recorded NWS response {path} is absent (it lives outside the project)")
    return json.loads(path.read_text())


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def feature(station: str, timestamp: str, value: Any, qc: Any = "V") -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {
            "stationId": station,
            "timestamp": timestamp,
            "temperature": {"unitCode": "wmoUnit:degC", "value": value, "qualityControl": qc},
        },
    }


def obs(timestamp: str, tenths_f: int | None, station: str = "KNYC") -> TemperatureObservation:
    return TemperatureObservation(station, utc(timestamp), tenths_f, "V")


# --- recorded responses ---------------------------------------------------------------------


def test_recorded_latest_observation() -> None:
    observation = parse_observation(recorded("stations_observations_latest.json"))
    assert observation.station == "KFLL"  # from the station URL: this payload has no stationId
    assert observation.observed_at == datetime(2022, 3, 2, 23, 53, tzinfo=UTC)
    assert observation.qc == "V"
    assert observation.tenths_f == 730  # 22.8 °C = 73.04 °F


def test_recorded_collection_with_old_qc_prefix_and_a_null() -> None:
    single = parse_observations(recorded("stations_observations.json"))
    assert [(o.station, o.tenths_f, o.qc) for o in single] == [("KFLL", 500, "qc:V")]
    multiple = parse_observations(recorded("stations_observations_multiple.json"))
    assert sorted(o.tenths_f is None for o in multiple) == [False, True]  # the null value
    assert [o.tenths_f for o in multiple if o.tenths_f is not None] == [500]


def test_recorded_points_give_the_forecast_url() -> None:
    url = forecast_url_from_points(recorded("points.json"))
    assert url == "https://api.weather.gov/gridpoints/TAE/58,65/forecast"


# --- quality control ------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["V", "C", "S", "G", "qc:V", "v"])
def test_qc_accepts_passed_codes(code: str) -> None:
    assert qc_passed(code)
    assert parse_observation(feature("KNYC", "2026-07-15T12:00:00+00:00", 20.0, code)).tenths_f


@pytest.mark.parametrize("code", ["X", "Q", "B", "Z", "T", "qc:Z", "", None, 5])
def test_qc_rejects_failed_unchecked_and_missing_codes(code: Any) -> None:
    assert not qc_passed(code)
    observation = parse_observation(feature("KNYC", "2026-07-15T12:00:00+00:00", 20.0, code))
    assert observation.tenths_f is None


def test_qc_rejects_null_values_and_unknown_units() -> None:
    assert (
        quantity_tenths_f({"unitCode": "wmoUnit:degC", "value": None, "qualityControl": "V"})
        is None
    )
    assert quantity_tenths_f({"unitCode": "wmoUnit:K", "value": 290, "qualityControl": "V"}) is None
    assert quantity_tenths_f(None) is None
    assert (
        quantity_tenths_f({"unitCode": "wmoUnit:degF", "value": 71.96, "qualityControl": "V"})
        == 720
    )


def test_a_rejected_observation_cannot_raise_the_maximum() -> None:
    daily = DailyMax(-5)
    daily.add(parse_observation(feature("KNYC", "2026-07-15T16:00:00+00:00", 30.0)))
    daily.add(parse_observation(feature("KNYC", "2026-07-15T17:00:00+00:00", 45.0, "X")))
    assert daily.max_tenths_f == 860
    assert daily.latest_at == utc("2026-07-15T17:00:00+00:00")  # seen, though not used


# --- units ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("celsius", "tenths_f"),
    [
        (0, 320),
        (100, 2120),
        (-40, -400),
        (22.8, 730),  # 73.04
        (22.2, 720),  # 71.96: a whole 72 °F reported by ASOS as 22.2 °C comes back as 72.0
        (4.4000000000000004, 399),  # float noise in the JSON: 39.92
        (-17.8, 0),  # -0.04
        (0.25, 325),  # 32.45: halves round up
        (-0.25, 316),  # 31.55: up is toward +infinity
        ("12.5", 545),
    ],
)
def test_celsius_to_tenths_f(celsius: Any, tenths_f: int) -> None:
    assert celsius_to_tenths_f(celsius) == tenths_f


def test_fahrenheit_and_whole_degrees() -> None:
    assert fahrenheit_to_tenths_f(91) == 910
    assert [whole_degrees_f(t) for t in (724, 725, 730, -5, -6, -15)] == [72, 73, 73, 0, -1, -1]


@pytest.mark.parametrize("bad", [True, None, "warm", float("nan"), [1]])
def test_bad_temperatures_are_format_errors(bad: Any) -> None:
    with pytest.raises(WeatherFormatError):
        celsius_to_tenths_f(bad)


# --- the climate day ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "offset", "day"),
    [
        ("2026-01-15T04:59:00+00:00", -5, date(2026, 1, 14)),  # 23:59 EST
        ("2026-01-15T05:00:00+00:00", -5, date(2026, 1, 15)),  # midnight EST starts the day
        ("2026-07-15T04:30:00+00:00", -5, date(2026, 7, 14)),  # 00:30 EDT is still the 14th
        ("2026-07-15T05:10:00+00:00", -5, date(2026, 7, 15)),  # 01:10 EDT: the 15th begins
        ("2026-07-15T06:59:00+00:00", -7, date(2026, 7, 14)),  # Phoenix, no DST
        ("2026-03-08T07:30:00+00:00", -5, date(2026, 3, 8)),  # the spring-forward morning
    ],
)
def test_climate_date(instant: str, offset: int, day: date) -> None:
    assert climate_date(utc(instant), offset) == day


def test_climate_day_start_is_local_standard_midnight() -> None:
    assert climate_day_start(date(2026, 7, 15), -5) == utc("2026-07-15T05:00:00+00:00")
    assert climate_day_start(date(2026, 1, 15), -8) == utc("2026-01-15T08:00:00+00:00")


def test_daily_max_across_midnight_lst_on_a_dst_date() -> None:
    daily = DailyMax(-5)  # New York in July: the climate day is 01:00-00:59 EDT
    assert daily.add(obs("2026-07-14T20:00:00+00:00", 860))
    assert daily.add(obs("2026-07-15T04:51:00+00:00", 880))  # 00:51 EDT: still the 14th
    assert (daily.day, daily.max_tenths_f) == (date(2026, 7, 14), 880)
    assert daily.add(obs("2026-07-15T05:51:00+00:00", 770))  # 01:51 EDT: the 15th
    assert (daily.day, daily.max_tenths_f) == (date(2026, 7, 15), 770)
    assert daily.max_at == utc("2026-07-15T05:51:00+00:00")
    assert not daily.add(obs("2026-07-15T04:55:00+00:00", 990))  # late report of the 14th
    assert daily.max_tenths_f == 770
    assert daily.add(obs("2026-07-15T18:51:00+00:00", 912))
    assert not daily.add(obs("2026-07-15T18:51:00+00:00", 912))  # the same report again
    assert daily.add(obs("2026-07-15T19:51:00+00:00", None))  # newer, though without a value
    assert (daily.max_tenths_f, daily.max_at) == (912, utc("2026-07-15T18:51:00+00:00"))


def test_daily_max_across_midnight_in_winter() -> None:
    daily = DailyMax(-6)  # Chicago in January: midnight CST is 06:00Z
    daily.add_all([obs("2026-01-20T05:53:00+00:00", 350), obs("2026-01-20T06:53:00+00:00", 300)])
    assert (daily.day, daily.max_tenths_f) == (date(2026, 1, 20), 300)


def test_the_clock_alone_rolls_the_day() -> None:
    daily = DailyMax(-5)
    daily.add(obs("2026-07-15T18:00:00+00:00", 900))
    assert not daily.roll_to(utc("2026-07-16T04:59:00+00:00"))
    assert daily.roll_to(utc("2026-07-16T05:00:00+00:00"))
    assert (daily.day, daily.max_tenths_f, daily.latest_at) == (date(2026, 7, 16), None, None)


# --- the forecast ---------------------------------------------------------------------------


def period(start: str, daytime: bool, temperature: Any, unit: str = "F") -> dict[str, Any]:
    return {
        "name": "x",
        "startTime": start,
        "isDaytime": daytime,
        "temperature": temperature,
        "temperatureUnit": unit,
    }


def test_forecast_daytime_highs_by_climate_date() -> None:
    forecast = {
        "properties": {
            "periods": [
                period("2026-07-15T14:00:00-04:00", True, 91),
                period("2026-07-15T18:00:00-04:00", False, 75),
                period("2026-07-16T06:00:00-04:00", True, 88),
                period(
                    "2026-07-17T06:00:00-04:00", True, {"unitCode": "wmoUnit:degC", "value": 30}
                ),
                period("2026-07-18T06:00:00-04:00", True, 31, unit="C"),
            ]
        }
    }
    assert parse_forecast_highs(forecast, -5) == {
        date(2026, 7, 15): 910,
        date(2026, 7, 16): 880,
        date(2026, 7, 17): 860,
        date(2026, 7, 18): 878,
    }


def test_forecast_without_periods_is_a_format_error() -> None:
    with pytest.raises(WeatherFormatError):
        parse_forecast_highs({"properties": {}}, -5)


# --- stations -------------------------------------------------------------------------------


def test_station_table_matches_the_reference() -> None:
    assert len(STATIONS) == 20
    assert STATIONS_BY_SERIES["KXHIGHNY"].station == "KNYC"
    assert STATIONS_BY_SERIES["KXHIGHCHI"].station == "KMDW"  # Midway, not O'Hare
    assert STATIONS_BY_SERIES["KXHIGHTHOU"].station == "KHOU"  # Hobby
    assert STATIONS_BY_SERIES["KXHIGHAUS"].station == "KAUS"
    assert {s.utc_offset_h for s in STATIONS} == {-5, -6, -7, -8}
    assert STATIONS_BY_ID["KPHX"].utc_offset_h == -7
    assert STATIONS_BY_ID["KLAX"].utc_offset_h == -8


def test_observation_without_station_or_timestamp_is_a_format_error() -> None:
    with pytest.raises(WeatherFormatError):
        parse_observation({"properties": {"timestamp": "2026-07-15T12:00:00+00:00"}})
    with pytest.raises(WeatherFormatError):
        parse_observation({"properties": {"stationId": "KNYC", "timestamp": "noon"}})
    with pytest.raises(WeatherFormatError):
        parse_observation({"properties": {"stationId": "KNYC", "timestamp": "2026-07-15T12:00"}})
