"""Arbitrage scanner: every event at once in numpy, then depth for the few candidates.

Kinds (each set of legs pays a fixed amount whatever happens):

* ``atomic_yes``: YES on every market of a mutually exclusive AND exhaustive
  event pays exactly $1. ``mutually_exclusive`` alone is not enough (an event
  may have outcomes no market covers): exhaustiveness is checked from the
  strikes (:func:`covers_every_outcome`) or declared by the caller.
* ``atomic_no``: NO on every market of a mutually exclusive event pays at
  least (n - 1) x $1 (exactly that when exhaustive), so exclusivity suffices.
* ``ladder`` (Dutch book): for thresholds of one underlying, YES on the broader
  market and NO on the narrower one pay at least $1 (``greater`` t1 < t2: YES
  t1 or NO t2 holds for every value; ``less`` c1 > c2 likewise).

:class:`EventTable` holds the markets as a struct of arrays (rows grouped by
event, ladder rows ordered broad to narrow), built once from ``MarketInfo``;
:meth:`EventTable.refresh` reads the best bids of every book per scan. The
screen compares the cheapest all-in cost of each set with its payout (the
top-of-book price plus the unrounded fee per contract is a lower bound on the
cost of any contract deeper in the book), and only the sets that pass are
walked level by level with the exact fees of :mod:`shared.fees`. Fees are
those of one taker order per leg, rounded up to the cent once per order.
Opportunities may share legs (one broad market against several narrow ones):
they are alternatives, not additive.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Final

import numpy as np
import numpy.typing as npt

from shared.book import OrderBook
from shared.fees import FeeRate, taker_rate
from shared.kelly import AskLadder, Walk, roi, score
from shared.messages import Action, Leg, MarketInfo, Side
from shared.money import COUNT_PER_CONTRACT, ONE_DOLLAR, Count, Micros

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

NO_ASK: Final = 1 << 40
"""All-in cost of a side nobody offers: large enough that no set containing it passes."""
_GROUP_OFFSET: Final = 1 << 42
LESS_TYPES: Final = frozenset({"less", "less_or_equal"})
GREATER_TYPES: Final = frozenset({"greater", "greater_or_equal"})


class ArbKind(StrEnum):
    ATOMIC_YES = "atomic_yes"
    ATOMIC_NO = "atomic_no"
    LADDER = "ladder"


# --- exhaustiveness ---------------------------------------------------------------------


def _interval(info: MarketInfo, step: Decimal) -> tuple[Decimal | None, Decimal | None] | None:
    """The values (on a grid of ``step``) for which the market is YES; None if not a strike."""
    floor = None if info.floor_strike is None else Decimal(repr(info.floor_strike))
    cap = None if info.cap_strike is None else Decimal(repr(info.cap_strike))
    kind = info.strike_type
    if kind == "less" and cap is not None:
        return None, cap - step
    if kind == "less_or_equal" and cap is not None:
        return None, cap
    if kind == "greater" and floor is not None:
        return floor + step, None
    if kind == "greater_or_equal" and floor is not None:
        return floor, None
    if kind == "between" and floor is not None and cap is not None and floor <= cap:
        return floor, cap
    return None


def covers_every_outcome(markets: Sequence[MarketInfo], step: Decimal = Decimal(1)) -> bool:
    """Whether strike markets cover every value exactly once (exhaustive and exclusive).

    ``step`` is the resolution of the settled value (Kalshi's daily highs settle in
    whole degrees F: ``less`` 33 is 32 or below, ``between`` 33-34 includes both ends,
    ``greater`` 40 is 41 or above). The intervals sorted must run from -inf to
    +inf, each starting one step after the previous one ends.
    """
    intervals = [_interval(info, step) for info in markets]
    known = [iv for iv in intervals if iv is not None]
    if not known or len(known) != len(intervals):
        return False
    open_below = [iv for iv in known if iv[0] is None]
    bounded_below = [(low, high) for low, high in known if low is not None]
    if len(open_below) != 1:
        return False
    bounded_below.sort(key=lambda iv: iv[0])
    previous_high = open_below[0][1]
    for low, high in bounded_below:
        if previous_high is None or low != previous_high + step:
            return False
        previous_high = high
    return previous_high is None


# --- the table --------------------------------------------------------------------------


def _ladder_key(info: MarketInfo) -> float | None:
    """Order along a ladder, broadest (most likely YES) first; None when not on a ladder."""
    if info.strike_type in GREATER_TYPES and info.floor_strike is not None:
        return info.floor_strike
    if info.strike_type in LESS_TYPES and info.cap_strike is not None:
        return -info.cap_strike
    return None


@dataclass(slots=True)
class EventTable:
    """Markets of many events as arrays; static parts from ``MarketInfo``, bids per refresh."""

    markets: list[str]
    infos: list[MarketInfo]
    events: list[str]
    event_start: Int64Array
    """Rows of event ``e`` are ``event_start[e]:event_start[e + 1]``."""
    atomic_yes_ok: BoolArray
    atomic_no_ok: BoolArray
    rates: list[FeeRate]
    rate_num: Int64Array
    rate_den: Int64Array
    ladder_rows: Int64Array
    """Rows of every ladder, each ladder broad to narrow, ladders one after another."""
    ladder_group: Int64Array
    ladder_first: BoolArray
    yes_bid: Int64Array
    no_bid: Int64Array
    books: list[OrderBook]
    row_of: dict[str, int]
    event_of_row: Int64Array
    _ladders_by_event: dict[int, list[list[int]]] | None = None

    @classmethod
    def build(
        cls,
        infos: Iterable[MarketInfo],
        exhaustive_events: Collection[str] = (),
        step: Decimal = Decimal(1),
    ) -> EventTable:
        """Group markets by event, once per change of the market list.

        Give every open market of an event: a market left out makes a bracket event
        look non-exhaustive (no ``atomic_yes``, as it should). ``exhaustive_events``
        are declared exhaustive by the caller (outcomes without strikes, e.g. a
        candidate list known to be complete); ``step`` is the settled value's
        resolution for :func:`covers_every_outcome`.
        """
        by_event: dict[str, list[MarketInfo]] = {}
        for info in infos:
            by_event.setdefault(info.event, []).append(info)
        events = sorted(by_event)
        rows = [info for event in events for info in sorted(by_event[event], key=_row_key)]
        sizes = [len(by_event[event]) for event in events]
        exclusive = [all(i.mutually_exclusive for i in by_event[event]) for event in events]
        exhaustive = [
            event in exhaustive_events or covers_every_outcome(by_event[event], step)
            for event in events
        ]
        rates = [taker_rate(info.fee_type, info.fee_multiplier) for info in rows]
        ladder_rows, ladder_group = _ladders(rows)
        empty = OrderBook("")
        return cls(
            markets=[info.market for info in rows],
            infos=rows,
            events=events,
            event_start=np.cumsum([0, *sizes], dtype=np.int64),
            atomic_yes_ok=np.array(exclusive, dtype=np.bool_) & np.array(exhaustive, np.bool_),
            atomic_no_ok=np.array(exclusive, dtype=np.bool_) & (np.array(sizes) >= 2),
            rates=rates,
            rate_num=np.array([r.numerator for r in rates], dtype=np.int64),
            rate_den=np.array([r.denominator for r in rates], dtype=np.int64),
            ladder_rows=ladder_rows,
            ladder_group=ladder_group,
            ladder_first=np.r_[True, ladder_group[1:] != ladder_group[:-1]][: len(ladder_group)],
            yes_bid=np.full(len(rows), -1, dtype=np.int64),
            no_bid=np.full(len(rows), -1, dtype=np.int64),
            books=[empty] * len(rows),
            row_of={info.market: row for row, info in enumerate(rows)},
            event_of_row=np.repeat(np.arange(len(events), dtype=np.int64), sizes),
        )

    def refresh(self, books: Mapping[str, OrderBook]) -> None:
        """Read every market's best bids (after a rebuild; :meth:`update` after that).

        Pass only books that are VALID (``BookStatus``); a market without a book offers
        nothing, so no set containing it passes the screen.
        """
        empty = OrderBook("")
        held = [books.get(market, empty) for market in self.markets]
        self.books = held
        self.yes_bid = _best_bids([book.yes.best for book in held], [b.yes.unit for b in held])
        self.no_bid = _best_bids([book.no.best for book in held], [b.no.unit for b in held])

    def ladders_of(self, event: int) -> list[list[int]]:
        """The event's ladders, each its rows broad to narrow."""
        if self._ladders_by_event is None:
            by_event: dict[int, list[list[int]]] = {}
            for position, row in enumerate(self.ladder_rows.tolist()):
                ladders = by_event.setdefault(int(self.event_of_row[row]), [])
                if self.ladder_first[position]:
                    ladders.append([])
                ladders[-1].append(row)
            self._ladders_by_event = by_event
        return self._ladders_by_event.get(event, [])

    def update(self, market: str, book: OrderBook | None) -> bool:
        """Read one market's best bids after its book changed (None: not trusted now).

        Returns False for a market the table does not hold.
        """
        row = self.row_of.get(market)
        if row is None:
            return False
        held = book if book is not None else OrderBook("")
        self.books[row] = held
        self.yes_bid[row] = _best_bid(held.yes.best, held.yes.unit)
        self.no_bid[row] = _best_bid(held.no.best, held.no.unit)
        return True


def _best_bid(tick: int, unit: int) -> int:
    return tick * unit if tick >= 0 else -1


def _row_key(info: MarketInfo) -> tuple[float, str]:
    key = _ladder_key(info)
    return (0.0 if key is None else key, info.market)


def _best_bids(best_ticks: list[int], units: list[int]) -> Int64Array:
    ticks = np.array(best_ticks, dtype=np.int64)
    prices = ticks * np.array(units, dtype=np.int64)
    return np.where(ticks >= 0, prices, -1)


def _ladders(rows: list[MarketInfo]) -> tuple[Int64Array, Int64Array]:
    """Rows on ladders (same event and strike type, two markets or more), broad to narrow."""
    groups: dict[tuple[str, str], list[tuple[float, str, int]]] = {}
    for row, info in enumerate(rows):
        key = _ladder_key(info)
        if key is not None:
            groups.setdefault((info.event, info.strike_type), []).append((key, info.market, row))
    order: list[int] = []
    group_of: list[int] = []
    for members in (sorted(m) for m in groups.values() if len(m) >= 2):
        group_of.extend([group_of[-1] + 1 if group_of else 0] * len(members))
        order.extend(row for _, _, row in members)
    return np.array(order, dtype=np.int64), np.array(group_of, dtype=np.int64)


# --- the screen -------------------------------------------------------------------------


def _all_in_ask(other_bid: Int64Array, table: EventTable) -> Int64Array:
    """Cheapest cost of one contract: the ask plus the fee floored (a lower bound)."""
    ask = ONE_DOLLAR - other_bid
    fee = (table.rate_num * ask * (ONE_DOLLAR - ask)) // (table.rate_den * ONE_DOLLAR)
    return np.where(other_bid >= 0, ask + fee, NO_ASK)


@dataclass(frozen=True, slots=True)
class Candidates:
    """Sets whose top-of-book cost is below their payout: worth walking."""

    atomic_yes: Int64Array
    """Event indexes."""
    atomic_no: Int64Array
    ladder_pairs: list[tuple[int, int]]
    """(broad row bought YES, narrow row bought NO)."""


SMALL_SCREEN: Final = 8
"""Up to this many events are screened one by one in Python: numpy's per-call cost
would dominate (a replay scans one event per book change)."""


def screen(table: EventTable, events: Collection[int] | None = None) -> Candidates:
    """The top-of-book pass: vectorized over every event, or over ``events`` only.

    Both give the same candidates for the events screened (a property test holds
    them to it).
    """
    if events is not None and len(events) <= SMALL_SCREEN:
        return _screen_few(table, sorted(events))
    yes_cost = _all_in_ask(table.no_bid, table)
    no_cost = _all_in_ask(table.yes_bid, table)
    starts = table.event_start[:-1]
    sizes = np.diff(table.event_start)
    yes_sets = np.add.reduceat(yes_cost, starts) if len(starts) else starts
    no_sets = np.add.reduceat(no_cost, starts) if len(starts) else starts
    atomic_yes = np.flatnonzero(table.atomic_yes_ok & (yes_sets < ONE_DOLLAR))
    atomic_no = np.flatnonzero(table.atomic_no_ok & (no_sets < (sizes - 1) * ONE_DOLLAR))
    return Candidates(atomic_yes, atomic_no, _ladder_pairs(table, yes_cost, no_cost))


def _row_cost(bid: int, num: int, den: int) -> int:
    """:func:`_all_in_ask` of one row, in Python integers (the same floor division)."""
    if bid < 0:
        return NO_ASK
    ask = ONE_DOLLAR - bid
    return ask + (num * ask * (ONE_DOLLAR - ask)) // (den * ONE_DOLLAR)


def _screen_few(table: EventTable, events: list[int]) -> Candidates:
    atomic_yes: list[int] = []
    atomic_no: list[int] = []
    pairs: list[tuple[int, int]] = []
    for event in events:
        start, end = int(table.event_start[event]), int(table.event_start[event + 1])
        rows = range(start, end)
        nums, dens = table.rate_num, table.rate_den
        yes = {r: _row_cost(int(table.no_bid[r]), int(nums[r]), int(dens[r])) for r in rows}
        no = {r: _row_cost(int(table.yes_bid[r]), int(nums[r]), int(dens[r])) for r in rows}
        if table.atomic_yes_ok[event] and sum(yes.values()) < ONE_DOLLAR:
            atomic_yes.append(event)
        if table.atomic_no_ok[event] and sum(no.values()) < (len(rows) - 1) * ONE_DOLLAR:
            atomic_no.append(event)
        for ladder in table.ladders_of(event):
            for position, narrow in enumerate(ladder):
                pairs += [
                    (b, narrow) for b in ladder[:position] if yes[b] + no[narrow] < ONE_DOLLAR
                ]
    return Candidates(
        np.array(atomic_yes, dtype=np.int64), np.array(atomic_no, dtype=np.int64), pairs
    )


def _ladder_pairs(
    table: EventTable, yes_cost: Int64Array, no_cost: Int64Array
) -> list[tuple[int, int]]:
    rows = table.ladder_rows
    if len(rows) == 0:
        return []
    offset = table.ladder_group * _GROUP_OFFSET
    # Later ladders sit lower by the offset, so one running minimum restarts per ladder.
    running = np.minimum.accumulate(yes_cost[rows] - offset)
    cheapest_broader = np.r_[NO_ASK, running[:-1]] + offset
    cheapest_broader[table.ladder_first] = NO_ASK
    narrow = np.flatnonzero(cheapest_broader + no_cost[rows] < ONE_DOLLAR)
    pairs: list[tuple[int, int]] = []
    group_start = np.flatnonzero(table.ladder_first)
    for position in narrow.tolist():
        first = int(group_start[table.ladder_group[position]])
        narrow_row = int(rows[position])
        for broad_row in rows[first:position].tolist():
            if yes_cost[broad_row] + no_cost[narrow_row] < ONE_DOLLAR:
                pairs.append((broad_row, narrow_row))
    return pairs


# --- depth ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArbLeg:
    market: str
    side: Side
    walk: Walk

    @property
    def count(self) -> Count:
        return self.walk.count

    @property
    def limit_price(self) -> Micros:
        return self.walk.limit_price

    def to_leg(self) -> Leg:
        return Leg(
            market=self.market,
            side=self.side,
            action=Action.BUY,
            price=self.limit_price,
            count=self.count,
        )


@dataclass(frozen=True, slots=True)
class Opportunity:
    """A set of buys that pays ``payout`` whatever happens, for ``cost`` all-in."""

    kind: ArbKind
    event: str
    legs: tuple[ArbLeg, ...]
    sets: Count
    """Sets bought (hundredths; whole contracts): every leg buys this many."""
    payout: Micros
    cost: Micros
    close_ts_ns: int

    @property
    def edge(self) -> Micros:
        """Profit after fees of the whole opportunity."""
        return self.payout - self.cost

    @property
    def edge_per_set(self) -> Micros:
        """Profit after fees per set of one contract per leg (floored)."""
        return self.edge * COUNT_PER_CONTRACT // self.sets

    @property
    def roi(self) -> float:
        return roi(self.edge, self.cost)

    @property
    def score(self) -> float:
        return score(self.roi, 1.0, self.sets)

    def signal_legs(self) -> list[Leg]:
        return [leg.to_leg() for leg in self.legs]


def _lot_profit(ladders: Sequence[AskLadder], payout: Micros, sets: int) -> float:
    """Unrounded profit of the last whole set of ``sets`` (falls as the walk goes deeper)."""
    total = float(payout)
    for ladder in ladders:
        high = ladder.notional_and_fee_numerator(sets * COUNT_PER_CONTRACT)
        low = ladder.notional_and_fee_numerator((sets - 1) * COUNT_PER_CONTRACT)
        total -= high[0] - low[0] + float(ladder.exact_fee(high[1] - low[1]))
    return total


def best_size(
    ladders: Sequence[AskLadder], payout: Micros, min_edge: Micros = 1, max_sets: int | None = None
) -> int:
    """Whole sets maximizing profit after fees; 0 when no size makes ``min_edge``.

    Each further set costs at least as much as the one before (levels are walked
    cheapest first), so unrounded profit is concave: bisect for the last set that
    still adds profit, then step back while rounding the fees up eats the edge.
    ``max_sets`` caps the size (the capital the caller will commit).
    """
    most = min(ladder.depth for ladder in ladders) // COUNT_PER_CONTRACT
    if max_sets is not None:
        most = min(most, max_sets)
    low, high = 0, most
    while low < high:
        middle = (low + high + 1) // 2
        if _lot_profit(ladders, payout, middle) > 0:
            low = middle
        else:
            high = middle - 1
    while low > 0 and _profit(ladders, payout, low) < min_edge:
        low -= 1
    return low


def _profit(ladders: Sequence[AskLadder], payout: Micros, sets: int) -> Micros:
    count = sets * COUNT_PER_CONTRACT
    return payout * sets - sum(ladder.cost(count) for ladder in ladders)


def _opportunity(
    table: EventTable,
    kind: ArbKind,
    event: str,
    legs: Sequence[tuple[int, Side]],
    payout: Micros,
    min_edge: Micros,
    budget: Micros | None,
) -> Opportunity | None:
    ladders = [AskLadder(table.books[row].asks(side), table.rates[row]) for row, side in legs]
    sets = best_size(ladders, payout, min_edge, None if budget is None else budget // payout)
    if sets == 0:
        return None
    count = sets * COUNT_PER_CONTRACT
    walks = [ladder.walk(count) for ladder in ladders]
    return Opportunity(
        kind=kind,
        event=event,
        legs=tuple(
            ArbLeg(table.markets[row], side, walk)
            for (row, side), walk in zip(legs, walks, strict=True)
        ),
        sets=count,
        payout=payout * sets,
        cost=sum(walk.cost for walk in walks),
        close_ts_ns=max(table.infos[row].close_ts_ns for row, _ in legs),
    )


def scan(
    table: EventTable,
    min_edge: Micros = 1,
    *,
    events: Collection[int] | None = None,
    budget: Micros | None = None,
) -> list[Opportunity]:
    """Every arbitrage of the table's current books, best score first.

    ``min_edge`` is the least profit after fees (whole opportunity) worth reporting;
    ``events`` (indexes into ``table.events``) limits the walk to those events, e.g.
    the ones whose books changed; ``budget`` caps each opportunity's payout, so
    its cost (always below the payout) stays within the capital to commit.
    """
    found: list[Opportunity | None] = []
    candidates = screen(table, events)
    wanted = None if events is None else set(events)

    def keep(event_index: int) -> bool:
        return wanted is None or event_index in wanted

    for event_index, side, kind in (
        *((e, Side.YES, ArbKind.ATOMIC_YES) for e in candidates.atomic_yes.tolist()),
        *((e, Side.NO, ArbKind.ATOMIC_NO) for e in candidates.atomic_no.tolist()),
    ):
        if not keep(event_index):
            continue
        rows = range(int(table.event_start[event_index]), int(table.event_start[event_index + 1]))
        payout = ONE_DOLLAR if side is Side.YES else (len(rows) - 1) * ONE_DOLLAR
        legs = [(row, side) for row in rows]
        event = table.events[event_index]
        found.append(_opportunity(table, kind, event, legs, payout, min_edge, budget))
    for broad, narrow in candidates.ladder_pairs:
        if not keep(int(table.event_of_row[broad])):
            continue
        legs = [(broad, Side.YES), (narrow, Side.NO)]
        event = table.infos[broad].event
        found.append(_opportunity(table, ArbKind.LADDER, event, legs, ONE_DOLLAR, min_edge, budget))
    return sorted((o for o in found if o is not None), key=lambda o: o.score, reverse=True)
