"""Fair-value models shared by live trading, paper trading and replay (pure, no I/O).

Each model turns the latest outside signal into a :class:`FairValue` (P(YES)
and a confidence in [0, 1]) or None when its inputs are missing or stale:
never a guess. See docs/fair-value.md.
"""

from shared.fairvalue.fed import DEFAULT_FED_CONFIG, FedModelConfig, fed_fair_value
from shared.fairvalue.model import FairValue
from shared.fairvalue.venue import (
    DEFAULT_VENUE_CONFIG,
    VenueExecution,
    VenueModelConfig,
    executable_buy,
    venue_fair_value,
)
from shared.fairvalue.weather import (
    DEFAULT_WEATHER_CONFIG,
    WeatherModelConfig,
    weather_fair_value,
)

__all__ = [
    "DEFAULT_FED_CONFIG",
    "DEFAULT_VENUE_CONFIG",
    "DEFAULT_WEATHER_CONFIG",
    "FairValue",
    "FedModelConfig",
    "VenueExecution",
    "VenueModelConfig",
    "WeatherModelConfig",
    "executable_buy",
    "fed_fair_value",
    "venue_fair_value",
    "weather_fair_value",
]
