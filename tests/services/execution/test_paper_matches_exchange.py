"""Paper fills equal the exchange's: the same taker order on the same book, filled by the
paper venue and by the simulator's matching engine through the live venue."""

from __future__ import annotations

import uuid

from services.execution.paper import PaperVenue
from services.execution.venue import OrderRequest, TimeInForce
from shared.fees import maker_rate, taker_rate
from shared.kalshi.rest import KalshiRest
from shared.marketbooks import MarketBooks
from shared.messages import Action, BookSnapshot, Fill, Leg, Level, Side
from shared.money import cents, contracts
from tests.services.execution.kit import Market, Recorder, rest_on
from tests.services.stack import wait_until


async def exchange_book(bob: KalshiRest, ticker: str) -> MarketBooks:
    book = await bob.orderbook(ticker)
    books = MarketBooks()
    snapshot = BookSnapshot(
        market=ticker,
        event=ticker.rsplit("-", 1)[0],
        yes_bids=sorted((Level(p, c) for p, c in book.yes_levels()), key=lambda lv: -lv.price),
        no_bids=sorted((Level(p, c) for p, c in book.no_levels()), key=lambda lv: -lv.price),
        seq=1,
    )
    books.apply(snapshot)
    return books


def by_price(fills: list[Fill]) -> list[tuple[int, int]]:
    totals: dict[int, int] = {}
    for fill in fills:
        totals[fill.price] = totals.get(fill.price, 0) + fill.count
    return sorted(totals.items())


async def test_a_taker_walks_the_same_levels_for_the_same_fee_on_paper_and_on_the_exchange(
    bob: KalshiRest, market: Market, venue, sink: Recorder
):
    # YES asks at 40 (3) and 42 (4): bob bids NO at 60 and 58
    await rest_on(bob, market, "no", cents(60), contracts(3))
    await rest_on(bob, market, "no", cents(58), contracts(4))
    rates = (
        taker_rate(market.fee_type, market.fee_multiplier),
        maker_rate(market.fee_type, market.fee_multiplier),
    )
    paper_sink = Recorder()
    paper = PaperVenue(await exchange_book(bob, market.ticker), lambda _: rates)
    await paper.start(paper_sink)
    leg = Leg(
        market=market.ticker, side=Side.YES, action=Action.BUY, price=cents(42), count=contracts(6)
    )

    on_paper = await paper.submit(OrderRequest(str(uuid.uuid4()), leg, TimeInForce.IOC))
    live = await venue.submit(OrderRequest(str(uuid.uuid4()), leg, TimeInForce.IOC))
    await wait_until(
        lambda: sum(f.count for f in sink.fills_of(live.order_id)) == live.filled,
        10,
        "the exchange's fills on the stream",
    )
    exchange_fills = sink.fills_of(live.order_id)

    assert on_paper.filled == live.filled > 0
    assert by_price(paper_sink.fills) == by_price(exchange_fills)
    assert sum(f.fee for f in paper_sink.fills) == sum(f.fee for f in exchange_fills)
    assert all(f.is_taker for f in exchange_fills + paper_sink.fills)
