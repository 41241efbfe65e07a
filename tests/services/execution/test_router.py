"""The router over the paper venue and real Postgres: sniper, FOK legs and their unwind,
maker queues, claims that never send twice, and unknown states resolved by lookup."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

from services.execution.paper import PaperVenue
from services.execution.records import ExecutionStore
from services.execution.router import Router
from services.execution.venue import OrderRequest, OrderStateUnknown, VenueOrder
from shared.fees import maker_rate, taker_rate
from shared.ids import client_order_id, intent_id
from shared.ledger import Ledger
from shared.marketbooks import MarketBooks
from shared.messages import (
    Action,
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    Fill,
    Hop,
    Leg,
    Level,
    OrderIntent,
    OrderLeg,
    OrderStatus,
    Route,
    Side,
    Trade,
)
from shared.money import cents, contracts, notional
from shared.store.migrations import open_migrated

NOW = 1_800_000_000 * 10**9
RATES = (taker_rate("quadratic", "1"), maker_rate("quadratic", "1"))
A, B = "KXT-1-A", "KXT-1-B"


class Recorder:
    """The service's sink and report, kept in lists (the store is the real one)."""

    def __init__(self, store: ExecutionStore, ledger: Ledger) -> None:
        self.store, self.ledger = store, ledger
        self.fills: list[Fill] = []
        self.events: list[tuple[VenueOrder, Leg, list[Hop]]] = []

    async def on_fill(self, fill: Fill) -> None:
        if await self.store.record_fill(fill, self.ledger):
            self.fills.append(fill)

    async def on_order(self, order: VenueOrder) -> None:
        pass

    async def report(self, order: VenueOrder, leg: Leg, hops: list[Hop]) -> None:
        await self.store.update(order, NOW)
        self.events.append((order, leg, hops))


def snapshot(market: str, yes: list[tuple[int, int]], no: list[tuple[int, int]]) -> BookSnapshot:
    return BookSnapshot(
        market=market,
        event="KXT-1",
        yes_bids=[Level(cents(p), contracts(c)) for p, c in yes],
        no_bids=[Level(cents(p), contracts(c)) for p, c in no],
        seq=1,
    )


def intent(signal: str, *legs: Leg, route: Route = Route.SNIPER, expires: int = NOW + 10**9):
    return OrderIntent(
        intent_id=intent_id(signal),
        signal_id=signal,
        strategy="arbitrage",
        event="KXT-1",
        route=route,
        orders=[
            OrderLeg(client_order_id=client_order_id(signal, i), leg=leg)
            for i, leg in enumerate(legs)
        ],
        kelly_fraction=0.05,
        ev=cents(10),
        aroc=1.0,
        expires_ns=expires,
        hops=[Hop("ingest.rx", NOW - 1_000_000)],
    )


def buy(market: str, side: Side, price: int, count: int) -> Leg:
    return Leg(
        market=market, side=side, action=Action.BUY, price=cents(price), count=contracts(count)
    )


@pytest.fixture
async def parts(database_url) -> AsyncIterator[tuple[Router, PaperVenue, Recorder, MarketBooks]]:
    pool = await open_migrated(database_url)
    store = ExecutionStore(pool)
    books = MarketBooks()
    # A: YES asks 40 (x5) and 42 (x5); B: NO asks 50 (x3) only
    books.apply(snapshot(A, yes=[(30, 10)], no=[(60, 5), (58, 5)]))
    books.apply(snapshot(B, yes=[(50, 3)], no=[(20, 10)]))
    venue = PaperVenue(books, lambda market: RATES, clock=lambda: NOW)
    recorder = Recorder(store, Ledger(contracts(0) + 10_000 * 1_000_000))
    await venue.start(recorder)
    router = Router(venue, store, books, recorder.report, clock=lambda: NOW)
    yield router, venue, recorder, books
    await pool.close()


async def test_a_sniper_buy_walks_the_book_and_pays_one_rounded_fee(parts, database_url):
    router, _, recorder, _ = parts
    await router.execute(intent("s1", buy(A, Side.YES, 42, 7)))
    assert [(f.price, f.count) for f in recorder.fills] == [
        (cents(40), contracts(5)),
        (cents(42), contracts(2)),
    ]
    # 0.07 x (5 x 0.4 x 0.6 + 2 x 0.42 x 0.58) = 0.118104 -> 12 cents, once for the order
    assert sum(f.fee for f in recorder.fills) == cents(12)
    assert recorder.events[-1][0].status is OrderStatus.FILLED
    assert router.tick_to_order_ns == [1_000_000]
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT status, filled_centi FROM orders").fetchone()
        position = conn.execute("SELECT yes_centi, cost_micros FROM positions").fetchone()
    assert row == ("filled", contracts(7))
    assert position == (
        contracts(7),
        notional(cents(40), contracts(5)) + notional(cents(42), contracts(2)),
    )


async def test_the_same_intent_twice_sends_nothing_the_second_time(parts):
    router, _, recorder, _ = parts
    first = intent("s1", buy(A, Side.YES, 40, 2))
    await router.execute(first)
    await router.execute(first)
    assert len(recorder.fills) == 1 and len(recorder.events) == 1


async def test_legs_the_book_cannot_fill_are_not_sent_at_all(parts):
    router, _, recorder, _ = parts
    # B NO wants 5 at 50 but only 3 are offered: sending A would only be unwound
    await router.execute(intent("s1", buy(A, Side.YES, 42, 5), buy(B, Side.NO, 50, 5)))
    assert recorder.fills == []
    assert {o.status for o, _, _ in recorder.events} == {OrderStatus.REJECTED}
    assert "not all available" in recorder.events[0][0].reason


class Racy(PaperVenue):
    """Says every leg is there; the book then moves before one of them arrives."""

    def available(self, leg: Leg) -> int | None:
        return leg.count


async def test_fok_legs_that_do_not_all_fill_are_unwound_as_one_episode(parts, database_url):
    router, _, recorder, books = parts
    racy = Racy(books, lambda market: RATES, clock=lambda: NOW)
    await racy.start(recorder)
    router.venue = racy
    # A YES fills (10 at <= 42); B NO wants 5 at 50 but only 3 are offered: FOK kills it
    await router.execute(intent("s1", buy(A, Side.YES, 42, 5), buy(B, Side.NO, 50, 5)))
    statuses = {(o.market, o.status, o.filled) for o, _, _ in recorder.events}
    assert (B, OrderStatus.CANCELED, 0) in statuses
    sells = [f for f in recorder.fills if f.action is Action.SELL]
    assert [(f.market, f.side, f.count) for f in sells] == [(A, Side.YES, contracts(5))]
    assert recorder.ledger.held(A, Side.YES) == 0
    with psycopg.connect(database_url) as conn:
        (detail,) = conn.execute(
            "SELECT detail FROM audit_trail WHERE action = 'episode'"
        ).fetchone()
    assert detail["outcome"] == "unwound" and len(detail["legs"]) == 2


async def test_fok_legs_that_all_fill_need_no_unwind(parts):
    router, _, recorder, _ = parts
    await router.execute(intent("s1", buy(A, Side.YES, 40, 3), buy(B, Side.NO, 50, 3)))
    assert all(f.action is Action.BUY for f in recorder.fills)
    assert recorder.ledger.held(A, Side.YES) == recorder.ledger.held(B, Side.NO) == contracts(3)


async def test_a_maker_fills_only_once_the_queue_ahead_has_traded(parts):
    router, venue, recorder, _ = parts
    # A: YES bid 30 x10; our maker bids one tick above, at 31, with nobody ahead
    await router.execute(intent("m1", buy(A, Side.YES, 35, 4), route=Route.MAKER))
    (placed, leg, _) = recorder.events[-1]
    assert placed.status is OrderStatus.RESTING and leg.price == cents(31)
    # someone else joins at 31 after us, then a NO taker hits 31: we are first
    join = BookDelta(
        market=A, event="KXT-1", side=Side.YES, price=cents(31), delta=contracts(6), seq=2
    )
    hit = Trade(
        market=A,
        event="KXT-1",
        trade_id="t1",
        taker_side=Side.NO,
        yes_price=cents(31),
        count=contracts(3),
    )
    await venue.on_market_data([join, hit])
    assert [(f.price, f.count, f.is_taker) for f in recorder.fills] == [
        (cents(31), contracts(3), False)
    ]
    # a trade at 30 (below our bid) means our level was swept: the rest fills
    swept = Trade(
        market=A,
        event="KXT-1",
        trade_id="t2",
        taker_side=Side.NO,
        yes_price=cents(30),
        count=contracts(20),
    )
    await venue.on_market_data([swept])
    assert sum(f.count for f in recorder.fills) == contracts(4)


async def test_a_maker_behind_a_queue_waits_for_it(parts):
    router, venue, recorder, books = parts
    books.apply(snapshot(A, yes=[(30, 10), (31, 8)], no=[(60, 5)]))
    # best bid 31 with 8 resting; one tick above would be 32, above the signal price
    await router.execute(intent("m1", buy(A, Side.YES, 31, 4), route=Route.MAKER))
    (_placed, leg, _) = recorder.events[-1]
    assert leg.price == cents(31)  # capped by the signal's price: joins the 8 at 31
    small = Trade(
        market=A,
        event="KXT-1",
        trade_id="t1",
        taker_side=Side.NO,
        yes_price=cents(31),
        count=contracts(8),
    )
    await venue.on_market_data([small])
    assert recorder.fills == []
    more = Trade(
        market=A,
        event="KXT-1",
        trade_id="t2",
        taker_side=Side.NO,
        yes_price=cents(31),
        count=contracts(1),
    )
    await venue.on_market_data([more])
    assert [f.count for f in recorder.fills] == [contracts(1)]


async def test_a_maker_is_faded_when_its_lifetime_ends_not_before(parts):
    router, venue, recorder, _ = parts
    await router.execute(intent("m1", buy(A, Side.YES, 35, 4), route=Route.MAKER))
    router.clock = lambda: NOW + router.config.maker_ttl_ns
    await router.fade()
    assert recorder.events[-1][0].status is OrderStatus.RESTING
    router.clock = lambda: NOW + router.config.maker_ttl_ns + 1
    await router.fade()
    assert recorder.events[-1][0].status is OrderStatus.CANCELED
    assert await venue.open_orders() == []


async def test_nothing_is_sent_while_halted_or_after_expiry(parts):
    router, _, recorder, _ = parts
    router.operator_halt = True
    await router.execute(intent("s1", buy(A, Side.YES, 40, 2)))
    router.operator_halt = False
    await router.execute(intent("s2", buy(A, Side.YES, 40, 2), expires=NOW - 1))
    assert recorder.fills == []
    assert [o.reason for o, _, _ in recorder.events] == [
        "trading halted",
        "expired before it could be sent",
    ]


class LostReply(PaperVenue):
    """The order reaches the exchange, the reply does not (a timeout)."""

    async def submit(self, request: OrderRequest) -> VenueOrder:
        await super().submit(request)
        raise OrderStateUnknown([request.client_order_id], "read timeout")


async def test_an_unknown_order_is_resolved_by_lookup_and_never_sent_twice(parts):
    router, _venue, recorder, books = parts
    lost = LostReply(books, lambda market: RATES, clock=lambda: NOW)
    await lost.start(recorder)
    router.venue = lost
    await router.execute(intent("s1", buy(A, Side.YES, 40, 2)))
    statuses = [o.status for o, _, _ in recorder.events]
    assert statuses == [OrderStatus.UNKNOWN, OrderStatus.FILLED]
    assert recorder.events[0][0].reason.startswith("api_error")
    assert len(recorder.fills) == 1


async def test_a_kill_read_from_control_outlasts_a_stale_active_portfolio(parts):
    router, _, recorder, _ = parts
    router.operator_halt = True  # the kill, read from the control stream
    router.risk_halted = False  # risk's last state, published before it saw the kill
    await router.execute(intent("s1", buy(A, Side.YES, 40, 2)))
    assert recorder.fills == [] and recorder.events[0][0].reason == "trading halted"


@pytest.mark.parametrize("halted", [False, True])
async def test_an_outbid_maker_is_repriced_unless_trading_is_halted(parts, halted):
    router, _venue, recorder, books = parts
    await router.execute(intent("m1", buy(A, Side.YES, 35, 4), route=Route.MAKER))
    assert recorder.events[-1][1].price == cents(31)
    books.apply(snapshot(A, yes=[(30, 10), (32, 5)], no=[(60, 5)]))  # someone bids 32
    router.operator_halt = halted
    await router.fade()
    statuses = [(o.status, leg.price) for o, leg, _ in recorder.events]
    assert (OrderStatus.CANCELED, cents(31)) in statuses
    repriced = (OrderStatus.RESTING, cents(33)) in statuses
    assert repriced is not halted  # a halt sends nothing new, repricing included


async def test_an_intent_whose_book_went_bad_after_its_signal_is_not_sent(parts):
    router, venue, recorder, books = parts
    books.apply(BookStatus(market=A, event="KXT-1", state=BookState.INVALID, reason="gap"))
    await router.execute(intent("s1", buy(A, Side.YES, 40, 2)))
    assert recorder.fills == [] and await venue.open_orders() == []
    assert [o.reason for o, _, _ in recorder.events] == [f"book not trusted now: {A}"]
