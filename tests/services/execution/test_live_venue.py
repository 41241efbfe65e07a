"""The live venue against the real simulator: Kalshi's V2 order path, its fill and order streams.

No mocks of the protocol: alice trades through ``LiveVenue``, bob (a plain
client) makes the liquidity she trades against. Agents are off, so every book
holds only what a test put there.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from services.execution.live import LiveVenue
from services.execution.venue import (
    OrderRequest,
    OrderStateUnknown,
    TimeInForce,
    VenueOrder,
    VenueRejected,
)
from services.simulator.server import SimulatorServer
from shared import fees
from shared.config import load_settings
from shared.kalshi import KalshiRest
from shared.kalshi import models as m
from shared.messages import Action, Fill, Leg, OrderStatus, Side
from shared.money import Count, Micros, cents, contracts
from tests.services.execution.kit import FAST, Market, Recorder, rest_on, ws_factory
from tests.services.simulator.kit import signer
from tests.services.stack import wait_until


async def set_faults(sim: SimulatorServer, **faults: Any) -> None:
    """Replace the simulator's faults (asynchronously: a forced close waits for our answer)."""
    async with httpx.AsyncClient(base_url=sim.base_url, timeout=10) as http:
        (await http.delete("/sim/faults")).raise_for_status()
        if faults:
            (await http.post("/sim/faults", json=faults)).raise_for_status()


def request(
    market: Market,
    side: Side,
    action: Action,
    price: Micros,
    count: Count,
    tif: TimeInForce = TimeInForce.IOC,
    *,
    cid: str | None = None,
    post_only: bool = False,
) -> OrderRequest:
    leg = Leg(market=market.ticker, side=side, action=action, price=price, count=count)
    return OrderRequest(cid or str(uuid.uuid4()), leg, tif, post_only=post_only)


async def fill_of(sink: Recorder, order: VenueOrder) -> Fill:
    await wait_until(lambda: bool(sink.fills_of(order.order_id)), 10, "the fill on the stream")
    [fill] = sink.fills_of(order.order_id)
    return fill


async def final_state(sink: Recorder, client_order_id: str, status: OrderStatus) -> None:
    def reached() -> bool:
        last = sink.last_order(client_order_id)
        return last is not None and last.status is status

    await wait_until(reached, 10, f"{client_order_id} {status} on user_orders")


async def exchange_fills(venue: LiveVenue) -> list[m.Fill]:
    return [f async for f in venue.rest.iter_fills()]


# --- taking -----------------------------------------------------------------------------------


async def test_ioc_fills_are_reported_as_the_leg_sent_at_its_own_price(
    venue: LiveVenue, sink: Recorder, bob: KalshiRest, market: Market
) -> None:
    await rest_on(bob, market, "no", cents(45), contracts(10))  # YES offered at 0.55
    await rest_on(bob, market, "yes", cents(52), contracts(10))  # YES bid at 0.52
    cases = [  # side, action, limit, count, the leg's price of the trade
        (Side.YES, Action.BUY, cents(60), contracts(3), cents(55)),
        (Side.YES, Action.SELL, cents(50), contracts(2), cents(52)),
        (Side.NO, Action.BUY, cents(50), contracts(3), cents(48)),
        (Side.NO, Action.SELL, cents(40), contracts(1), cents(45)),
    ]
    for side, action, limit, count, price in cases:
        sent = request(market, side, action, limit, count)
        order = await venue.submit(sent)
        assert (order.status, order.filled, order.remaining) == (OrderStatus.FILLED, count, 0)
        assert (order.client_order_id, order.market) == (sent.client_order_id, market.ticker)

        fill = await fill_of(sink, order)
        assert (fill.client_order_id, fill.market, fill.side, fill.action) == (
            sent.client_order_id,
            market.ticker,
            side,
            action,
        )
        assert (fill.price, fill.count, fill.is_taker, fill.paper) == (price, count, True, False)
        expected_fee = fees.taker_fee(price, count, market.fee_type, market.fee_multiplier)
        assert fill.fee == expected_fee > 0
        await final_state(sink, sent.client_order_id, OrderStatus.FILLED)

    # the exchange reports the V2 ask of "sell YES" as its leg bought: "buy no"
    sell_yes = next(f for f in sink.fills if (f.side, f.action) == (Side.YES, Action.SELL))
    [raw] = [f async for f in venue.rest.iter_fills(order_id=sell_yes.order_id)]
    assert (raw.book_side, raw.side, raw.action) == ("ask", "no", "buy")
    assert venue.fills == 4 and venue.fills_recovered == 0 and venue.side_mismatches == 0


async def test_fok_beyond_the_depth_fills_nothing(
    venue: LiveVenue, sink: Recorder, bob: KalshiRest, market: Market
) -> None:
    maker = await rest_on(bob, market, "no", cents(45), contracts(5))
    fok = await venue.submit(
        request(market, Side.YES, Action.BUY, cents(60), contracts(6), TimeInForce.FOK)
    )
    assert (fok.status, fok.filled, fok.remaining) == (OrderStatus.CANCELED, 0, 0)
    assert [f async for f in venue.rest.iter_fills(order_id=fok.order_id)] == []
    assert m.to_count((await bob.get_order(maker)).remaining_count_fp) == contracts(5)

    ioc = await venue.submit(request(market, Side.YES, Action.BUY, cents(60), contracts(1)))
    await fill_of(sink, ioc)  # the stream has caught up past the FOK
    assert sink.fills_of(fok.order_id) == []


# --- resting ----------------------------------------------------------------------------------


async def test_post_only_rests_is_listed_found_and_canceled(
    venue: LiveVenue, sink: Recorder, bob: KalshiRest, market: Market
) -> None:
    sent = request(
        market, Side.YES, Action.BUY, cents(30), contracts(4), TimeInForce.GTC, post_only=True
    )
    order = await venue.submit(sent)
    assert (order.status, order.filled, order.remaining) == (
        OrderStatus.RESTING,
        0,
        contracts(4),
    )
    listed = await venue.open_orders()
    assert [(o.client_order_id, o.order_id, o.status) for o in listed] == [
        (sent.client_order_id, order.order_id, OrderStatus.RESTING)
    ]
    found = await venue.lookup(sent.client_order_id, market.ticker)
    assert found is not None and (found.order_id, found.status) == (
        order.order_id,
        OrderStatus.RESTING,
    )

    canceled = await venue.cancel(order)
    assert (canceled.status, canceled.filled, canceled.remaining) == (OrderStatus.CANCELED, 0, 0)
    assert await venue.open_orders() == []
    found = await venue.lookup(sent.client_order_id, market.ticker)
    assert found is not None and found.status is OrderStatus.CANCELED
    assert await venue.lookup("never-sent", market.ticker) is None
    # canceling what no longer rests answers its final state
    assert (await venue.cancel(order)).status is OrderStatus.CANCELED

    await rest_on(bob, market, "no", cents(45), contracts(5))  # YES offered at 0.55
    crossing = await venue.submit(
        request(
            market, Side.YES, Action.BUY, cents(60), contracts(1), TimeInForce.GTC, post_only=True
        )
    )
    assert (crossing.status, crossing.filled, crossing.reason) == (
        OrderStatus.CANCELED,
        0,
        "post_only_cross",
    )


async def test_a_reused_client_order_id_is_refused_and_nothing_doubles(
    venue: LiveVenue, sink: Recorder, bob: KalshiRest, market: Market
) -> None:
    resting = request(market, Side.YES, Action.BUY, cents(30), contracts(2), TimeInForce.GTC)
    await venue.submit(resting)
    again = request(
        market, Side.NO, Action.BUY, cents(20), contracts(7), TimeInForce.GTC,
        cid=resting.client_order_id,
    )  # fmt: skip
    with pytest.raises(VenueRejected) as caught:
        await venue.submit(again)
    assert caught.value.client_order_id == resting.client_order_id
    assert "order_already_exists" in caught.value.reason
    orders = [o async for o in venue.rest.iter_orders(ticker=market.ticker)]
    assert [o.client_order_id for o in orders] == [resting.client_order_id]

    await rest_on(bob, market, "no", cents(45), contracts(10))
    taken = request(market, Side.YES, Action.BUY, cents(60), contracts(3))
    first = await venue.submit(taken)
    with pytest.raises(VenueRejected):
        await venue.submit(taken)
    fill = await fill_of(sink, first)
    assert fill.count == contracts(3)
    raw = [f async for f in venue.rest.iter_fills(ticker=market.ticker)]
    assert sum(m.to_count(f.count_fp) for f in raw) == contracts(3)
    assert venue.rejected == 2


async def test_a_restarted_venue_reports_earlier_fills_from_rest(
    sim: SimulatorServer, venue: LiveVenue, bob: KalshiRest, market: Market
) -> None:
    await rest_on(bob, market, "no", cents(45), contracts(5))
    sent = request(market, Side.YES, Action.BUY, cents(60), contracts(2))
    first = await venue.submit(sent)
    await venue.close()

    later = Recorder()
    async with KalshiRest(sim.rest_url, signer=signer("alice"), retry=FAST) as rest:
        restarted = LiveVenue(rest, ws_factory(sim))
        await restarted.start(later)
        try:
            assert restarted.ready and restarted.fills_recovered == 1
        finally:
            await restarted.close()
    [fill] = later.fills
    # Kalshi's REST fills carry no client order id: it comes from the order
    assert (fill.order_id, fill.client_order_id, fill.side, fill.action, fill.price) == (
        first.order_id,
        sent.client_order_id,
        Side.YES,
        Action.BUY,
        cents(55),
    )


async def test_nothing_is_sent_before_reconcile(sim: SimulatorServer, market: Market) -> None:
    async with KalshiRest(sim.rest_url, signer=signer("alice")) as rest:
        idle = LiveVenue(rest, ws_factory(sim))
        assert not idle.ready
        with pytest.raises(VenueRejected) as caught:
            await idle.submit(request(market, Side.YES, Action.BUY, cents(60), contracts(1)))
        assert caught.value.reason == "not reconciled"
        assert idle.requests == 0


# --- failures ---------------------------------------------------------------------------------


async def test_fills_made_while_disconnected_are_reported_once_after_reconcile(
    sim: SimulatorServer, venue: LiveVenue, sink: Recorder, bob: KalshiRest, market: Market
) -> None:
    resting = request(market, Side.YES, Action.BUY, cents(40), contracts(5), TimeInForce.GTC)
    await venue.submit(resting)
    reconciles = venue.reconciles

    await set_faults(sim, ws_disconnect=True)
    try:
        await wait_until(lambda: not venue.ready, 10, "not ready once the socket dropped")
        await rest_on(bob, market, "no", cents(60), contracts(5))  # sells YES into alice's bid
    finally:
        await set_faults(sim)
    await wait_until(lambda: venue.ready, 15, "ready again after reconnect and reconcile")
    assert venue.reconciles == reconciles + 1 and venue.disconnects == 1

    await wait_until(lambda: len(sink.fills) == 1, 10, "the missed fill, from REST")
    [fill] = sink.fills
    assert (fill.client_order_id, fill.side, fill.action, fill.price, fill.count) == (
        resting.client_order_id,
        Side.YES,
        Action.BUY,
        cents(40),
        contracts(5),
    )
    assert not fill.is_taker
    maker_fee = fees.maker_fee(cents(40), contracts(5), market.fee_type, market.fee_multiplier)
    assert fill.fee == maker_fee
    assert venue.fills_recovered == 1
    final = sink.last_order(resting.client_order_id)
    assert final is not None and (final.status, final.filled) == (OrderStatus.FILLED, contracts(5))

    # the stream works again: a new fill arrives on it, and the ledger sees each trade once
    await rest_on(bob, market, "yes", cents(42), contracts(2))
    taken = await venue.submit(request(market, Side.NO, Action.BUY, cents(60), contracts(2)))
    await fill_of(sink, taken)
    trades = Counter(f.trade_id for f in sink.fills)
    assert set(trades) == {f.trade_id for f in await exchange_fills(venue)}
    assert max(trades.values()) == 1


@pytest.mark.parametrize("fault", ["http_500", "timeout"])
async def test_an_ambiguous_create_is_order_state_unknown_then_resolved_by_lookup(
    sim: SimulatorServer, sink: Recorder, bob: KalshiRest, market: Market, fault: str
) -> None:
    timeout_s = 0.3 if fault == "timeout" else 10.0
    async with KalshiRest(
        sim.rest_url, signer=signer("alice"), retry=FAST, timeout_s=timeout_s
    ) as rest:
        venue = LiveVenue(rest, ws_factory(sim))
        await venue.start(sink)
        try:
            await resolve_ambiguous_create(sim, venue, sink, bob, market, fault)
        finally:
            await venue.close()


async def resolve_ambiguous_create(
    sim: SimulatorServer,
    venue: LiveVenue,
    sink: Recorder,
    bob: KalshiRest,
    market: Market,
    fault: str,
) -> None:
    await rest_on(bob, market, "no", cents(45), contracts(10))
    sent = request(market, Side.YES, Action.BUY, cents(60), contracts(2))
    faults = {"http_error_rate": 1.0, "http_error_status": 500}
    await set_faults(sim, **(faults if fault == "http_500" else {"latency_ms": 800}))
    try:
        with pytest.raises(OrderStateUnknown) as caught:
            await venue.submit(sent)
    finally:
        await set_faults(sim)
    assert caught.value.client_order_ids == [sent.client_order_id]
    assert venue.unknown == 1 and venue.errors >= 1
    await asyncio.sleep(0.8 if fault == "timeout" else 0)  # the server's side of it is over

    found = await venue.lookup(sent.client_order_id, market.ticker)
    if found is None:  # never placed: the same id is safe to send again
        found = await venue.submit(sent)
    assert (found.status, found.filled) == (OrderStatus.FILLED, contracts(2))
    fill = await fill_of(sink, found)
    assert (fill.client_order_id, fill.side, fill.action, fill.price) == (
        sent.client_order_id,
        Side.YES,
        Action.BUY,
        cents(55),
    )
    orders = [o async for o in venue.rest.iter_orders(ticker=market.ticker)]
    assert [o.client_order_id for o in orders] == [sent.client_order_id]


async def test_built_from_settings(sim: SimulatorServer, sink: Recorder) -> None:
    settings = load_settings(
        kalshi={"rest_url": sim.rest_url, "ws_url": sim.ws_url, "tier": "premier"}
    )
    venue = LiveVenue.from_settings(settings, signer("alice"))
    assert (venue.name, venue.paper) == ("live", False)
    await venue.start(sink)
    try:
        assert venue.ready
        assert await venue.open_orders() == []
        assert venue.requests >= 3 and venue.errors == 0
    finally:
        await venue.close()
