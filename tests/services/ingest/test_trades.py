"""Exchange trades on the market-data stream: parsing, filtering, routing, and end to end.

The end-to-end test runs ingest against the simulator's agents and compares
every published trade with the simulator's own record of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.ingest.market_data import HOP_RECEIVED
from services.ingest.recorder import Recorder
from services.ingest.service import Ingest, connect_store, load_signer
from services.ingest.trades import TradeFeed, TradeSubscription, WsRouter, to_trade
from services.simulator.model import BookSide
from shared.bus.codec import Codec
from shared.kalshi import models as km
from shared.kalshi.ws import SubscriptionSpec
from shared.messages import (
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    MarketData,
    MarketDataBatch,
    Side,
    Trade,
)
from shared.money import ONE_DOLLAR
from shared.streams import MARKET_DATA, stream_key
from tests.services.simulator.kit import start_server
from tests.services.stack import context, stack_settings, start, stop_all, wait_until


def trade_msg(**fields: Any) -> km.TradeMsg:
    base: dict[str, Any] = {
        "trade_id": "t-1",
        "market_ticker": "M-1",
        "yes_price_dollars": "0.5600",
        "no_price_dollars": "0.4400",
        "count_fp": "10.00",
        "taker_side": "yes",
        "ts_ms": 1_700_000_000_123,
    }
    base.update(fields)
    return km.TradeMsg(**base)


def frame(**fields: Any) -> km.Trade:
    return km.Trade(sid=3, msg=trade_msg(**fields))


class Captured:
    """An outbox that keeps what it is given (no Redis)."""

    def __init__(self) -> None:
        self.items: list[MarketData] = []

    def put(self, messages: list[MarketData], received_ns: int) -> None:
        for message in messages:
            message.stamp(HOP_RECEIVED, received_ns)
        self.items.extend(messages)


def feed_of(captured: Captured, **options: Any) -> TradeFeed:
    feed = TradeFeed(captured, **options)  # type: ignore[arg-type]
    feed.track("M-1", "EV-1")
    return feed


# --- parsing ----------------------------------------------------------------------------


def test_a_trade_is_parsed_exactly():
    trade = to_trade(trade_msg(), "EV-1")
    assert (trade.market, trade.event, trade.trade_id) == ("M-1", "EV-1", "t-1")
    assert trade.taker_side is Side.YES
    assert trade.yes_price == 560_000
    assert trade.count == 1000
    assert trade.exchange_ts_ns == 1_700_000_000_123_000_000


def test_subpenny_prices_and_fractional_counts_stay_exact():
    trade = to_trade(
        trade_msg(yes_price_dollars="0.1234", no_price_dollars="0.8766", count_fp="2.57"), "E"
    )
    assert (trade.yes_price, trade.count) == (123_400, 257)


@pytest.mark.parametrize(
    ("fields", "side"),
    [
        ({"taker_side": "no"}, Side.NO),
        ({"taker_side": None, "taker_outcome_side": "no"}, Side.NO),
        ({"taker_side": None, "taker_book_side": "bid"}, Side.YES),
        ({"taker_side": None, "taker_book_side": "ask"}, Side.NO),
    ],
)
def test_the_taker_side_comes_from_whichever_field_kalshi_sends(fields, side):
    assert to_trade(trade_msg(**fields), "E").taker_side is side


def test_a_missing_timestamp_is_zero():
    assert to_trade(trade_msg(ts_ms=None), "E").exchange_ts_ns == 0


MALFORMED = [
    {"yes_price_dollars": "0.5600001"},  # more than six decimals
    {"yes_price_dollars": "abc"},
    {"yes_price_dollars": "1.0000", "no_price_dollars": None},  # not a price
    {"yes_price_dollars": "0.00", "no_price_dollars": None},
    {"yes_price_dollars": "0.12345", "no_price_dollars": None},  # finer than $0.0001
    {"no_price_dollars": "0.4500"},  # does not add up to $1
    {"count_fp": "0.00"},
    {"count_fp": "-1.00"},
    {"count_fp": "1.005"},  # finer than a hundredth
    {"taker_side": "maybe"},
    {"taker_side": None},
    {"trade_id": ""},
]


@pytest.mark.parametrize("fields", MALFORMED)
def test_malformed_trades_are_counted_and_never_published(fields):
    captured = Captured()
    feed = feed_of(captured)
    feed.on_trade(frame(**fields))
    assert captured.items == []
    assert (feed.malformed, feed.published) == (1, 0)


# --- the feed ---------------------------------------------------------------------------


def test_a_followed_trade_goes_to_the_outbox_stamped_like_the_books():
    captured = Captured()
    feed = feed_of(captured)
    feed.on_trade(frame())
    [trade] = captured.items
    assert isinstance(trade, Trade)
    assert trade.event == "EV-1"
    assert [hop.name for hop in trade.hops] == [HOP_RECEIVED]
    assert (feed.received, feed.published) == (1, 1)


def test_trades_of_markets_not_followed_are_dropped():
    captured = Captured()
    feed = feed_of(captured)
    feed.on_trade(frame(market_ticker="OTHER"))
    feed.forget("M-1")
    feed.on_trade(frame(trade_id="t-2"))
    assert captured.items == []
    assert (feed.unfollowed, feed.published) == (2, 0)


def test_a_trade_seen_twice_is_published_once():
    captured = Captured()
    feed = feed_of(captured, remember=2)
    for trade_id in ("a", "a", "b", "a", "c", "a"):
        feed.on_trade(frame(trade_id=trade_id))
    # "a" is forgotten once two newer ids came after it, so it passes again at the end
    assert [t.trade_id for t in captured.items if isinstance(t, Trade)] == ["a", "b", "c", "a"]
    assert feed.duplicates == 2


async def test_the_router_sends_trades_to_the_trade_feed_and_the_rest_to_the_books():
    captured = Captured()
    feed = feed_of(captured)
    seen: list[object] = []

    async def books(event: object) -> None:
        seen.append(event)

    router = WsRouter(books, feed)
    delta = km.decode_ws(
        b'{"type":"orderbook_delta","sid":1,"seq":2,"msg":{"market_ticker":"M-1",'
        b'"price_dollars":"0.50","delta_fp":"1.00","side":"yes"}}'
    )
    broken_trade = km.decode_ws(b'{"type":"trade","sid":3,"msg":{"trade_id":"x"}}')
    broken_other = km.decode_ws(b'{"type":"orderbook_delta","sid":1,"msg":{}}')
    assert isinstance(broken_trade, km.MalformedMessage)
    for event in (delta, frame(), broken_trade, broken_other):
        await router(event)
    assert seen == [delta, broken_other]
    assert len(captured.items) == 1
    assert feed.malformed == 1


def test_the_recorder_keeps_trades_apart_from_books():
    recorder = Recorder(pool=None)  # type: ignore[arg-type]  # nothing is written here
    recorder.record([to_trade(trade_msg(), "E")], 1_700_000_000_000_000_000)
    assert recorder.deltas.pending == recorder.snapshots.pending == 0
    assert recorder.trades.pending == 1


# --- the subscription -------------------------------------------------------------------


class FakeWs:
    """What TradeSubscription uses of KalshiWebSocket, recording the commands."""

    def __init__(self) -> None:
        self.connected = True
        self.subscriptions: dict[int, SubscriptionSpec] = {}
        self.commands: list[tuple[Any, ...]] = []

    async def subscribe(self, channel: str, tickers: list[str]) -> int:
        self.commands.append(("subscribe", channel, tickers))
        sid = max(self.subscriptions, default=0) + 1
        self.subscriptions[sid] = SubscriptionSpec(channel, tuple(tickers), {})
        return sid

    async def update_subscription(self, sid: int, action: str, tickers: list[str]) -> None:
        self.commands.append((action, sid, tickers))
        spec = self.subscriptions[sid]
        now = set(spec.market_tickers or ())
        now = now | set(tickers) if action == "add_markets" else now - set(tickers)
        self.subscriptions[sid] = SubscriptionSpec(spec.channel, tuple(sorted(now)), {})

    async def unsubscribe(self, sids: list[int]) -> None:
        self.commands.append(("unsubscribe", sids))
        for sid in sids:
            del self.subscriptions[sid]


async def test_the_subscription_follows_the_markets():
    ws = FakeWs()
    ws.subscriptions[1] = SubscriptionSpec("orderbook_delta", ("A",), {})
    subscription = TradeSubscription(ws)  # type: ignore[arg-type]
    await subscription.follow(set())
    await subscription.follow({"A", "B"})
    await subscription.follow({"A", "B"})
    await subscription.follow({"B", "C"})
    await subscription.follow(set())
    assert ws.commands == [
        ("subscribe", "trade", ["A", "B"]),
        ("delete_markets", 2, ["A"]),
        ("add_markets", 2, ["C"]),
        ("unsubscribe", [2]),
    ]
    assert set(ws.subscriptions) == {1}  # the book subscription is not ours


async def test_a_surplus_trade_subscription_after_a_reconnect_is_dropped():
    ws = FakeWs()
    ws.subscriptions[4] = SubscriptionSpec("trade", ("A",), {})  # restored
    ws.subscriptions[5] = SubscriptionSpec("trade", ("A", "B"), {})  # subscribed meanwhile
    await TradeSubscription(ws).follow({"A", "B"})  # type: ignore[arg-type]
    assert ws.commands == [("unsubscribe", [5]), ("add_markets", 4, ["B"])]


async def test_nothing_is_sent_while_disconnected():
    ws = FakeWs()
    ws.connected = False
    await TradeSubscription(ws).follow({"A"})  # type: ignore[arg-type]
    assert ws.commands == []


# --- against the simulator --------------------------------------------------------------

FLOW = 2000
FOLLOWED = 60
"""Markets ingest follows (whole events, so a few less): most of the exchange is not."""


@pytest.fixture
def sim():
    server = start_server(flow_rate=FLOW, agents=True)
    yield server
    server.stop()


@pytest.fixture
async def ingest(sim, aredis, key_prefix, database_url, tmp_path) -> AsyncIterator[Ingest]:
    settings = stack_settings(
        sim,
        key_prefix,
        database_url,
        tmp_path,
        ingest={"discovery_interval_s": 30, "snapshot_interval_s": 300, "max_markets": FOLLOWED},
    )
    ctx = context("ingest", settings, aredis)
    pool = await connect_store(ctx)
    service = Ingest(ctx, load_signer(ctx), pool)
    task = start(service.run(), "ingest")
    yield service
    await stop_all([ctx], [task])
    await pool.close()


def faults(sim, body: dict[str, Any] | None) -> None:
    base = sim.rest_url.removesuffix("/trade-api/v2")
    with httpx.Client(base_url=base, timeout=30) as client:
        response = client.post("/sim/faults", json=body) if body else client.delete("/sim/faults")
        response.raise_for_status()


async def quiesce(sim, service: Ingest) -> None:
    """Stop the agents' flow and wait until the last frames have come through."""

    def stop_flow() -> None:
        sim.state.agents.flow_rate = 0

    sim.call(stop_flow)
    last = (-1, -1)
    while last != (service.feed.deltas, service.trades.received):
        last = (service.feed.deltas, service.trades.received)
        await asyncio.sleep(0.5)
    await service.outbox.flush()


async def md_items(aredis, prefix: str) -> list[MarketData]:
    codec = Codec(MARKET_DATA)
    items: list[MarketData] = []
    for _, fields in await aredis.xrange(stream_key(prefix, MARKET_DATA, 0)):
        batch = codec.decode_entry(fields)
        assert isinstance(batch, MarketDataBatch)
        items.extend(batch.items)
    return items


def assert_deltas_come_first(items: list[MarketData]) -> int:
    """Each trade of a trusted book follows the delta that took its maker's contracts.

    A YES taker lifts NO bids at $1 - yes_price; a NO taker hits YES bids at
    yes_price. Returns how many trades were checked.
    """
    valid: dict[str, bool] = {}
    last_book: dict[str, MarketData] = {}
    checked = 0
    for item in items:
        if isinstance(item, BookStatus):
            valid[item.market] = item.state is BookState.VALID
        elif isinstance(item, BookDelta | BookSnapshot):
            last_book[item.market] = item
        elif isinstance(item, Trade) and valid.get(item.market):
            before = last_book[item.market]
            yes_taker = item.taker_side is Side.YES
            assert isinstance(before, BookDelta), item
            assert before.side is (Side.NO if yes_taker else Side.YES), item
            assert before.price == (ONE_DOLLAR - item.yes_price if yes_taker else item.yes_price)
            assert before.delta == -item.count, item
            checked += 1
    return checked


@pytest.mark.slow
async def test_trades_of_followed_markets_are_published_as_the_exchange_recorded_them(
    sim, ingest, aredis, key_prefix
):
    await wait_until(lambda: ingest.trades.published >= 100, 60, "100 trades published")
    await quiesce(sim, ingest)
    items = await md_items(aredis, key_prefix)
    published = [item for item in items if isinstance(item, Trade)]
    exchange_trades = sim.call(lambda: list(sim.state.exchange.trades))
    events = sim.call(lambda: {t: m.event_ticker for t, m in sim.state.exchange.markets.items()})
    followed = set(ingest.followed)
    assert 0 < len(followed) <= FOLLOWED < len(events)

    delta_hops = [hop.name for hop in next(i for i in items if isinstance(i, BookDelta)).hops]
    assert delta_hops == [HOP_RECEIVED]
    by_id = {trade.trade_id: trade for trade in exchange_trades}
    for trade in published:
        truth = by_id[trade.trade_id]
        assert trade.market == truth.ticker and trade.market in followed
        assert trade.event == events[truth.ticker]
        assert trade.yes_price == truth.yes_price
        assert trade.count == truth.count
        assert trade.taker_side is (Side.YES if truth.taker_side is BookSide.BID else Side.NO)
        assert trade.exchange_ts_ns == truth.ts_ms * 1_000_000
        assert [hop.name for hop in trade.hops] == delta_hops  # stamped like the books

    # from the first trade published on, every trade of a followed market, in order,
    # and none of the many trades of the markets ingest does not follow
    first = next(i for i, t in enumerate(exchange_trades) if t.trade_id == published[0].trade_id)
    since = exchange_trades[first:]
    assert [t.trade_id for t in published] == [t.trade_id for t in since if t.ticker in followed]
    assert sum(t.ticker not in followed for t in since) > len(published)

    assert assert_deltas_come_first(items) > len(published) // 2
    assert ingest.trades.malformed == 0
    assert ingest.info()["trades"] == str(len(published))
    assert ingest.recorder is not None
    await ingest.recorder.flush()  # trades went through the recorder without harm


@pytest.mark.slow
async def test_after_a_reconnect_one_trade_subscription_carries_on(sim, ingest):
    await wait_until(lambda: ingest.trades.published >= 10, 60, "trades published")
    connections = ingest.ws.connections
    faults(sim, {"ws_disconnect": True})
    await wait_until(lambda: ingest.ws.connections > connections, 15, "a new connection")
    faults(sim, None)
    before = ingest.trades.published
    await wait_until(lambda: ingest.trades.published >= before + 10, 30, "trades again")
    await wait_until(
        lambda: (
            [set(m) for m in ingest.trade_subscription.active().values()] == [set(ingest.followed)]
        ),
        10,
        "one trade subscription, of the followed markets",
    )
