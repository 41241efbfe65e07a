"""Arbitrage scanner: each kind on constructed books, nothing on fair ones, and properties."""

from __future__ import annotations

from collections.abc import Collection
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.arbitrage import (
    ArbKind,
    EventTable,
    Opportunity,
    covers_every_outcome,
    scan,
    screen,
)
from shared.book import OrderBook
from shared.fees import fee_numerator, round_up_numerator, taker_rate
from shared.messages import Action, Level, MarketInfo, PriceRange, Side
from shared.money import ONE_DOLLAR, cents, contracts, notional

RATE = taker_rate("quadratic", "1")
CENT_GRID = [PriceRange(0, ONE_DOLLAR, cents(1))]


def market(
    ticker: str,
    event: str,
    strike_type: str = "",
    floor: float | None = None,
    cap: float | None = None,
    exclusive: bool = True,
) -> MarketInfo:
    return MarketInfo(
        market=ticker,
        event=event,
        series=event.partition("-")[0],
        status="active",
        close_ts_ns=1_000,
        price_ranges=CENT_GRID,
        mutually_exclusive=exclusive,
        strike_type=strike_type,
        floor_strike=floor,
        cap_strike=cap,
    )


def book(ticker: str, yes: list[tuple[int, int]], no: list[tuple[int, int]]) -> OrderBook:
    """Bids in cents and whole contracts."""
    held = OrderBook(ticker)
    held.apply_snapshot(
        yes=[Level(cents(p), contracts(c)) for p, c in yes],
        no=[Level(cents(p), contracts(c)) for p, c in no],
    )
    return held


def weather_event(event: str = "KXHIGHNY-25DEC05") -> list[MarketInfo]:
    """Less than 33, brackets 33-34 and 35-36, greater than 36: every whole degree once."""
    return [
        market(f"{event}-T33", event, "less", cap=33.0),
        market(f"{event}-B33.5", event, "between", 33.0, 34.0),
        market(f"{event}-B35.5", event, "between", 35.0, 36.0),
        market(f"{event}-T36", event, "greater", floor=36.0),
    ]


def run(
    infos: list[MarketInfo], books: list[OrderBook], exhaustive_events: Collection[str] = ()
) -> list[Opportunity]:
    table = EventTable.build(infos, exhaustive_events)
    table.refresh({b.market: b for b in books})
    return scan(table)


def fair_books(infos: list[MarketInfo], probs: list[float], spread: int = 1) -> list[OrderBook]:
    out = []
    for info, p in zip(infos, probs, strict=True):
        mid = round(p * 100)
        out.append(
            book(info.market, [(max(mid - spread, 1), 50)], [(max(100 - mid - spread, 1), 50)])
        )
    return out


def leg_cost(fills: tuple[Level, ...]) -> int:
    """A leg's cost recomputed from its fills: notional plus one order's fee."""
    spent = sum(notional(f.price, f.count) for f in fills)
    fee_num = sum(fee_numerator(f.price, f.count, RATE) for f in fills)
    return spent + round_up_numerator(fee_num, RATE)


# --- exhaustiveness --------------------------------------------------------------------


def test_weather_brackets_cover_every_outcome() -> None:
    assert covers_every_outcome(weather_event())


def test_gaps_overlaps_and_missing_tails_are_not_exhaustive() -> None:
    e = "E"
    less, low, high, greater = weather_event(e)
    gap = market("G", e, "between", 34.0, 34.0)  # 35-36 replaced by 34-34: 35 and 36 uncovered
    assert not covers_every_outcome([less, low, gap, greater])
    overlap = market("O", e, "between", 34.0, 36.0)
    assert not covers_every_outcome([less, low, overlap, greater])
    assert not covers_every_outcome([less, low, high])
    assert not covers_every_outcome([low, high, greater])
    assert not covers_every_outcome([less, low, high, greater, market("X", e)])
    assert not covers_every_outcome([])


def test_inclusive_tails_and_finer_steps() -> None:
    e = "E"
    inclusive = [
        market("A", e, "less_or_equal", cap=32.0),
        market("B", e, "between", 33.0, 34.0),
        market("C", e, "greater_or_equal", floor=35.0),
    ]
    assert covers_every_outcome(inclusive)
    rates = [
        market("A", e, "less", cap=4.25),
        market("B", e, "between", 4.25, 4.49),
        market("C", e, "between", 4.50, 4.74),
        market("D", e, "greater", floor=4.74),
    ]
    assert covers_every_outcome(rates, Decimal("0.01"))
    assert not covers_every_outcome(rates)


# --- atomic ----------------------------------------------------------------------------


def test_fair_books_report_nothing() -> None:
    weather = weather_event()
    ladder = [
        market(f"L-T{k}", "L", "greater", floor=float(k), exclusive=False) for k in (30, 32, 34)
    ]
    plain = [market(f"P-{i}", "P") for i in range(3)]
    infos = weather + ladder + plain
    probs = [0.1, 0.3, 0.4, 0.2, 0.8, 0.5, 0.2, 0.2, 0.3, 0.5]
    assert run(infos, fair_books(infos, probs)) == []


def test_atomic_yes_found_with_depth_and_fees() -> None:
    event = "KXHIGHNY-25DEC05"
    # YES asks 0.30 (NO bids 0.70) on three markets, 0.01 on the fourth. The third has 5 at
    # 0.30 then 10 at 0.36: a 6th set would cost 0.97 + fees 0.0162 > $1, so 5 sets.
    books = [
        book(f"{event}-T33", [(20, 10)], [(70, 10)]),
        book(f"{event}-B33.5", [(20, 10)], [(70, 20)]),
        book(f"{event}-B35.5", [(20, 10)], [(70, 5), (64, 10)]),
        book(f"{event}-T36", [(1, 10)], [(99, 10)]),
    ]
    overlapping = [*weather_event()[:3], market(f"{event}-T36", event, "greater", floor=34.0)]
    assert not covers_every_outcome(overlapping)
    assert run(overlapping, books) == []

    found = run(weather_event(), books)
    assert [o.kind for o in found] == [ArbKind.ATOMIC_YES]
    arb = found[0]
    assert arb.event == event
    assert arb.sets == contracts(5)
    assert {leg.side for leg in arb.legs} == {Side.YES}
    prices = {leg.market: leg.limit_price for leg in arb.legs}
    assert prices == {b.market: cents(30) for b in books[:3]} | {books[3].market: cents(1)}
    # fees: 5 x 0.07 x 0.3 x 0.7 = 0.0735 -> 8c on three legs; 5 x 0.07 x 0.0099 -> 1c
    assert arb.cost == 3 * (cents(150) + cents(8)) + cents(5) + cents(1)
    assert arb.payout == 5 * ONE_DOLLAR
    assert arb.edge == cents(20)
    assert arb.edge_per_set == cents(4)
    assert arb.signal_legs()[0].action is Action.BUY
    assert arb.signal_legs()[0].count == contracts(5)


def test_atomic_yes_needs_exclusive_and_exhaustive() -> None:
    infos = weather_event()
    books = [book(i.market, [(10, 10)], [(80, 10)]) for i in infos]  # YES asks 0.20 x 4 = 0.80
    assert [o.kind for o in run(infos, books)] == [ArbKind.ATOMIC_YES]
    loose = [
        market(i.market, i.event, i.strike_type, i.floor_strike, i.cap_strike, False) for i in infos
    ]
    assert run(loose, books) == []
    # without strikes exhaustiveness is unknown unless the caller declares it
    plain = [market(i.market, i.event) for i in infos]
    assert run(plain, books) == []
    declared = run(plain, books, exhaustive_events={infos[0].event})
    assert [o.kind for o in declared] == [ArbKind.ATOMIC_YES]


def test_atomic_no_found() -> None:
    infos = [market(f"P-{i}", "P") for i in range(3)]
    # YES bids 0.40 -> NO asks 0.60; three NOs cost 1.80 + 3 x 0.0168 < $2 (one YES at most)
    books = [book(i.market, [(40, 10)], [(55, 10)]) for i in infos]
    found = run(infos, books)
    assert [o.kind for o in found] == [ArbKind.ATOMIC_NO]
    arb = found[0]
    assert arb.sets == contracts(10)
    assert all(leg.side is Side.NO and leg.limit_price == cents(60) for leg in arb.legs)
    # per leg: $6.00 + ceil(10 x 0.0168 = 0.168) = 17c
    assert arb.cost == 3 * cents(617)
    assert arb.payout == 2 * contracts(10) * ONE_DOLLAR // 100
    assert arb.edge == cents(2000 - 1851)
    for leg in arb.legs:
        assert leg_cost(leg.walk.fills) == leg.walk.cost


# --- ladder ----------------------------------------------------------------------------


def ladder_event() -> list[MarketInfo]:
    return [
        market(f"L-T{k}", "L", "greater", floor=float(k), exclusive=False) for k in (30, 32, 34)
    ]


def test_ladder_found_for_every_broken_pair() -> None:
    infos = ladder_event()
    books = [
        book("L-T30", [(48, 10)], [(50, 10)]),  # YES ask 0.50
        book("L-T32", [(45, 10)], [(53, 3)]),  # YES ask 0.47, only 3 deep
        book("L-T34", [(60, 7)], [(38, 10)]),  # YES bid 0.60 above both asks: NO ask 0.40
    ]
    found = {(o.legs[0].market, o.legs[1].market): o for o in run(infos, books)}
    assert set(found) == {("L-T30", "L-T34"), ("L-T32", "L-T34")}
    arb = found["L-T30", "L-T34"]
    assert arb.kind is ArbKind.LADDER
    assert [(leg.side, leg.limit_price) for leg in arb.legs] == [
        (Side.YES, cents(50)),
        (Side.NO, cents(40)),
    ]
    assert arb.sets == contracts(7)
    # 7 x 0.0175 = 0.1225 -> 13c; 7 x 0.0168 = 0.1176 -> 12c
    assert arb.cost == cents(350 + 13 + 280 + 12)
    assert arb.edge == cents(45)
    assert found["L-T32", "L-T34"].sets == contracts(3)
    ranked = run(infos, books)
    assert ranked[0].score >= ranked[1].score


def test_less_ladder_buys_the_higher_cap() -> None:
    infos = [
        market("L-LT35", "L", "less", cap=35.0, exclusive=False),
        market("L-LT40", "L", "less", cap=40.0, exclusive=False),
    ]
    books = [book("L-LT35", [(60, 5)], [(35, 5)]), book("L-LT40", [(48, 5)], [(50, 5)])]
    found = run(infos, books)
    assert len(found) == 1
    assert [(leg.market, leg.side) for leg in found[0].legs] == [
        ("L-LT40", Side.YES),
        ("L-LT35", Side.NO),
    ]


def test_a_fee_eaten_ladder_is_not_reported() -> None:
    # YES ask 0.50 + NO ask 0.49 = 0.99 < $1, but fees of 2c + 2c eat the cent
    infos = ladder_event()[:2]
    books = [book("L-T30", [(48, 10)], [(50, 10)]), book("L-T32", [(51, 10)], [(40, 10)])]
    assert run(infos, books) == []


def test_missing_books_and_empty_sides_report_nothing() -> None:
    infos = weather_event()
    assert run(infos, []) == []
    books = [book(i.market, [(10, 10)], []) for i in infos]  # no YES asks at all
    assert run(infos, books) == []


# --- properties ------------------------------------------------------------------------


def bid_levels(low: int = 1, min_size: int = 0) -> st.SearchStrategy[list[tuple[int, int]]]:
    pairs = st.tuples(st.integers(low, 99), st.integers(1, 30))
    return st.lists(pairs, min_size=min_size, max_size=4).map(lambda ls: sorted(dict(ls).items()))


@st.composite
def random_books(draw: st.DrawFn) -> tuple[list[MarketInfo], list[OrderBook]]:
    """Random uncrossed books; one side's bids are often high, making the other side cheap."""
    infos = weather_event("W") + ladder_event() + [market(f"P-{i}", "P") for i in range(3)]
    books, low, yes_first = [], draw(st.sampled_from([1, 70, 80])), draw(st.booleans())
    for info in infos:
        first = draw(bid_levels(low, min_size=1))
        best = max((p for p, _ in first), default=0)
        second = [(p, c) for p, c in draw(bid_levels()) if p + best < 100]  # never crossed
        yes, no = (first, second) if yes_first else (second, first)
        books.append(book(info.market, yes, no))
    return infos, books


@settings(max_examples=200, deadline=None)
@given(random_books())
def test_every_reported_arbitrage_pays_after_fees(
    case: tuple[list[MarketInfo], list[OrderBook]],
) -> None:
    infos, books = case
    by_market = {b.market: b for b in books}
    for arb in run(infos, books):
        assert arb.sets > 0 and arb.sets % 100 == 0
        total = 0
        for leg in arb.legs:
            assert leg.count == arb.sets == sum(f.count for f in leg.walk.fills)
            available = dict((lv.price, lv.count) for lv in by_market[leg.market].asks(leg.side))
            for fill in leg.walk.fills:
                assert fill.count <= available[fill.price]
            total += leg_cost(leg.walk.fills)
        assert total == arb.cost
        per_set = {ArbKind.ATOMIC_YES: 1, ArbKind.LADDER: 1}.get(arb.kind, len(arb.legs) - 1)
        assert arb.payout == per_set * ONE_DOLLAR * arb.sets // 100
        assert arb.payout - total > 0


def _brute_best_profit(books: list[OrderBook], sides: list[Side], payout: int) -> int:
    best, depth = (
        0,
        min(sum(lv.count for lv in b.asks(s)) for b, s in zip(books, sides, strict=True)),
    )
    for sets in range(1, depth // 100 + 1):
        cost = 0
        for b, s in zip(books, sides, strict=True):
            left, fills = sets * 100, []
            for lv in b.asks(s):
                take = min(left, lv.count)
                if take:
                    fills.append(Level(lv.price, take))
                left -= take
            cost += leg_cost(tuple(fills))
        best = max(best, payout * sets - cost)
    return best


@settings(max_examples=150, deadline=None)
@given(random_books())
def test_no_clear_arbitrage_is_missed(case: tuple[list[MarketInfo], list[OrderBook]]) -> None:
    """Whatever pays more than a cent per leg (the fee rounding) at some size is reported."""
    infos, books = case
    found = {(o.kind, tuple(leg.market for leg in o.legs)) for o in run(infos, books)}
    weather, ladder, plain = books[:4], books[4:7], books[7:]
    expected = []
    if _brute_best_profit(weather, [Side.YES] * 4, ONE_DOLLAR) > cents(5):
        expected.append((ArbKind.ATOMIC_YES, tuple(b.market for b in weather)))
    for group in (weather, plain):
        if _brute_best_profit(group, [Side.NO] * len(group), (len(group) - 1) * ONE_DOLLAR) > cents(
            len(group) + 1
        ):
            expected.append((ArbKind.ATOMIC_NO, tuple(b.market for b in group)))
    for i in range(3):
        for j in range(i + 1, 3):
            pair = [ladder[i], ladder[j]]
            if _brute_best_profit(pair, [Side.YES, Side.NO], ONE_DOLLAR) > cents(3):
                expected.append((ArbKind.LADDER, (ladder[i].market, ladder[j].market)))
    assert set(expected) <= found


@settings(max_examples=150, deadline=None)
@given(random_books())
def test_screening_a_few_events_finds_what_the_whole_screen_finds(
    case: tuple[list[MarketInfo], list[OrderBook]],
) -> None:
    infos, books = case
    table = EventTable.build(infos)
    table.refresh({b.market: b for b in books})
    whole = screen(table)
    for wanted in ([0], [1], [2], [0, 2], list(range(len(table.events)))):
        few = screen(table, wanted)
        assert few.atomic_yes.tolist() == [e for e in whole.atomic_yes.tolist() if e in wanted]
        assert few.atomic_no.tolist() == [e for e in whole.atomic_no.tolist() if e in wanted]
        in_wanted = [p for p in whole.ladder_pairs if table.event_of_row[p[0]] in wanted]
        assert few.ladder_pairs == in_wanted
