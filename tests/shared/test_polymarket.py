"""Polymarket: Gamma records, market-channel messages, books, YES-side VenueBooks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.messages import Level
from shared.money import complement
from shared.polymarket import (
    VENUE,
    BookKeeper,
    BookMessage,
    LastTrade,
    MarketLink,
    PolymarketFormatError,
    PriceChange,
    TickSizeChange,
    parse_clob_event,
    parse_clob_frame,
    parse_gamma_market,
    parse_price,
    parse_size,
    venue_book,
    yes_side_levels,
)

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "polymarket"
TOKEN = "tok-yes"


def recorded(name: str) -> Any:
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"recorded Polymarket message {path} is absent (it lives outside the project)")
    return json.loads(path.read_text())


def book_message(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "event_type": "book",
        "asset_id": TOKEN,
        "market": "0xcondition",
        "bids": [{"price": p, "size": s} for p, s in bids],
        "asks": [{"price": p, "size": s} for p, s in asks],
        "timestamp": "1700000000000",
        "hash": "h",
    }


def price_change(*changes: tuple[str, str, str], asset: str = TOKEN) -> dict[str, Any]:
    return {
        "event_type": "price_change",
        "market": "0xcondition",
        "timestamp": "1700000000500",
        "price_changes": [
            {"asset_id": asset, "price": p, "size": s, "side": side, "hash": "h"}
            for side, p, s in changes
        ],
    }


def keeper_with(*messages: dict[str, Any]) -> BookKeeper:
    keeper = BookKeeper()
    for message in messages:
        for event in parse_clob_event(message):
            keeper.apply(event)
    return keeper


# --- numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "micros"), [(".48", 480_000), ("0.5", 500_000), ("0.001", 1_000), ("1", 1_000_000)]
)
def test_prices(text: str, micros: int) -> None:
    assert parse_price(text) == micros


@pytest.mark.parametrize("bad", ["1.5", "-0.1", "abc", "0.1234567", 0.5, None])
def test_bad_prices(bad: Any) -> None:
    with pytest.raises(PolymarketFormatError):
        parse_price(bad)


@pytest.mark.parametrize(
    ("text", "hundredths"),
    [("30", 3000), ("219.217767", 21921), ("9.379", 937), ("0.009", 0), ("5.", 500), (".5", 50)],
)
def test_sizes_round_down_to_hundredths(text: str, hundredths: int) -> None:
    assert parse_size(text) == hundredths


@pytest.mark.parametrize("bad", ["-1", "1e3", "1.2.3", "1.0x", "", 3])
def test_bad_sizes(bad: Any) -> None:
    with pytest.raises(PolymarketFormatError):
        parse_size(bad)


# --- Gamma ----------------------------------------------------------------------------------


def test_recorded_gamma_market() -> None:
    market = parse_gamma_market(recorded("gamma_market.json"))
    assert market.outcomes == ("Up", "Down")
    assert market.outcome_prices == (505_000, 495_000)
    assert market.first_token.startswith("104239898038807136")
    assert market.token_for("down") == market.second_token
    assert market.condition_id.startswith("0x78443f96")
    assert market.enable_order_book and not market.closed


def test_gamma_arrays_may_come_decoded_and_must_agree() -> None:
    record = {"id": "1", "outcomes": ["Yes", "No"], "outcomePrices": ["0.2", "0.8"]}
    with pytest.raises(PolymarketFormatError, match="differ in length"):
        parse_gamma_market({**record, "clobTokenIds": '["a"]'})
    market = parse_gamma_market({**record, "clobTokenIds": '["a", "b"]'})
    assert market.token_for("Yes") == "a"
    with pytest.raises(KeyError):
        market.token_for("Maybe")


# --- messages and books ---------------------------------------------------------------------


def test_recorded_book_snapshot() -> None:
    raw = recorded("ws_book_snapshot_captured.json")
    (book,) = parse_clob_frame([raw])  # the server sends the first books as a list
    assert isinstance(book, BookMessage)
    assert book.asset_id == raw["asset_id"]
    assert book.tick_size == 10_000
    assert len(book.bids) == len(raw["bids"]) and len(book.asks) == len(raw["asks"])
    assert book.bids[70_000] == 18_252_855  # "182528.55"
    keeper = BookKeeper()
    assert keeper.apply(book)
    levels = keeper.books[book.asset_id]
    assert levels.bid_levels()[0] == Level(70_000, 18_252_855)  # best bid 0.07
    asks = levels.ask_levels()
    assert asks[0].price == min(parse_price(a["price"]) for a in raw["asks"])
    assert [a.price for a in asks] == sorted(a.price for a in asks)
    assert asks[-1] == Level(990_000, 15_660_614)


def test_price_change_sequence() -> None:
    keeper = keeper_with(book_message([(".48", "30"), (".47", "10")], [(".52", "25")]))
    changes = parse_clob_event(
        price_change(("BUY", ".49", "5"), ("BUY", ".48", "12.345"), ("SELL", ".52", "0"))
    )
    assert [keeper.apply(c) for c in changes] == [True, True, True]
    book = keeper.books[TOKEN]
    assert book.bid_levels() == [Level(490_000, 500), Level(480_000, 1234), Level(470_000, 1000)]
    assert book.ask_levels() == []
    assert book.timestamp_ms == 1_700_000_000_500
    (again,) = parse_clob_event(price_change(("BUY", ".49", "5")))
    assert not keeper.apply(again)  # same total: nothing changed
    (gone,) = parse_clob_event(price_change(("SELL", ".60", "0")))
    assert not keeper.apply(gone)  # removing a level that is not there


def test_price_change_before_its_book_is_ignored() -> None:
    keeper = BookKeeper()
    (change,) = parse_clob_event(price_change(("BUY", ".49", "5")))
    assert not keeper.apply(change)
    assert keeper.books == {}


def test_older_price_change_shape() -> None:
    keeper = keeper_with(book_message([(".40", "1")], []))
    message = {
        "event_type": "price_change",
        "asset_id": TOKEN,
        "market": "0xcondition",
        "timestamp": "1700000000900",
        "changes": [{"price": "0.41", "side": "SELL", "size": "3"}],
    }
    (change,) = parse_clob_event(message)
    assert change == PriceChange(TOKEN, "SELL", 410_000, 300, 1_700_000_000_900)
    assert keeper.apply(change)
    assert keeper.books[TOKEN].ask_levels() == [Level(410_000, 300)]


def test_a_new_book_replaces_the_old_one() -> None:
    keeper = keeper_with(
        book_message([(".40", "1"), (".39", "2")], [(".60", "1")]),
        book_message([(".45", "7")], []),
    )
    assert keeper.books[TOKEN].bid_levels() == [Level(450_000, 700)]
    assert keeper.books[TOKEN].ask_levels() == []
    keeper.clear()
    assert keeper.books == {}


def test_tick_size_and_last_trade() -> None:
    keeper = keeper_with(book_message([(".97", "1")], []))
    tick = {
        "event_type": "tick_size_change",
        "asset_id": TOKEN,
        "market": "0xcondition",
        "old_tick_size": "0.01",
        "new_tick_size": "0.001",
        "timestamp": "1700000001000",
    }
    trade = {
        "event_type": "last_trade_price",
        "asset_id": TOKEN,
        "market": "0xcondition",
        "price": "0.456",
        "side": "BUY",
        "size": "219.217767",
        "fee_rate_bps": "0",
        "timestamp": "1700000002000",
    }
    events = parse_clob_frame([tick, trade, {"event_type": "best_bid_ask", "asset_id": TOKEN}])
    assert events == [
        TickSizeChange(TOKEN, 1_000, 1_700_000_001_000),
        LastTrade(TOKEN, 456_000, "BUY", 21_921, 0, 1_700_000_002_000),
    ]
    assert [keeper.apply(e) for e in events] == [False, False]  # levels did not move
    assert keeper.books[TOKEN].tick_size == 1_000
    assert keeper.books[TOKEN].last_trade == events[1]


def test_malformed_messages() -> None:
    with pytest.raises(PolymarketFormatError):
        parse_clob_event({"event_type": "book", "bids": [], "asks": []})  # no asset id
    with pytest.raises(PolymarketFormatError):
        parse_clob_event(price_change(("HOLD", ".5", "1")))
    with pytest.raises(PolymarketFormatError):
        parse_clob_frame(["PONG"])


# --- VenueBook ------------------------------------------------------------------------------


def test_venue_book_of_a_yes_token() -> None:
    keeper = keeper_with(book_message([(".48", "30"), (".47", "10")], [(".52", "25")]))
    link = MarketLink("KXTEST-26JAN01-T1", TOKEN, taker_fee_rate=0.04)
    book = venue_book(keeper.books[TOKEN], link, observed_at_ns=123)
    assert book.venue == VENUE == "polymarket"
    assert book.market == "KXTEST-26JAN01-T1"
    assert book.bids == [Level(480_000, 3000), Level(470_000, 1000)]
    assert book.asks == [Level(520_000, 2500)]
    assert (book.taker_fee_rate, book.observed_at_ns) == (0.04, 123)


def test_venue_book_of_a_no_token_is_turned_into_yes_prices() -> None:
    # NO bids .48/.47 are YES asks .52/.53; the NO ask .52 is a YES bid .48
    keeper = keeper_with(book_message([(".48", "30"), (".47", "10")], [(".52", "25")]))
    bids, asks = yes_side_levels(keeper.books[TOKEN], token_is_no=True)
    assert bids == [Level(480_000, 2500)]
    assert asks == [Level(520_000, 3000), Level(530_000, 1000)]
    book = venue_book(keeper.books[TOKEN], MarketLink("KX", TOKEN, token_is_no=True), 0)
    assert (book.bids, book.asks) == (bids, asks)


def test_no_mapping_of_the_recorded_book_keeps_best_first() -> None:
    raw = recorded("ws_book_snapshot_captured.json")
    keeper = BookKeeper()
    for event in parse_clob_frame(raw):
        keeper.apply(event)
    book = keeper.books[raw["asset_id"]]
    bids, asks = yes_side_levels(book, token_is_no=True)
    assert bids[0].price == complement(book.ask_levels()[0].price)
    assert asks[0] == Level(complement(70_000), 18_252_855)  # 1 - 0.07 = 0.93
    assert [b.price for b in bids] == sorted((b.price for b in bids), reverse=True)
    assert [a.price for a in asks] == sorted(a.price for a in asks)
