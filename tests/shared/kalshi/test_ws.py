"""KalshiWebSocket against the real simulator: snapshots, gap-free deltas, reconnects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

import httpx
import pytest

from services.simulator.server import SimulatorServer
from shared.kalshi import (
    Connected,
    Disconnected,
    KalshiRest,
    KalshiWebSocket,
    KalshiWsError,
    ReconnectPolicy,
    Resubscribed,
    SubscriptionActive,
    WsEvent,
)
from shared.kalshi import models as m
from shared.kalshi.signing import Signer, generate_private_key
from shared.money import ONE_DOLLAR, contracts, parse_dollars
from tests.services.simulator.kit import signer, start_server

FAST = ReconnectPolicy(initial_s=0.05, max_s=0.2, jitter=0.1)
WAIT_S = 5.0
E = TypeVar("E")


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    sim = start_server()
    yield sim
    sim.stop()


class Recorder:
    """The handler: keeps every event and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[WsEvent] = []
        self._changed = asyncio.Condition()

    async def __call__(self, event: WsEvent) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def of(self, kind: type[E], where: Callable[[E], bool] = lambda _: True) -> list[E]:
        return [e for e in self.events if isinstance(e, kind) and where(e)]

    async def wait_for(
        self, kind: type[E], where: Callable[[E], bool] = lambda _: True, count: int = 1
    ) -> list[E]:
        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.of(kind, where)) >= count)

        await asyncio.wait_for(enough(), WAIT_S)
        return self.of(kind, where)


@pytest.fixture
async def feed(server: SimulatorServer) -> AsyncIterator[tuple[KalshiWebSocket, Recorder]]:
    recorder = Recorder()
    ws = KalshiWebSocket(server.ws_url, signer("alice"), recorder, reconnect=FAST)
    await ws.start()
    yield ws, recorder
    await ws.close()


@pytest.fixture
async def rest(server: SimulatorServer) -> AsyncIterator[KalshiRest]:
    async with KalshiRest(server.rest_url, signer=signer("bob")) as client:
        yield client


def bracket(server: SimulatorServer, day: int = 1) -> list[str]:
    event = server.state.scenario.city_days[day].bracket_event
    return list(server.state.exchange.events[event].markets)


async def rest_inside_spread(rest: KalshiRest, ticker: str, side: m.LegSide) -> m.CreateOrderV2:
    """A resting order one tick better than the best bid of ``side`` (cent grid)."""
    market = await rest.get_market(ticker)
    best = parse_dollars(
        (market.yes_bid_dollars if side == "yes" else market.no_bid_dollars) or "0"
    )
    order = m.new_order(ticker, side, "buy", best + 10_000, contracts(1))
    await rest.create_order(order)
    return order


def seqs(recorder: Recorder, sid: int) -> list[int]:
    return [
        e.seq
        for e in recorder.events
        if isinstance(e, m.OrderbookSnapshot | m.OrderbookDelta) and e.sid == sid
    ]


async def test_snapshot_then_gap_free_deltas_on_the_yes_scale(
    server: SimulatorServer, feed: tuple[KalshiWebSocket, Recorder], rest: KalshiRest
) -> None:
    ws, recorder = feed
    tickers = bracket(server)[:2]
    sid = await ws.subscribe("orderbook_delta", tickers)
    assert recorder.of(SubscriptionActive)[0].sid == sid
    snapshots = await recorder.wait_for(m.OrderbookSnapshot, count=2)
    assert [s.msg.market_ticker for s in snapshots] == tickers
    assert [s.seq for s in snapshots] == [1, 2]

    no_order = await rest_inside_spread(rest, tickers[0], "no")  # NO bid at p: YES scale 1 - p
    await rest_inside_spread(rest, tickers[1], "yes")
    deltas = await recorder.wait_for(m.OrderbookDelta, count=2)
    assert seqs(recorder, sid) == [1, 2, 3, 4]
    no_delta = next(d for d in deltas if d.msg.side == "no")
    assert parse_dollars(no_delta.msg.price_dollars) == parse_dollars(no_order.price)
    assert parse_dollars(no_order.price) == ONE_DOLLAR - parse_dollars(
        (await rest.get_market(tickers[0])).no_bid_dollars or "0"
    )
    assert ws.subscriptions[sid].params == {"use_yes_price": True}
    assert not ws.stale()


async def test_reconnect_resubscribes_with_new_sids_and_fresh_snapshots(
    server: SimulatorServer, feed: tuple[KalshiWebSocket, Recorder], rest: KalshiRest
) -> None:
    ws, recorder = feed
    tickers = bracket(server, 0)[:3]
    first = await ws.subscribe("ticker", tickers)
    book_sid = await ws.subscribe("orderbook_delta", tickers[:2])
    await ws.unsubscribe([first])  # so the restored orderbook subscription gets another sid
    await recorder.wait_for(m.OrderbookSnapshot, count=2)

    async with httpx.AsyncClient(base_url=server.base_url) as sim:
        (await sim.post("/sim/faults", json={"ws_disconnect": True})).raise_for_status()
        await rest_inside_spread(rest, tickers[0], "yes")  # anything queued triggers the drop
        (disconnected,) = await recorder.wait_for(Disconnected)
        (restored,) = await recorder.wait_for(Resubscribed)
        await sim.delete("/sim/faults")

    assert "closed" in disconnected.reason
    assert [c.connection for c in recorder.of(Connected)] == [1, 2]
    new_sid = restored.sid_map[book_sid]
    assert restored.sid_map == {book_sid: new_sid} and restored.failed == {}
    assert new_sid != book_sid
    activation = recorder.of(SubscriptionActive, lambda e: e.replaces == book_sid)
    assert [a.sid for a in activation] == [new_sid]
    fresh = await recorder.wait_for(m.OrderbookSnapshot, lambda s: s.sid == new_sid, count=2)
    assert [s.seq for s in fresh] == [1, 2]
    order = recorder.events
    assert order.index(activation[0]) < order.index(fresh[0])  # sid announced before its data
    assert order.index(disconnected) < order.index(activation[0])
    assert list(ws.subscriptions) == [new_sid]


async def test_update_unsubscribe_and_list(
    server: SimulatorServer, feed: tuple[KalshiWebSocket, Recorder]
) -> None:
    ws, recorder = feed
    a, b, c = bracket(server, 2)[:3]
    sid = await ws.subscribe("orderbook_delta", [a])
    await ws.update_subscription(sid, "add_markets", [b, c])
    await ws.update_subscription(sid, "delete_markets", [c])
    assert ws.subscriptions[sid].market_tickers == (a, b)
    await ws.update_subscription(sid, "get_snapshot", [a])
    snapshots = await recorder.wait_for(m.OrderbookSnapshot, count=4)
    assert [s.msg.market_ticker for s in snapshots] == [a, b, c, a]
    assert seqs(recorder, sid) == [1, 2, 3, 4]
    assert [(s.channel, s.sid) for s in await ws.list_subscriptions()] == [("orderbook_delta", sid)]
    await ws.unsubscribe([sid])
    assert ws.subscriptions == {}
    with pytest.raises(KalshiWsError) as caught:
        await ws.subscribe("orderbook_delta", ["NO-SUCH-MARKET"])
    assert caught.value.code == 16
    with pytest.raises(KalshiWsError, match="unknown sid"):
        await ws.update_subscription(999, "add_markets", [a])


async def test_every_message_type_the_simulator_sends_decodes(
    server: SimulatorServer, feed: tuple[KalshiWebSocket, Recorder], rest: KalshiRest
) -> None:
    ws, recorder = feed
    bob_recorder = Recorder()
    ticker = bracket(server, 3)[0]
    for channel in ("orderbook_delta", "ticker", "trade", "market_lifecycle_v2"):
        await ws.subscribe(channel, [ticker])
    async with KalshiWebSocket(server.ws_url, signer("bob"), bob_recorder) as bob_ws:
        for channel in ("fill", "user_orders"):
            await bob_ws.subscribe(channel)
        order = await rest_inside_spread(rest, ticker, "yes")
        async with KalshiRest(server.rest_url, signer=signer("alice")) as alice:
            taker = m.new_order(
                ticker,
                "yes",
                "sell",
                parse_dollars(order.price),
                contracts(1),
                time_in_force="immediate_or_cancel",
            )
            await alice.create_order(taker)
        await bob_recorder.wait_for(m.FillMessage)
        await bob_recorder.wait_for(m.UserOrder, count=2)
    async with httpx.AsyncClient(base_url=server.base_url) as sim:
        (await sim.post("/sim/settle", json={"ticker": ticker, "result": "yes"})).raise_for_status()
    for kind in (m.OrderbookSnapshot, m.OrderbookDelta, m.Ticker, m.Trade, m.MarketLifecycle):
        await recorder.wait_for(kind)
    everything = recorder.events + bob_recorder.events
    assert not [e for e in everything if isinstance(e, m.UnknownMessage | m.MalformedMessage)]
    (fill,) = bob_recorder.of(m.FillMessage)
    assert (fill.msg.market_ticker, fill.msg.is_taker) == (ticker, False)


async def test_a_bad_key_never_connects(server: SimulatorServer) -> None:
    stranger = Signer("mallory", generate_private_key())
    ws = KalshiWebSocket(server.ws_url, stranger, Recorder(), reconnect=FAST, open_timeout_s=0.5)
    with pytest.raises(KalshiWsError, match="401"):
        await ws.start()
    assert ws.connect_failures >= 1
    await ws.close()


async def test_close_is_clean_and_final(server: SimulatorServer) -> None:
    recorder = Recorder()
    ws = KalshiWebSocket(server.ws_url, signer("alice"), recorder, reconnect=FAST)
    await ws.start()
    await ws.close()
    await asyncio.sleep(0.2)
    assert [type(e) for e in recorder.events] == [Connected, Disconnected]
    assert not ws.connected and ws.stale()
    with pytest.raises(KalshiWsError):
        await ws.subscribe("ticker")


@pytest.mark.parametrize("ping_s", [0.2, None])
async def test_our_own_pings_keep_a_quiet_connection_fresh(server, ping_s):
    """No book moves and the server's pings are 10 s apart: only our pongs prove life."""
    ws = KalshiWebSocket(
        server.ws_url, signer("alice"), Recorder(), reconnect=FAST, ping_interval_s=ping_s
    )
    async with ws:
        await asyncio.sleep(1.5)  # silence: nothing subscribed
        assert ws.stale(1.0) is (ping_s is None)
