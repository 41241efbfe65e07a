"""The market catalog of a recording: from a metadata file, or guessed from tickers.

A metadata file is Kalshi's REST shape, ``{"events": [...]}`` (``GET /events``
with nested markets) or ``{"markets": [...]}`` (``GET /markets``), read with the
ingest catalog's own :func:`~services.ingest.catalog.market_info`; the series
is unknown, so fees are ``quadratic`` with multiplier 1.

Without metadata, Kalshi's tickers (``SERIES-DATE-STRIKE``, protocols.md 4.1)
give the structure by these rules:

* event = the ticker without its last ``-`` segment; series = its first segment.
  A ticker without ``-`` is an error.
* ``B<x>`` is ``between``: floor x - 0.5 and cap x + 0.5 when x ends in .5
  (``B32.5`` is 32 to 33, both included, as Kalshi's weather brackets), else
  floor = cap = x.
* ``T<x>`` in an event that also has ``B`` markets (a weather bracket day): a T
  at or below the lowest bracket is the low tail, ``less`` with cap x; a T at
  or above the highest bracket is the high tail, ``greater`` with floor x (on
  Kalshi's days these are the lowest and the highest T). Such an event is
  ``mutually_exclusive`` when every market in it is a bracket or a tail:
  Kalshi's bracket days are mutually exclusive and exhaustive.
* ``T<x>`` in an event of T markets only: a threshold ladder, each ``greater``
  with floor x; not mutually exclusive.
* Any other suffix: ``strike_type`` "" and its event not mutually exclusive
  (nothing says the event is exhaustive, so no arbitrage is assumed).
* Close time from the event's date code (its second segment): ``25DEC05``
  (``%y%b%d``) closes at 00:00 UTC of the next day, ``26JAN`` (``%y%b``) at
  00:00 UTC of the first day of the next month; otherwise ``fallback_close_ns``.
* Status ``active``, whole-cent price grid, fees ``quadratic`` with multiplier 1.

A guessed grid is widened when the recorded prices need finer steps
(:class:`PriceUnits`): a sub-penny market without metadata still replays.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Final

import msgspec

from services.backtest.inputs import DAY_NS
from services.backtest.recording import RecordingError
from services.ingest.catalog import grid_of, market_info
from shared.book import PriceGrid
from shared.kalshi import models as km
from shared.messages import MarketInfo, PriceRange
from shared.money import ONE_DOLLAR, Micros
from shared.risk.portfolio import event_from_ticker, series_from_ticker

_MONTHS: Final = (
    *("JAN", "FEB", "MAR", "APR", "MAY", "JUN"),
    *("JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
)
_DAY_CODE: Final = re.compile(r"^(\d{2})([A-Z]{3})(\d{2})$")
_MONTH_CODE: Final = re.compile(r"^(\d{2})([A-Z]{3})$")
_STRIKE: Final = re.compile(r"^([BT])(\d+(?:\.\d+)?)$")
_HALF: Final = Decimal("0.5")
_EPOCH_DAY: Final = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class Strike:
    """What a ticker's suffix says of the market's strike."""

    strike_type: str = ""
    floor: Decimal | None = None
    cap: Decimal | None = None


# --- from tickers -----------------------------------------------------------------------


def markets_from_tickers(tickers: Iterable[str], *, fallback_close_ns: int) -> list[MarketInfo]:
    """The catalog Kalshi's tickers imply (rules in the module docstring), sorted by ticker."""
    by_event: dict[str, dict[str, str]] = {}
    for ticker in set(tickers):
        event, suffix = split_ticker(ticker)
        by_event.setdefault(event, {})[ticker] = suffix
    infos = [
        info
        for event, suffixes in by_event.items()
        for info in _event_markets(event, suffixes, fallback_close_ns)
    ]
    return sorted(infos, key=lambda info: info.market)


def split_ticker(ticker: str) -> tuple[str, str]:
    """A market ticker's event and strike suffix; RecordingError when it has no event."""
    event = event_from_ticker(ticker)
    suffix = ticker[len(event) + 1 :]
    if not event or not suffix:
        raise RecordingError(f"ticker {ticker!r} is not SERIES-...-STRIKE: no event in it")
    return event, suffix


def _event_markets(
    event: str, suffixes: dict[str, str], fallback_close_ns: int
) -> list[MarketInfo]:
    brackets = {
        ticker: _bracket(suffix)
        for ticker, suffix in suffixes.items()
        if suffix[0] == "B" and _STRIKE.match(suffix)
    }
    strikes = {
        ticker: brackets.get(ticker) or _tail(suffix, list(brackets.values()))
        for ticker, suffix in suffixes.items()
    }
    exclusive = bool(brackets) and all(strike.strike_type for strike in strikes.values())
    close_ns = close_from_event(event) or fallback_close_ns
    return [_info(ticker, event, strike, exclusive, close_ns) for ticker, strike in strikes.items()]


def _bracket(suffix: str) -> Strike:
    x = Decimal(suffix[1:])
    if x % 1 == _HALF:
        return Strike("between", x - _HALF, x + _HALF)
    return Strike("between", x, x)


def _tail(suffix: str, brackets: list[Strike]) -> Strike:
    """A T market (or an unknown suffix) of an event with these brackets."""
    match = _STRIKE.match(suffix)
    if match is None:
        return Strike()
    x = Decimal(match.group(2))
    if not brackets:
        return Strike("greater", floor=x)
    if all(b.floor is not None and x <= b.floor for b in brackets):
        return Strike("less", cap=x)
    if all(b.cap is not None and x >= b.cap for b in brackets):
        return Strike("greater", floor=x)
    return Strike()


def close_from_event(event: str) -> int | None:
    """00:00 UTC after the day or month the event's date code names; None without one."""
    parts = event.split("-")
    code = parts[1] if len(parts) > 1 else ""
    day, month = _DAY_CODE.match(code), _MONTH_CODE.match(code)
    try:
        if day is not None and day.group(2) in _MONTHS:
            year, name, dd = day.groups()
            end = date(2000 + int(year), _MONTHS.index(name) + 1, int(dd)) + timedelta(days=1)
        elif month is not None and month.group(2) in _MONTHS:
            year, number = 2000 + int(month.group(1)), _MONTHS.index(month.group(2)) + 1
            end = date(year + number // 12, number % 12 + 1, 1)
        else:
            return None
    except ValueError:  # a day the month does not have
        return None
    return (end - _EPOCH_DAY).days * DAY_NS


def _info(ticker: str, event: str, strike: Strike, exclusive: bool, close_ns: int) -> MarketInfo:
    return MarketInfo(
        market=ticker,
        event=event,
        series=series_from_ticker(event),
        status="active",
        close_ts_ns=close_ns,
        price_ranges=list(PriceGrid.cents().ranges),
        mutually_exclusive=exclusive,
        strike_type=strike.strike_type,
        floor_strike=None if strike.floor is None else float(strike.floor),
        cap_strike=None if strike.cap is None else float(strike.cap),
        fee_type="quadratic",
        fee_multiplier="1",
    )


class PriceUnits:
    """The finest price step each market's recorded prices need, to fit guessed grids."""

    def __init__(self) -> None:
        self._units: dict[str, Micros] = {}

    def note(self, market: str, price: Micros) -> None:
        self._units[market] = math.gcd(self._units.get(market, 0), price)

    def fit(self, markets: list[MarketInfo]) -> list[MarketInfo]:
        """The markets, each on one grid fine enough for every price recorded for it."""
        return [self._fit(info) for info in markets]

    def _fit(self, info: MarketInfo) -> MarketInfo:
        unit = self._units.get(info.market, 0)
        grid_unit = grid_of(info).unit
        if unit % grid_unit == 0:
            return info
        step = math.gcd(grid_unit, unit)
        return msgspec.structs.replace(info, price_ranges=[PriceRange(0, ONE_DOLLAR, step)])


# --- from a metadata file ---------------------------------------------------------------


class _MetadataFile(msgspec.Struct):
    events: list[km.Event] | None = None
    markets: list[km.Market] | None = None


def load_metadata(path: Path) -> list[MarketInfo]:
    """Markets of a Kalshi REST JSON file (``events`` with nested markets, or ``markets``)."""
    try:
        body = msgspec.json.decode(path.read_bytes(), type=_MetadataFile)
    except (OSError, msgspec.DecodeError) as exc:
        raise RecordingError(f"{path}: not Kalshi events or markets JSON: {exc}") from exc
    if body.events is None and body.markets is None:
        raise RecordingError(f'{path}: neither "events" nor "markets" in it')
    infos = {
        market.ticker: market_info(market, event, None)
        for event in body.events or ()
        for market in event.markets or ()
    }
    for market in body.markets or ():
        infos[market.ticker] = market_info(market, _event_of(market), None)
    if not infos:
        raise RecordingError(
            f"{path}: no markets in it (list events with with_nested_markets=true)"
        )
    return [infos[ticker] for ticker in sorted(infos)]


def _event_of(market: km.Market) -> km.Event:
    """What a bare market says of its event: its ticker and series, nothing more."""
    return km.Event(
        event_ticker=market.event_ticker, series_ticker=series_from_ticker(market.event_ticker)
    )
