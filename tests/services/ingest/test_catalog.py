from services.ingest.catalog import close_ts_ns, diff, followed, grid_of, market_info
from shared.kalshi.models import Event, Market, PriceRange, Series
from shared.money import parse_dollars
from shared.streams import shard_of


def market(ticker: str, event: str = "KXHIGHNY-25DEC05", status: str = "active", **kw) -> Market:
    return Market(
        ticker=ticker, event_ticker=event, status=status, close_time="2025-12-06T04:59:00Z", **kw
    )


def event(ticker: str = "KXHIGHNY-25DEC05") -> Event:
    return Event(event_ticker=ticker, series_ticker="KXHIGHNY", mutually_exclusive=True)


def test_market_info_carries_what_pricing_needs():
    m = market(
        "KXHIGHNY-25DEC05-B32.5",
        strike_type="between",
        floor_strike=32,
        cap_strike=33,
        price_ranges=[PriceRange(start="0.0000", end="1.0000", step="0.0100")],
    )
    info = market_info(
        m,
        event(),
        Series(ticker="KXHIGHNY", fee_type="quadratic_with_maker_fees", fee_multiplier="1"),
    )
    assert info.event == "KXHIGHNY-25DEC05"
    assert info.series == "KXHIGHNY"
    assert info.mutually_exclusive
    assert (info.strike_type, info.floor_strike, info.cap_strike) == ("between", 32, 33)
    assert info.fee_type == "quadratic_with_maker_fees"
    assert info.close_ts_ns == close_ts_ns("2025-12-06T04:59:00Z") == 1764997140 * 10**9
    assert grid_of(info).unit == parse_dollars("0.01")


def test_sub_penny_grids_and_default_grid():
    m = market(
        "X",
        price_ranges=[
            PriceRange(start="0", end="0.1", step="0.001"),
            PriceRange(start="0.1", end="1", step="0.01"),
        ],
    )
    assert grid_of(market_info(m, event(), None)).unit == parse_dollars("0.001")
    assert grid_of(market_info(market("Y"), event(), None)).unit == parse_dollars("0.01")


def test_diff_reports_added_changed_removed():
    a = market_info(market("A"), event(), None)
    b = market_info(market("B"), event(), None)
    b_closed = market_info(market("B", status="closed"), event(), None)
    c = market_info(market("C"), event(), None)
    changes = diff({"A": a, "B": b}, [a, b_closed, c])
    assert [i.market for i in changes.added] == ["C"]
    assert [i.market for i in changes.changed] == ["B"]
    assert changes.removed == []
    assert diff({"A": a}, []).removed == ["A"]


def test_followed_takes_open_markets_of_owned_shards_whole_events_only():
    infos = [
        market_info(market(f"E{e}-M{m}", event=f"E{e}"), event(f"E{e}"), None)
        for e in range(20)
        for m in range(3)
    ]
    infos.append(market_info(market("E0-CLOSED", event="E0", status="closed"), event("E0"), None))
    owned = {0, 1}
    chosen = followed(infos, owned, 4, max_markets=1000)
    assert chosen == {
        i.market for i in infos if shard_of(i.event, 4) in owned and i.status == "active"
    }
    capped = followed(infos, owned, 4, max_markets=4)
    assert len(capped) == 3  # a second event would not fit whole
