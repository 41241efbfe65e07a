"""A companion NWS feed: ``api.weather.gov``-shaped observations of the hidden temperatures.

Mounted under ``/nws`` so the ingest's NWS poller can use
``http://HOST:PORT/nws`` as its base URL offline. Like NWS it answers 403
without a ``User-Agent``. Temperatures are the scenario's hidden path in °C,
quality-controlled ``V``, one observation every 5 minutes up to now.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from fastapi import APIRouter, Request, Response

from services.simulator.rest import json_response
from services.simulator.scenarios import CityDay, Scenario
from services.simulator.state import SimState

OBSERVATION_EVERY_MS: Final = 5 * 60_000
router = APIRouter(prefix="/nws")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


def _day_for(scenario: Scenario, station: str, now_ms: int) -> CityDay | None:
    days = [d for d in scenario.city_days if d.city.station == station and d.day_start_ms <= now_ms]
    return max(days, key=lambda d: d.day_start_ms) if days else None


def observation(day: CityDay, at_ms: int) -> dict[str, Any]:
    celsius = round((day.temperature_f(at_ms) - 32) * 5 / 9, 1)
    url = f"https://api.weather.gov/stations/{day.city.station}"
    return {
        "id": f"{url}/observations/{_iso(at_ms)}",
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [day.city.lon, day.city.lat]},
        "properties": {
            "@id": f"{url}/observations/{_iso(at_ms)}",
            "station": url,
            "stationId": day.city.station,
            "timestamp": _iso(at_ms),
            "textDescription": "Clear",
            "temperature": {"unitCode": "wmoUnit:degC", "value": celsius, "qualityControl": "V"},
            "maxTemperatureLast24Hours": {"unitCode": "wmoUnit:degC", "value": None},
        },
    }


def _guard(request: Request, station: str) -> tuple[SimState, CityDay] | Response:
    if not request.headers.get("user-agent"):
        return json_response({"status": 403, "detail": "A User-Agent is required"}, 403)
    state: SimState = request.app.state.sim
    day = _day_for(state.scenario, station, state.clock_ms()) if state.scenario else None
    if day is None:
        return json_response({"status": 404, "detail": f"no station {station}"}, 404)
    return state, day


@router.get("/stations/{station}/observations/latest")
async def latest(station: str, request: Request) -> Response:
    found = _guard(request, station)
    if isinstance(found, Response):
        return found
    state, day = found
    now = state.clock_ms()
    return json_response(observation(day, now - now % OBSERVATION_EVERY_MS))


@router.get("/stations/{station}/observations")
async def observations(station: str, request: Request) -> Response:
    found = _guard(request, station)
    if isinstance(found, Response):
        return found
    state, day = found
    now = state.clock_ms()
    limit = min(int(request.query_params.get("limit", 50)), 500)
    newest = now - now % OBSERVATION_EVERY_MS
    stamps = [newest - i * OBSERVATION_EVERY_MS for i in range(limit)]
    features = [observation(day, ms) for ms in stamps if ms >= day.day_start_ms]
    return json_response({"type": "FeatureCollection", "features": features})
