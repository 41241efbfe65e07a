"""KalshiRest against the real simulator: pagination, signing, typed answers, V2 orders."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import msgspec
import pytest

from services.simulator.server import SimulatorServer
from shared.kalshi import KalshiRest, NotFound, Unauthorized
from shared.kalshi import models as m
from shared.kalshi.signing import Signer, generate_private_key
from shared.money import contracts, parse_count, parse_dollars
from tests.services.simulator.kit import signer, start_server


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    sim = start_server()
    yield sim
    sim.stop()


@pytest.fixture
async def alice(server: SimulatorServer) -> AsyncIterator[KalshiRest]:
    async with KalshiRest(server.rest_url, signer=signer("alice")) as client:
        yield client


@pytest.fixture
async def bob(server: SimulatorServer) -> AsyncIterator[KalshiRest]:
    async with KalshiRest(server.rest_url, signer=signer("bob")) as client:
        yield client


async def test_pagination_walks_every_market_once(
    server: SimulatorServer, alice: KalshiRest
) -> None:
    tickers = [market.ticker async for market in alice.iter_markets(page_size=37)]
    assert len(tickers) == len(set(tickers)) == len(server.state.exchange.markets)
    assert alice.metrics.requests == -(-len(tickers) // 37)


async def test_market_filters(server: SimulatorServer) -> None:
    async with KalshiRest(server.rest_url) as public:  # market data needs no signature
        event = server.state.scenario.city_days[1].bracket_event
        by_event = [x.ticker async for x in public.iter_markets(event_ticker=event)]
        assert by_event == list(server.state.exchange.events[event].markets)
        two = [x.ticker async for x in public.iter_markets(tickers=by_event[:2], status="open")]
        assert two == by_event[:2]
        market = await public.get_market(by_event[0])
        assert market.event_ticker == event
        assert market.price_ranges


async def test_events_series_and_books(server: SimulatorServer, alice: KalshiRest) -> None:
    events = [e async for e in alice.iter_events(with_nested_markets=True, page_size=50)]
    assert len(events) == len(server.state.exchange.events)
    assert all(e.markets for e in events)
    bracket = server.state.scenario.city_days[1].bracket_event
    detail = await alice.get_event(bracket)
    assert detail.event.mutually_exclusive
    assert [x.ticker for x in detail.markets] == list(server.state.exchange.events[bracket].markets)
    series = await alice.get_series(detail.event.series_ticker)
    assert series.fee_type in {"quadratic", "quadratic_with_maker_fees", "flat"}
    assert isinstance(series.fee_multiplier, str)
    assert len(await alice.list_series()) == len(server.state.exchange.series)
    ticker = detail.markets[0].ticker
    book = await alice.orderbook(ticker)
    assert book.yes_levels() or book.no_levels()
    assert len((await alice.orderbook(ticker, depth=1)).yes_levels()) <= 1
    books = await alice.orderbooks([x.ticker for x in detail.markets[:3]])
    assert list(books) == [x.ticker for x in detail.markets[:3]]
    assert books[ticker].yes_levels() == book.yes_levels()
    status = await alice.exchange_status()
    assert status.trading_active


async def test_signed_portfolio_calls(server: SimulatorServer, alice: KalshiRest) -> None:
    balance = await alice.balance()
    assert balance.available_micros() > 0
    limits = await alice.account_limits()
    assert limits.read.refill_rate > 0
    positions = [p async for p in alice.iter_positions(page_size=1)]
    assert all(p.ticker in server.state.exchange.markets for p in positions)


async def test_a_wrong_key_is_unauthorized(server: SimulatorServer) -> None:
    stranger = Signer("mallory", generate_private_key())
    async with KalshiRest(server.rest_url, signer=stranger) as client:
        with pytest.raises(Unauthorized) as caught:
            await client.balance()
    assert caught.value.status == 401
    assert caught.value.code == "authentication_error"
    assert client.metrics.errors_by_status[401] == 1
    assert client.metrics.retries == 0


async def test_unsigned_portfolio_call_is_unauthorized(server: SimulatorServer) -> None:
    async with KalshiRest(server.rest_url) as client:
        with pytest.raises(Unauthorized):
            await client.balance()


async def test_not_found(alice: KalshiRest) -> None:
    with pytest.raises(NotFound) as caught:
        await alice.get_market("NO-SUCH-MARKET")
    assert caught.value.code == "not_found"


async def quoted_around(client: KalshiRest, price: int) -> m.Market:
    """A cent-grid market whose best YES bid < price < best YES ask."""
    async for market in client.iter_markets(status="open"):
        bid = parse_dollars(market.yes_bid_dollars or "0")
        ask = parse_dollars(market.yes_ask_dollars or "1")
        if bid < price < ask and m.price_grid(market.price_ranges)[0][2] == 10_000:
            return market
    raise AssertionError(f"no market quoted around {price}")


async def test_buy_no_at_40_is_an_ask_at_60_and_ends_long_no(
    alice: KalshiRest, bob: KalshiRest
) -> None:
    market = await quoted_around(alice, 600_000)
    resting = m.new_order(market.ticker, "yes", "buy", 600_000, contracts(3), client_order_id="b1")
    placed = await bob.create_order(resting)
    assert parse_count(placed.remaining_count) == contracts(3)

    order = m.new_order(
        market.ticker, "no", "buy", 400_000, contracts(2), time_in_force="immediate_or_cancel"
    )
    assert (order.side, order.price) == ("ask", "0.6000")
    taken = await alice.create_order(order)
    assert parse_count(taken.fill_count) == contracts(2)
    assert taken.average_fill_price is not None
    assert parse_dollars(taken.average_fill_price) == 600_000

    positions = [p async for p in alice.iter_positions(ticker=market.ticker)]
    assert [parse_count(p.position_fp) for p in positions] == [-contracts(2)]  # negative: NO
    fills = [f async for f in alice.iter_fills(order_id=taken.order_id)]
    assert [(f.book_side, parse_count(f.count_fp)) for f in fills] == [("ask", contracts(2))]
    await bob.cancel_order(placed.order_id)


async def test_v2_create_amend_decrease_cancel_round_trip(alice: KalshiRest) -> None:
    market = await quoted_around(alice, 600_000)
    bid = parse_dollars(market.yes_bid_dollars or "0")
    client_id = str(uuid.uuid4())
    order = m.new_order(market.ticker, "yes", "buy", bid, contracts(10), client_order_id=client_id)
    created = await alice.create_order(order)
    assert created.client_order_id == client_id
    assert parse_count(created.remaining_count) == contracts(10)

    fetched = await alice.get_order(created.order_id)
    assert (fetched.status, fetched.book_side, fetched.client_order_id) == (
        "resting",
        "bid",
        client_id,
    )
    found = await alice.find_order_by_client_id(client_id, ticker=market.ticker)
    assert found is not None and found.order_id == created.order_id
    assert await alice.find_order_by_client_id("never-sent", ticker=market.ticker) is None

    amended = await alice.amend_order(
        created.order_id, ticker=market.ticker, side="bid", price=order.price, count="8.00"
    )
    assert parse_count(amended.remaining_count) == contracts(8)
    decreased = await alice.decrease_order(created.order_id, reduce_by=contracts(3))
    assert parse_count(decreased.remaining_count) == contracts(5)
    decreased = await alice.decrease_order(created.order_id, reduce_to=contracts(4))
    assert parse_count(decreased.remaining_count) == contracts(4)
    cancelled = await alice.cancel_order(created.order_id)
    assert parse_count(cancelled.reduced_by) == contracts(4)
    assert (await alice.get_order(created.order_id)).status == "canceled"
    with pytest.raises(ValueError, match="exactly one"):
        await alice.decrease_order(created.order_id)


async def test_batch_create_and_cancel(alice: KalshiRest) -> None:
    market = await quoted_around(alice, 600_000)
    bid = parse_dollars(market.yes_bid_dollars or "0")
    orders = [
        m.new_order(market.ticker, "yes", "buy", bid, contracts(1), client_order_id=f"batch-{i}")
        for i in range(3)
    ]
    bad = m.new_order(market.ticker, "yes", "buy", bid, contracts(1))
    bad = msgspec.structs.replace(bad, price="0.1234")  # off the cent grid
    results = await alice.batch_create_orders([*orders, bad])
    assert [r.client_order_id for r in results[:3]] == ["batch-0", "batch-1", "batch-2"]
    assert all(r.order_id and r.error is None for r in results[:3])
    assert results[3].error is not None and results[3].order_id is None
    cancelled = await alice.batch_cancel_orders([r.order_id or "" for r in results[:3]])
    assert [parse_count(c.reduced_by or "0") for c in cancelled] == [contracts(1)] * 3
    assert await alice.batch_create_orders([]) == []
