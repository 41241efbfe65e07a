"""The latest outside observations and the fair value each model gives a market.

Pure state: observations go in (from the ``ext`` stream, or from a replay),
fair values come out. A model whose feed is stale gives no value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

from shared.fairvalue import FairValue, fed_fair_value, venue_fair_value, weather_fair_value
from shared.fairvalue.fed import DECISION_SERIES, THRESHOLD_SERIES
from shared.fairvalue.weather import market_date
from shared.fedwatch import kalshi_meeting_code
from shared.messages import FedOdds, FeedStatus, MarketInfo, Observation, VenueBook
from shared.messages import WeatherObservation as Weather
from shared.strategy_config import StrategySettings
from shared.weather import STATIONS_BY_SERIES

FED_FEED: Final = "fed"
VENUE_FEED: Final = "polymarket"


def weather_feed(station: str) -> str:
    return f"nws:{station}"


@dataclass(frozen=True, slots=True)
class Valuation:
    """A fair value and the version of the inputs it came from (for the signal id)."""

    fair: FairValue
    version: str

    @property
    def kind(self) -> str:
        """Signal kind: another venue's price makes a cross-venue trade, others a model one."""
        return "cross_venue" if self.fair.model == "venue" else "model"


class Observations:
    """What the outside world last said, per station, meeting and mapped market."""

    def __init__(self, settings: StrategySettings, current_upper_bp: int | None = None) -> None:
        self.settings = settings
        self.current_upper_bp = current_upper_bp
        self.weather: dict[tuple[str, str], Weather] = {}
        self.fed: dict[str, FedOdds] = {}
        """By Kalshi meeting code (``25DEC``)."""
        self.venue: dict[str, VenueBook] = {}
        self.feeds: dict[str, bool] = {}

    def apply(self, observation: Observation) -> set[str]:
        """Take in one observation; returns the series or markets whose value may have moved.

        Entries are series tickers (``KXHIGHNY``, ``KXFED``) or, for venue books,
        market tickers.
        """
        if isinstance(observation, Weather):
            self.weather[(observation.station, observation.local_date)] = observation
            return {s for s, st in STATIONS_BY_SERIES.items() if st.station == observation.station}
        if isinstance(observation, FedOdds):
            code = _meeting_code(observation.meeting)
            if code is None:
                return set()
            self.fed[code] = observation
            return {*THRESHOLD_SERIES, DECISION_SERIES}
        if isinstance(observation, VenueBook):
            self.venue[observation.market] = observation
            return {observation.market}
        return self._feed(observation)

    def _feed(self, status: FeedStatus) -> set[str]:
        self.feeds[status.feed] = status.fresh
        if status.feed == FED_FEED:
            return {*THRESHOLD_SERIES, DECISION_SERIES}
        if status.feed == VENUE_FEED:
            return set(self.venue)
        station = status.feed.removeprefix("nws:")
        return {s for s, st in STATIONS_BY_SERIES.items() if st.station == station}

    def fresh(self, feed: str) -> bool:
        """A feed never heard of counts as fresh: the model's own age limits still apply."""
        return self.feeds.get(feed, True)

    def value(self, info: MarketInfo, now_ns: int) -> Valuation | None:
        """The first enabled model that prices this market, or None."""
        enabled = self.settings.models
        if "venue" in enabled and info.market in self.venue:
            return self._venue(info, now_ns)
        if "weather" in enabled and info.series in STATIONS_BY_SERIES:
            return self._weather(info, now_ns)
        if "fed" in enabled and (info.series in THRESHOLD_SERIES or info.series == DECISION_SERIES):
            return self._fed(info, now_ns)
        return None

    def _venue(self, info: MarketInfo, now_ns: int) -> Valuation | None:
        book = self.venue[info.market]
        fair = venue_fair_value(
            book, now_ns, self.settings.venue, feed_fresh=self.fresh(VENUE_FEED)
        )
        return None if fair is None else Valuation(fair, f"venue:{book.observed_at_ns}")

    def _weather(self, info: MarketInfo, now_ns: int) -> Valuation | None:
        station = STATIONS_BY_SERIES[info.series].station
        day = _market_day(info.market)
        observation = None if day is None else self.weather.get((station, day))
        fair = weather_fair_value(
            info,
            observation,
            now_ns,
            self.settings.weather,
            feed_fresh=self.fresh(weather_feed(station)),
        )
        if fair is None or observation is None:
            return None
        return Valuation(fair, f"weather:{observation.observed_at_ns}")

    def _fed(self, info: MarketInfo, now_ns: int) -> Valuation | None:
        parts = info.market.split("-")
        odds = self.fed.get(parts[1]) if len(parts) == 3 else None
        if odds is None:
            return None
        fair = fed_fair_value(
            info.market,
            odds,
            now_ns,
            self.settings.fed,
            before_meeting=self._before(odds),
            feed_fresh=self.fresh(FED_FEED),
        )
        return None if fair is None else Valuation(fair, f"fed:{odds.computed_at_ns}")

    def _before(self, odds: FedOdds) -> dict[int, float] | None:
        """The upper bound's distribution before ``odds``' meeting: the previous meeting's."""
        earlier = [o for o in self.fed.values() if o.meeting < odds.meeting]
        if earlier:
            return dict(max(earlier, key=lambda o: o.meeting).upper_bound_bp_probs)
        if self.current_upper_bp is None:
            return None
        return {self.current_upper_bp: 1.0}


def _meeting_code(meeting: str) -> str | None:
    try:
        return kalshi_meeting_code(date.fromisoformat(meeting))
    except ValueError:
        return None


def _market_day(ticker: str) -> str | None:
    day = market_date(ticker)
    return None if day is None else day.isoformat()
