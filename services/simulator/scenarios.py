"""Seeded market universes and the hidden truth that prices them.

* weather: daily-high markets per city and day as Kalshi lists them (a low
  tail, 2-degree brackets and a high tail, mutually exclusive and exhaustive),
  plus a threshold ladder per city and day (series ``<SERIES>ABV``, our own
  invention so ladder mispricings have somewhere to live), priced from a
  hidden daily high and an intraday temperature path;
* fed: an FOMC decision event (mutually exclusive) and a rate ladder;
* mixed: both, with every city, plus generic binary markets on assorted price
  grids and fee schedules: several hundred markets.

Fair values are floats (probabilities); everything the exchange holds stays
integer. The same seed and start time always give the same universe.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from services.simulator.engine import Exchange
from services.simulator.model import Event, Market, MarketStatus, Series
from shared.weather import STATIONS_BY_SERIES, Station

DAY_MS: Final = 86_400_000
HOUR_MS: Final = 3_600_000


@dataclass(frozen=True)
class City:
    """A city of the weather scenario: the station its markets settle on, and its climate."""

    settles_on: Station
    name: str
    normal_high_f: int

    @property
    def series(self) -> str:
        return self.settles_on.series

    @property
    def station(self) -> str:
        return self.settles_on.station

    @property
    def wfo(self) -> str:
        return self.settles_on.wfo

    @property
    def cli(self) -> str:
        return self.settles_on.cli

    @property
    def utc_offset_h(self) -> int:
        """Local standard time: the climate day runs midnight to midnight LST."""
        return self.settles_on.utc_offset_h

    @property
    def lat(self) -> float:
        return self.settles_on.lat

    @property
    def lon(self) -> float:
        return self.settles_on.lon


def _city(series: str, name: str, normal_high_f: int) -> City:
    return City(STATIONS_BY_SERIES[series], name, normal_high_f)


CITIES: Final = (
    _city("KXHIGHNY", "New York City", 62),
    _city("KXHIGHCHI", "Chicago", 60),
    _city("KXHIGHMIA", "Miami", 84),
    _city("KXHIGHAUS", "Austin", 80),
    _city("KXHIGHLAX", "Los Angeles", 70),
    _city("KXHIGHPHIL", "Philadelphia", 64),
    _city("KXHIGHDEN", "Denver", 61),
    _city("KXHIGHTATL", "Atlanta", 72),
    _city("KXHIGHTBOS", "Boston", 58),
    _city("KXHIGHTDAL", "Dallas", 78),
    _city("KXHIGHTDC", "Washington DC", 66),
    _city("KXHIGHTHOU", "Houston", 81),
    _city("KXHIGHTLV", "Las Vegas", 80),
    _city("KXHIGHTMIN", "Minneapolis", 56),
    _city("KXHIGHTNOLA", "New Orleans", 80),
    _city("KXHIGHTOKC", "Oklahoma City", 72),
    _city("KXHIGHTPHX", "Phoenix", 88),
    _city("KXHIGHTSATX", "San Antonio", 81),
    _city("KXHIGHTSEA", "Seattle", 60),
    _city("KXHIGHTSFO", "San Francisco", 65),
)
WEATHER_ONLY_CITIES: Final = 8
BRACKETS_PER_DAY: Final = 4
LADDER_STRIKES: Final = 7


def normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def clamp_probability(p: float) -> float:
    return min(0.99, max(0.01, p))


@dataclass
class CityDay:
    """One city's climate day and its hidden truth."""

    city: City
    date: str  # YYMMMDD as in tickers, e.g. 26MAY11
    day_start_ms: int  # local standard midnight, in UTC ms
    true_high_f: float
    morning_low_f: float
    forecast_error_f: float = 0.0
    bracket_event: str = ""
    ladder_event: str = ""
    center: int = 0

    @property
    def settled_high(self) -> int:
        return round(self.true_high_f)

    def temperature_f(self, now_ms: int) -> float:
        """The hidden temperature: a daily curve from the morning low to the high at 15:00."""
        hours = (now_ms - self.day_start_ms) / HOUR_MS
        shape = math.cos((hours - 15) / 24 * 2 * math.pi)  # 1 at 15:00, -1 at 03:00
        return self.morning_low_f + (self.true_high_f - self.morning_low_f) * (shape + 1) / 2

    def observed_max_f(self, now_ms: int) -> float | None:
        if now_ms <= self.day_start_ms:
            return None
        hours = min(24.0, (now_ms - self.day_start_ms) / HOUR_MS)
        if hours >= 15:
            return self.true_high_f
        return self.temperature_f(self.day_start_ms + int(hours * HOUR_MS))

    def belief(self, now_ms: int) -> tuple[float, float]:
        """Mean and spread of what a well-informed trader expects the high to be."""
        remaining = min(1.0, max(0.0, (self.day_start_ms + 15 * HOUR_MS - now_ms) / (DAY_MS * 1.5)))
        sigma = 0.6 + 4.0 * remaining
        mean = self.true_high_f + self.forecast_error_f * remaining
        return mean, sigma

    def probability(self, low: float | None, high: float | None, now_ms: int) -> float:
        """P(low <= settled high <= high) in whole degrees, given what is known now."""
        mean, sigma = self.belief(now_ms)
        floor = self.observed_max_f(now_ms)
        lo = -math.inf if low is None else low - 0.5
        hi = math.inf if high is None else high + 0.5
        if floor is not None:
            base = round(floor) - 0.5
            lo, hi = max(lo, base), max(hi, base)
            mass = 1 - normal_cdf((base - mean) / sigma)
        else:
            mass = 1.0
        p = normal_cdf((hi - mean) / sigma) - normal_cdf((lo - mean) / sigma)
        return p / mass if mass > 1e-9 else (1.0 if lo <= mean <= hi else 0.0)


@dataclass
class Scenario:
    name: str
    seed: int
    start_ms: int
    exchange: Exchange
    fair: dict[str, float] = field(default_factory=dict)
    city_days: list[CityDay] = field(default_factory=list)
    ranges: dict[str, tuple[CityDay, float | None, float | None]] = field(default_factory=dict)
    fed_probs: dict[str, float] = field(default_factory=dict)
    fed_ladder: dict[str, float] = field(default_factory=dict)
    fed_moves: dict[str, int] = field(default_factory=dict)
    fed_current_upper_bp: int = 0
    generic: list[str] = field(default_factory=list)
    mispricings: list[dict[str, Any]] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)
    results: dict[str, str] = field(default_factory=dict)
    """Outcomes drawn so far for markets without a physical truth (fed, generic)."""

    def update(self, now_ms: int) -> None:
        """Move the hidden beliefs on and re-price every market's fair value."""
        for day in self.city_days:
            day.forecast_error_f += self.rng.gauss(0, 0.05)
        for ticker, (day, low, high) in self.ranges.items():
            self.fair[ticker] = clamp_probability(day.probability(low, high, now_ms))
        self._update_fed()
        for ticker in self.generic:
            logit = math.log(self.fair[ticker] / (1 - self.fair[ticker])) + self.rng.gauss(0, 0.02)
            self.fair[ticker] = clamp_probability(1 / (1 + math.exp(-logit)))

    def _update_fed(self) -> None:
        if not self.fed_probs:
            return
        for code in self.fed_probs:
            self.fed_probs[code] *= math.exp(self.rng.gauss(0, 0.01))
        total = sum(self.fed_probs.values())
        for code in self.fed_probs:
            self.fed_probs[code] /= total
            self.fair[self._decision_ticker(code)] = clamp_probability(self.fed_probs[code])
        for ticker, strike_bp in self.fed_ladder.items():
            above = sum(
                p
                for code, p in self.fed_probs.items()
                if self.fed_current_upper_bp + self.fed_moves[code] > strike_bp
            )
            self.fair[ticker] = clamp_probability(above)

    def _decision_ticker(self, code: str) -> str:
        return f"{self.fed_event}-{code}"

    @property
    def fed_event(self) -> str:
        return next(
            (e for e in self.exchange.events if e.startswith("KXFEDDECISION-")), "KXFEDDECISION"
        )

    def truth_json(self) -> dict[str, Any]:
        return {
            "scenario": self.name,
            "seed": self.seed,
            "mispricings": self.mispricings,
            "fair_values": {t: round(p, 6) for t, p in self.fair.items()},
            "results": {
                t: m.result for t, m in self.exchange.markets.items() if m.result in ("yes", "no")
            },
            "hidden": {
                "weather": [
                    {
                        "series": d.city.series,
                        "station": d.city.station,
                        "date": d.date,
                        "event_ticker": d.bracket_event,
                        "ladder_event_ticker": d.ladder_event,
                        "true_high_f": round(d.true_high_f, 2),
                        "settles_at_f": d.settled_high,
                    }
                    for d in self.city_days
                ],
                "fed": {
                    "current_upper_bound_bp": self.fed_current_upper_bp,
                    "probabilities": {k: round(v, 6) for k, v in self.fed_probs.items()},
                },
            },
        }

    def result_of(self, ticker: str) -> str | None:
        """How a market settles under the hidden truth (None for a market not ours).

        Weather settles by the hidden daily high. A fed or generic market's outcome
        is drawn the first time it is asked for (at its close, or by ``/sim/settle``)
        from its fair value then, with a uniform fixed by the seed and the ticker
        (one draw for the whole fed meeting, so its markets agree), and kept.
        """
        if ticker in self.ranges:
            day, low, high = self.ranges[ticker]
            value = day.settled_high
            inside = (low is None or value >= low) and (high is None or value <= high)
            return "yes" if inside else "no"
        if ticker in self.results:
            return self.results[ticker]
        if ticker in self.generic:
            draw = random.Random(f"{self.seed}:{ticker}").random()
            self.results[ticker] = "yes" if draw < self.fair[ticker] else "no"
        elif self.fed_probs and (
            ticker in self.fed_ladder or ticker.startswith(f"{self.fed_event}-")
        ):
            code = self._fed_decision()
            for move_code in self.fed_probs:
                self.results[self._decision_ticker(move_code)] = (
                    "yes" if move_code == code else "no"
                )
            upper = self.fed_current_upper_bp + self.fed_moves[code]
            for ladder_ticker, strike_bp in self.fed_ladder.items():
                self.results[ladder_ticker] = "yes" if upper > strike_bp else "no"
        return self.results.get(ticker)

    def _fed_decision(self) -> str:
        draw = random.Random(f"{self.seed}:fed").random()
        total = 0.0
        for code, probability in self.fed_probs.items():
            total += probability
            if draw < total:
                return code
        return next(reversed(self.fed_probs))

    def close_due(self, now_ms: int) -> list[str]:
        """Close every active market whose close time has come and settle it by the truth."""
        exchange = self.exchange
        due = [
            ticker
            for ticker, market in exchange.markets.items()
            if market.status is MarketStatus.ACTIVE and market.close_ms <= now_ms
        ]
        for ticker in due:
            exchange.close_market(ticker)
            result = self.result_of(ticker)
            if result is not None:
                exchange.settle(ticker, result)
        return due


# --- building ---------------------------------------------------------------------------


def ticker_date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%y%b%d").upper()


def _market(
    exchange: Exchange,
    *,
    ticker: str,
    event: Event,
    title: str,
    yes_sub: str,
    close_ms: int,
    open_ms: int,
    rules: str,
    **extra: Any,
) -> Market:
    market = Market(
        ticker=ticker,
        event_ticker=event.event_ticker,
        series_ticker=event.series_ticker,
        market_id=exchange.new_id(),
        title=title,
        yes_sub_title=yes_sub,
        no_sub_title=yes_sub,
        open_ms=open_ms,
        close_ms=close_ms,
        expected_expiration_ms=close_ms + 10 * HOUR_MS,
        rules_primary=rules,
        created_ms=open_ms,
        **extra,
    )
    exchange.add_market(market)
    return market


def _local_midnight(now_ms: int, offset_h: int) -> int:
    local = datetime.fromtimestamp(now_ms / 1000, tz=UTC) + timedelta(hours=offset_h)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return int((midnight - timedelta(hours=offset_h)).timestamp() * 1000)


def add_city(scenario: Scenario, city: City, days: int = 2) -> None:
    exchange, rng = scenario.exchange, scenario.rng
    source = (
        f"https://forecast.weather.gov/product.php?site={city.wfo}&product=CLI&issuedby={city.cli}"
    )
    for series_ticker, title in (
        (city.series, "Highest temperature"),
        (f"{city.series}ABV", "High above"),
    ):
        exchange.add_series(
            Series(
                series_ticker,
                f"{title} in {city.name}",
                "Climate and Weather",
                tags=["Weather"],
                settlement_sources=[{"name": "National Weather Service", "url": source}],
            )
        )
    first = _local_midnight(scenario.start_ms, city.utc_offset_h)
    for offset in range(days):
        start = first + offset * DAY_MS
        high = city.normal_high_f + rng.gauss(0, 6)
        day = CityDay(
            city=city,
            date=ticker_date(start + 12 * HOUR_MS),
            day_start_ms=start,
            true_high_f=high,
            morning_low_f=high - rng.uniform(10, 20),
            forecast_error_f=rng.gauss(0, 3),
        )
        day.center = round(high + rng.gauss(0, 2))
        scenario.city_days.append(day)
        _add_bracket_event(scenario, day, open_ms=start - DAY_MS)
        _add_ladder_event(scenario, day, open_ms=start - DAY_MS)


def _rules(day: CityDay, condition: str) -> str:
    return (
        f"If the highest temperature recorded at {day.city.station} for {day.date} as reported "
        f"by the National Weather Service's Climatological Report (Daily), is {condition}, "
        "then the market resolves to Yes."
    )


def _add_bracket_event(scenario: Scenario, day: CityDay, open_ms: int) -> None:
    exchange = scenario.exchange
    event = Event(
        f"{day.city.series}-{day.date}",
        day.city.series,
        f"Highest temperature in {day.city.name} on {day.date}?",
        day.date,
        mutually_exclusive=True,
        strike_date_ms=day.day_start_ms + DAY_MS,
    )
    exchange.add_event(event)
    day.bracket_event = event.event_ticker
    close = day.day_start_ms + DAY_MS - 60_000
    low_edge = day.center - BRACKETS_PER_DAY
    high_edge = low_edge + 2 * BRACKETS_PER_DAY - 1
    common: dict[str, Any] = {"event": event, "close_ms": close, "open_ms": open_ms}
    ticker = f"{event.event_ticker}-T{low_edge}"
    _market(
        exchange, ticker=ticker, title=f"<{low_edge}°", yes_sub=f"{low_edge - 1}° or below",
        rules=_rules(day, f"less than {low_edge}°"), strike_type="less",
        cap_strike=float(low_edge), **common,
    )  # fmt: skip
    scenario.ranges[ticker] = (day, None, low_edge - 1)
    for index in range(BRACKETS_PER_DAY):
        a = low_edge + 2 * index
        ticker = f"{event.event_ticker}-B{a}.5"
        _market(
            exchange, ticker=ticker, title=f"{a}-{a + 1}°", yes_sub=f"{a}° to {a + 1}°",
            rules=_rules(day, f"between {a}-{a + 1}°"), strike_type="between",
            floor_strike=float(a), cap_strike=float(a + 1), **common,
        )  # fmt: skip
        scenario.ranges[ticker] = (day, a, a + 1)
    ticker = f"{event.event_ticker}-T{high_edge}"
    _market(
        exchange, ticker=ticker, title=f">{high_edge}°", yes_sub=f"{high_edge + 1}° or above",
        rules=_rules(day, f"greater than {high_edge}°"), strike_type="greater",
        floor_strike=float(high_edge), **common,
    )  # fmt: skip
    scenario.ranges[ticker] = (day, high_edge + 1, None)


def _add_ladder_event(scenario: Scenario, day: CityDay, open_ms: int) -> None:
    exchange = scenario.exchange
    series = f"{day.city.series}ABV"
    event = Event(
        f"{series}-{day.date}",
        series,
        f"High temperature thresholds in {day.city.name} on {day.date}",
        day.date,
        mutually_exclusive=False,
        strike_date_ms=day.day_start_ms + DAY_MS,
    )
    exchange.add_event(event)
    day.ladder_event = event.event_ticker
    close = day.day_start_ms + DAY_MS - 60_000
    first = day.center - LADDER_STRIKES + 1
    for index in range(LADDER_STRIKES):
        strike = first + 2 * index
        ticker = f"{event.event_ticker}-T{strike}"
        _market(
            exchange, ticker=ticker, event=event, title=f">{strike}°",
            yes_sub=f"{strike + 1}° or above", close_ms=close, open_ms=open_ms,
            rules=_rules(day, f"greater than {strike}°"), strike_type="greater",
            floor_strike=float(strike),
        )  # fmt: skip
        scenario.ranges[ticker] = (day, strike + 1, None)


FED_MOVES: Final = {"C26": -50, "C25": -25, "H0": 0, "H25": 25, "H26": 50}


def add_fed(scenario: Scenario) -> None:
    exchange, rng = scenario.exchange, scenario.rng
    meeting_ms = scenario.start_ms + 30 * DAY_MS
    code = datetime.fromtimestamp(meeting_ms / 1000, tz=UTC).strftime("%y%b").upper()
    exchange.add_series(Series("KXFEDDECISION", "Fed decision", "Economics", frequency="custom"))
    exchange.add_series(
        Series("KXFED", "Fed funds rate upper bound", "Economics", frequency="custom")
    )
    decision = Event(
        f"KXFEDDECISION-{code}", "KXFEDDECISION", f"Fed decision in {code}", code, True,
        strike_date_ms=meeting_ms,
    )  # fmt: skip
    ladder = Event(
        f"KXFED-{code}", "KXFED", f"Fed rate after {code}", code, False, strike_date_ms=meeting_ms
    )
    exchange.add_event(decision)
    exchange.add_event(ladder)
    weights = [rng.gammavariate(a, 1) for a in (0.5, 2.0, 6.0, 1.0, 0.3)]
    scenario.fed_moves = dict(FED_MOVES)
    scenario.fed_probs = {c: w / sum(weights) for c, w in zip(FED_MOVES, weights, strict=True)}
    scenario.fed_current_upper_bp = rng.choice([400, 425, 450])
    common = {"close_ms": meeting_ms, "open_ms": scenario.start_ms - 30 * DAY_MS}
    for move_code, move in FED_MOVES.items():
        _market(
            exchange, ticker=f"{decision.event_ticker}-{move_code}", event=decision,
            title=f"Fed moves {move:+d} bp", yes_sub=move_code,
            rules=f"Resolves Yes if the Fed's decision is {move_code}.", **common,
        )  # fmt: skip
    for strike_bp in range(
        scenario.fed_current_upper_bp - 75, scenario.fed_current_upper_bp + 76, 25
    ):
        ticker = f"{ladder.event_ticker}-T{strike_bp / 100:.2f}"
        _market(
            exchange, ticker=ticker, event=ladder, title=f"Above {strike_bp / 100:.2f}%",
            yes_sub=f"Above {strike_bp / 100:.2f}%", strike_type="greater",
            floor_strike=strike_bp / 100, rules="Upper bound after the meeting.", **common,
        )  # fmt: skip
        scenario.fed_ladder[ticker] = strike_bp


GENERIC_GRIDS: Final = (
    ("linear_cent", True),
    ("linear_cent", False),
    ("deci_cent", True),
    ("tapered_deci_cent", True),
    ("center_centi_edge_centi_cent", True),
)


def add_generic(scenario: Scenario, count: int) -> None:
    exchange, rng = scenario.exchange, scenario.rng
    fee_schedules = {
        "KXSIMA": ("quadratic", "1"),
        "KXSIMB": ("quadratic_with_maker_fees", "1"),
        "KXSIMC": ("quadratic", "0.5"),
    }
    for ticker, (fee_type, multiplier) in fee_schedules.items():
        exchange.add_series(
            Series(ticker, "Simulated binaries", "Simulated", "custom", fee_type, multiplier)
        )
    series_tickers = list(fee_schedules)
    for index in range(count):
        series = series_tickers[index % len(series_tickers)]
        structure, fractional = GENERIC_GRIDS[index % len(GENERIC_GRIDS)]
        event = Event(f"{series}-{index:03d}", series, f"Simulated event {index}", "", False)
        exchange.add_event(event)
        ticker = f"{event.event_ticker}-Y"
        _market(
            exchange, ticker=ticker, event=event, title=f"Simulated binary {index}",
            yes_sub="Yes", close_ms=scenario.start_ms + 7 * DAY_MS,
            open_ms=scenario.start_ms - DAY_MS, rules="Resolves by the simulator.",
            price_level_structure=structure, fractional=fractional,
        )  # fmt: skip
        scenario.generic.append(ticker)
        scenario.fair[ticker] = rng.uniform(0.05, 0.95)


SCENARIOS: Final = ("weather", "fed", "mixed", "replay")


def build_scenario(name: str, seed: int, exchange: Exchange, start_ms: int) -> Scenario:
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    scenario = Scenario(name, seed, start_ms, exchange, rng=random.Random(seed))
    if name in ("weather", "mixed"):
        cities = CITIES if name == "mixed" else CITIES[:WEATHER_ONLY_CITIES]
        for city in cities:
            add_city(scenario, city)
    if name in ("fed", "mixed"):
        add_fed(scenario)
    if name == "mixed":
        add_generic(scenario, 60)
    scenario.update(start_ms)
    exchange.drain()
    return scenario
