"""Risk's view of the portfolio: the ledger, our open orders, marks, NAV and exposures.

Pure state fed by the caller (fills, order events, market metadata, books);
money in micro-dollars, counts in hundredths of a contract.

* **Open orders** are every order that may rest on the exchange: SENT and
  UNKNOWN (they may have reached the book), RESTING and PARTIAL (with their
  ``remaining`` count). FILLED, CANCELED and REJECTED close an order for good:
  a later event for a closed order (a redelivery) is ignored.
* **Marks** are YES prices per market (:func:`mark_from_book`).
* **Exposure** of a market is the most it can lose: the cost basis of what is
  held (both sides) plus the notional of open *buy* orders. Sells never add
  exposure (risk refuses a sell of more than is held, see ``checks``).
  Exposures add up by event, by series and by correlated group
  (:func:`correlation_group`).
* **The trading day** starts at ``day_boundary_utc_hour`` UTC; daily P&L is NAV
  minus NAV at the start of the current day (:meth:`PortfolioView.roll_day`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Final

from shared.ledger import MARK_TICK, Ledger, Settlement, checked_mark
from shared.messages import (
    Action,
    Fill,
    Leg,
    MarketInfo,
    OrderEvent,
    OrderStatus,
    PortfolioState,
    Side,
    TopOfBook,
    TradingState,
)
from shared.money import ONE_DOLLAR, Count, Micros, ceil_div, notional
from shared.recent import Recent
from shared.risk.limits import PPM
from shared.weather import STATIONS, STATIONS_BY_SERIES

NS_PER_HOUR: Final = 3_600 * 10**9
NS_PER_DAY: Final = 24 * NS_PER_HOUR
FED_GROUP: Final = "FED"
_FED_PREFIXES: Final = ("KXFED", "FED")  # KXFEDDECISION included
_LOW_PREFIX: Final = "KXLOW"
_OPEN_STATUSES: Final = frozenset({OrderStatus.SENT, OrderStatus.UNKNOWN})
_RESTING_STATUSES: Final = frozenset({OrderStatus.RESTING, OrderStatus.PARTIAL})


def _city_codes() -> dict[str, str]:
    """City codes a weather ticker may use (NY, NYC, CHI, MDW, ATL...) -> station id."""
    codes: dict[str, str] = {}
    for station in STATIONS:
        code = station.series.removeprefix("KXHIGH")
        for alias in (code, code.removeprefix("T"), station.cli, station.station[1:]):
            codes.setdefault(alias, station.station)
    return codes


_STATION_BY_CITY: Final = _city_codes()


def weather_station(series: str) -> str | None:
    """The NWS station a weather series settles on, or None.

    High series come from ``STATIONS_BY_SERIES``; low series (``KXLOW[T]<city>``)
    are matched to the same station by their city code, so one city's highs and
    lows fall into one correlated group.
    """
    station = STATIONS_BY_SERIES.get(series)
    if station is not None:
        return station.station
    if not series.startswith(_LOW_PREFIX):
        return None
    code = series.removeprefix(_LOW_PREFIX)
    return _STATION_BY_CITY.get(code) or _STATION_BY_CITY.get(code.removeprefix("T"))


def correlation_group(series: str) -> str:
    """The group of series that move together: ``WX:<station>``, ``FED``, else the series."""
    station = weather_station(series)
    if station is not None:
        return f"WX:{station}"
    if series.startswith(_FED_PREFIXES):
        return FED_GROUP
    return series


def mark_from_book(yes_bid: Micros | None, no_bid: Micros | None) -> Micros | None:
    """The YES mark of a book from its best bids (micros), floored to $0.0001.

    The midpoint of the best YES bid and the YES ask implied by the best NO bid
    ($1 - NO bid); with one side only, that side's implied YES price; None if
    the book has no bids at all.
    """
    if yes_bid is None:
        if no_bid is None:
            return None
        mark = ONE_DOLLAR - no_bid
    elif no_bid is None:
        mark = yes_bid
    else:
        mark = (yes_bid + ONE_DOLLAR - no_bid) // 2
    return mark - mark % MARK_TICK


def day_start_ns(now_ns: int, boundary_utc_hour: int) -> int:
    """The instant (ns since the epoch) the trading day containing ``now_ns`` began."""
    offset = boundary_utc_hour * NS_PER_HOUR
    return (now_ns - offset) // NS_PER_DAY * NS_PER_DAY + offset


def event_from_ticker(market: str) -> str:
    """A market's event by Kalshi's naming (``KXHIGHNY-25DEC05-T37`` -> ``KXHIGHNY-25DEC05``)."""
    return market.rsplit("-", 1)[0]


def series_from_ticker(ticker: str) -> str:
    """An event's or market's series by Kalshi's naming (``KXHIGHNY-25DEC05`` -> ``KXHIGHNY``)."""
    return ticker.split("-", 1)[0]


class PortfolioView:
    """The ledger plus open orders, marks, market metadata, NAV history and exposures."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        day_boundary_utc_hour: int = 0,
        peak_nav: Micros | None = None,
        day_start_ns: int | None = None,
        day_start_nav: Micros | None = None,
    ) -> None:
        """Restore ``peak_nav`` and the day's start (instant and NAV) when restarting mid-day.

        Without them the peak is the current NAV and the day starts at the
        first :meth:`roll_day`.
        """
        self.ledger = ledger
        self.markets: dict[str, MarketInfo] = {}
        self.marks: dict[str, Micros] = {}
        """YES mark by market (micros); see :func:`mark_from_book`."""
        self._orders: dict[str, Leg] = {}
        self._orders_in: dict[str, dict[str, Leg]] = {}
        """The open orders again, by market (the checks look one market up at a time)."""
        self._closed_orders: Recent[str, None] = Recent()
        self._values: dict[str, Micros] = {}
        """Each holding's mark-to-market (at cost when unmarked); NAV = cash + their sum."""
        self._value_total: Micros = 0
        self._exposure: dict[str, Micros] = {}
        """Cost held + open buy notional, by market, for markets where it is not zero."""
        self._members: dict[str, set[str]] = {}
        """Markets with exposure by ``e:<event>``, ``s:<series>``, ``g:<group>``."""
        self._indexed: dict[str, tuple[str, str, str]] = {}
        for market in ledger.holdings:
            self._revalue(market)
        self.day_boundary_utc_hour = day_boundary_utc_hour
        nav = self.nav()
        self.peak_nav: Micros = max(nav, peak_nav) if peak_nav is not None else nav
        self.day_start_ns = day_start_ns
        self.day_start_nav: Micros = nav if day_start_nav is None else day_start_nav

    # --- feeding ---------------------------------------------------------------------------

    def on_market(self, info: MarketInfo) -> None:
        self.markets[info.market] = info
        if info.market in self._exposure:
            self._reexpose(info.market)

    def on_fill(self, fill: Fill) -> bool:
        """Book a fill in the ledger (idempotent by trade id); True if it was new.

        The order's remaining count is left to its order events, so until the
        PARTIAL/FILLED event arrives the filled part counts twice: too much
        exposure, never too little.
        """
        applied = self.ledger.apply(fill)
        if applied:
            self._revalue(fill.market)
            self._track_peak()
        return applied

    def on_order(self, event: OrderEvent) -> None:
        """Track an order's state.

        RESTING/PARTIAL set the count to ``remaining``; SENT, UNKNOWN and a
        RESTING/PARTIAL without a positive ``remaining`` keep the count known so
        far (the full count for a new order); only FILLED, CANCELED and REJECTED
        close it.
        """
        coid = event.client_order_id
        if coid in self._closed_orders:
            return
        if event.status in _RESTING_STATUSES and event.remaining > 0:
            self._put_order(coid, _with_count(event.leg, event.remaining))
        elif event.status in _OPEN_STATUSES or event.status in _RESTING_STATUSES:
            if coid not in self._orders:
                self._put_order(coid, event.leg)
        else:
            self._drop_order(coid)
            self._closed_orders[coid] = None

    def settle(self, market: str, yes_won: bool) -> Settlement | None:
        """Settle a market in the ledger; its mark is dropped."""
        settlement = self.ledger.settle(market, yes_won)
        self.marks.pop(market, None)
        self._revalue(market)
        self._track_peak()
        return settlement

    def set_mark(self, market: str, mark: Micros | None) -> None:
        """Set (None: forget) the YES mark of a market, micros on the $0.0001 tick.

        Raises LedgerError for a mark off the tick or outside $0-$1.
        """
        if mark is None:
            self.marks.pop(market, None)
        else:
            self.marks[market] = checked_mark(market, mark)
        if market in self.ledger.holdings:
            self._revalue(market)
            self._track_peak()

    def on_top_of_book(self, top: TopOfBook) -> None:
        yes = None if top.yes_bid is None else top.yes_bid.price
        no = None if top.no_bid is None else top.no_bid.price
        self.set_mark(top.market, mark_from_book(yes, no))

    def roll_day(self, now_ns: int) -> bool:
        """Start a new trading day if ``now_ns`` is past the current one; True if it did.

        The new day's starting NAV is the NAV now, so call this before booking
        anything that happened after the boundary.
        """
        start = day_start_ns(now_ns, self.day_boundary_utc_hour)
        if self.day_start_ns is not None and start <= self.day_start_ns:
            return False
        self.day_start_ns = start
        self.day_start_nav = self.nav()
        return True

    def _track_peak(self) -> None:
        self.peak_nav = max(self.peak_nav, self.nav())

    # --- NAV -------------------------------------------------------------------------------

    @property
    def cash(self) -> Micros:
        return self.ledger.cash

    def nav(self) -> Micros:
        """Cash plus holdings at their marks (unmarked ones at cost), micros."""
        return self.ledger.cash + self._value_total

    def drawdown_ppm(self) -> int:
        """How far NAV is below its peak, in parts per million of the peak (rounded up)."""
        if self.peak_nav <= 0:
            return PPM
        return ceil_div(max(0, self.peak_nav - self.nav()) * PPM, self.peak_nav)

    def daily_pnl(self) -> Micros:
        """NAV now minus NAV at the start of the trading day (micros)."""
        return self.nav() - self.day_start_nav

    def state(
        self,
        trading_state: TradingState,
        recovery_mode: bool,
        halted_markets: Iterable[str],
        now_ns: int,
    ) -> PortfolioState:
        """The ``portfolio`` stream message for this instant."""
        nav = self.nav()
        return PortfolioState(
            cash=self.cash,
            nav=nav,
            peak_nav=self.peak_nav,
            daily_pnl=nav - self.day_start_nav,
            drawdown_ppm=self.drawdown_ppm(),
            trading_state=trading_state,
            recovery_mode=recovery_mode,
            positions=self.ledger.positions(self.marks),
            halted_markets=sorted(halted_markets),
            ts_ns=now_ns,
        )

    # --- orders and holdings ---------------------------------------------------------------

    @property
    def open_orders(self) -> Mapping[str, Leg]:
        """client_order_id -> the order's leg with its remaining count."""
        return MappingProxyType(self._orders)

    def held(self, market: str, side: Side) -> Count:
        return self.ledger.held(market, side)

    def open_count(self, market: str, side: Side, action: Action) -> Count:
        """Hundredths of open orders to ``action`` ``side`` in ``market``."""
        return sum(
            leg.count
            for leg in self._orders_in.get(market, {}).values()
            if leg.side is side and leg.action is action
        )

    def open_orders_in(self, market: str) -> list[Leg]:
        return list(self._orders_in.get(market, {}).values())

    # --- exposure --------------------------------------------------------------------------

    def event_of(self, market: str) -> str:
        """The market's event; from the ticker when its MarketInfo is unknown."""
        info = self.markets.get(market)
        return event_from_ticker(market) if info is None else info.event

    def series_of(self, market: str) -> str:
        info = self.markets.get(market)
        return series_from_ticker(market) if info is None else info.series

    def group_of(self, market: str) -> str:
        return correlation_group(self.series_of(market))

    def exposure_by_market(self) -> dict[str, Micros]:
        """Cost basis held + notional of open buys, by market (micros)."""
        return dict(self._exposure)

    def market_exposure(self, market: str) -> Micros:
        return self._exposure.get(market, 0)

    def event_exposure(self, event: str) -> Micros:
        return self._exposure_of(f"e:{event}")

    def series_exposure(self, series: str) -> Micros:
        return self._exposure_of(f"s:{series}")

    def group_exposure(self, group: str) -> Micros:
        return self._exposure_of(f"g:{group}")

    def _exposure_of(self, key: str) -> Micros:
        return sum(self._exposure[m] for m in self._members.get(key, ()))

    def exposure_by_event(self) -> dict[str, Micros]:
        return self._exposure_by(self.event_of)

    def exposure_by_series(self) -> dict[str, Micros]:
        return self._exposure_by(self.series_of)

    def exposure_by_group(self) -> dict[str, Micros]:
        return self._exposure_by(self.group_of)

    def _exposure_by(self, key: Callable[[str], str]) -> dict[str, Micros]:
        totals: dict[str, Micros] = {}
        for market, amount in self.exposure_by_market().items():
            name = key(market)
            totals[name] = totals.get(name, 0) + amount
        return totals

    # --- incremental upkeep ----------------------------------------------------------------

    def _put_order(self, coid: str, leg: Leg) -> None:
        self._drop_order(coid)
        self._orders[coid] = leg
        self._orders_in.setdefault(leg.market, {})[coid] = leg
        self._reexpose(leg.market)

    def _drop_order(self, coid: str) -> None:
        leg = self._orders.pop(coid, None)
        if leg is None:
            return
        in_market = self._orders_in[leg.market]
        del in_market[coid]
        if not in_market:
            del self._orders_in[leg.market]
        self._reexpose(leg.market)

    def _revalue(self, market: str) -> None:
        """One market's value (and exposure) after its holding or mark moved."""
        holding = self.ledger.holdings.get(market)
        self._value_total -= self._values.pop(market, 0)
        if holding is not None:
            mark = self.marks.get(market)
            value = holding.cost if mark is None else holding.value(mark)
            self._values[market] = value
            self._value_total += value
        self._reexpose(market)

    def _reexpose(self, market: str) -> None:
        holding = self.ledger.holdings.get(market)
        amount = 0 if holding is None else holding.cost
        for leg in self._orders_in.get(market, {}).values():
            if leg.action is Action.BUY:
                amount += notional(leg.price, leg.count)
        for key in self._indexed.pop(market, ()):
            self._members[key].discard(market)
            if not self._members[key]:
                del self._members[key]
        if amount == 0:
            self._exposure.pop(market, None)
            return
        self._exposure[market] = amount
        keys = (
            f"e:{self.event_of(market)}",
            f"s:{self.series_of(market)}",
            f"g:{self.group_of(market)}",
        )
        self._indexed[market] = keys
        for key in keys:
            self._members.setdefault(key, set()).add(market)


def _with_count(leg: Leg, count: Count) -> Leg:
    return Leg(market=leg.market, side=leg.side, action=leg.action, price=leg.price, count=count)
