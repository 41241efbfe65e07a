"""Wire models: Kalshi's documented samples decode, money stays exact, WS never crashes."""

from __future__ import annotations

import msgspec
import pytest

from shared.fees import taker_rate
from shared.kalshi import models as m

MARKET_SAMPLE = b"""{"ticker":"KXHIGHNY-26MAY11-T69","event_ticker":"KXHIGHNY-26MAY11",
 "market_type":"binary","title":"Will the **high temp in NYC** be >69 on May 11, 2026?",
 "yes_sub_title":"70 or above","no_sub_title":"70 or above","status":"active",
 "strike_type":"greater","floor_strike":69,
 "open_time":"2026-05-10T14:00:00Z","close_time":"2026-05-12T04:59:00Z",
 "settlement_timer_seconds":3600,"can_close_early":true,
 "yes_bid_dollars":"0.0000","yes_bid_size_fp":"0.00","yes_ask_dollars":"0.0100",
 "yes_ask_size_fp":"87.00","no_bid_dollars":"0.9900","no_ask_dollars":"1.0000",
 "last_price_dollars":"0.0100","volume_fp":"3356.00","open_interest_fp":"2868.00",
 "result":"","price_level_structure":"linear_cent",
 "price_ranges":[{"start":"0.0000","end":"1.0000","step":"0.0100"}],
 "some_future_field":{"nested":[1,2,3]}}"""


def test_market_sample_decodes_and_ignores_unknown_fields() -> None:
    market = msgspec.json.decode(MARKET_SAMPLE, type=m.Market)
    assert market.ticker == "KXHIGHNY-26MAY11-T69"
    assert (market.strike_type, market.floor_strike, market.cap_strike) == ("greater", 69, None)
    assert m.to_micros(market.yes_ask_dollars or "") == 10_000
    assert m.to_count(market.volume_fp or "") == 335_600
    assert m.price_grid(market.price_ranges) == [(0, 1_000_000, 10_000)]


def test_orderbook_levels_are_exact_integers() -> None:
    body = b"""{"orderbook_fp": {
       "yes_dollars": [["0.0100","200.00"], ["0.4100","10.00"], ["0.4250","13.57"]],
       "no_dollars":  [["0.0100","100.00"], ["0.5600","17.00"]]}}"""
    book = msgspec.json.decode(body, type=m.OrderbookResponse).orderbook_fp
    assert book.yes_levels() == [(10_000, 20_000), (410_000, 1000), (425_000, 1357)]
    assert book.no_levels() == [(10_000, 10_000), (560_000, 1700)]
    empty = msgspec.json.decode(b'{"orderbook_fp": {}}', type=m.OrderbookResponse)
    assert empty.orderbook_fp.yes_levels() == []


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"0.07", "0.07"),
        (b"1", "1"),
        (b'"0.5"', "0.5"),
        (b"0.035", "0.035"),
        (b"1e-7", "0.0000001"),
    ],
)
def test_fee_multiplier_stays_exact_text(raw: bytes, text: str) -> None:
    body = b'{"series":{"ticker":"S","fee_type":"quadratic","fee_multiplier":' + raw + b"}}"
    series = m.decode_series(body)
    assert series.fee_multiplier == text
    listed = m.decode_series_list(b'{"series":[' + body[10:-1] + b"]}")
    assert listed[0].fee_multiplier == text


def test_fee_multiplier_feeds_the_fee_formula() -> None:
    body = b'{"series":{"ticker":"INX","fee_type":"quadratic","fee_multiplier":0.5}}'
    rate = taker_rate(m.decode_series(body).fee_type, m.decode_series(body).fee_multiplier)
    assert rate.numerator * 1000 == rate.denominator * 35  # 0.07 x 0.5 = 0.035


@pytest.mark.parametrize(
    ("side", "action", "leg_price", "book_side", "yes_price"),
    [
        ("yes", "buy", 560_000, "bid", 560_000),
        ("no", "sell", 400_000, "bid", 600_000),
        ("no", "buy", 400_000, "ask", 600_000),
        ("yes", "sell", 550_000, "ask", 550_000),
    ],
)
def test_direction_table(
    side: m.LegSide, action: m.Action, leg_price: int, book_side: str, yes_price: int
) -> None:
    assert m.v2_direction(side, action, leg_price) == (book_side, yes_price)


def test_new_order_writes_kalshi_strings_and_omits_unset_fields() -> None:
    order = m.new_order("T", "no", "buy", 400_000, 1050, client_order_id="c1")
    body = msgspec.json.decode(msgspec.json.encode(order))
    assert body == {
        "ticker": "T",
        "side": "ask",
        "count": "10.50",
        "price": "0.6000",
        "time_in_force": "good_till_canceled",
        "self_trade_prevention_type": "taker_at_cross",
        "client_order_id": "c1",
    }
    sub_penny = m.new_order("T", "yes", "buy", 123_450, 100, time_in_force="immediate_or_cancel")
    assert sub_penny.price == "0.123450"


WS_SAMPLES: dict[type, bytes] = {
    m.OrderbookSnapshot: b"""{"type":"orderbook_snapshot","sid":2,"seq":2,
      "msg":{"market_ticker":"FED-23DEC-T3.00","market_id":"9b0f",
      "yes_dollars_fp":[["0.0800","300.00"],["0.2200","333.00"]]}}""",
    m.OrderbookDelta: b"""{"type":"orderbook_delta","sid":2,"seq":3,
      "msg":{"market_ticker":"FED-23DEC-T3.00","market_id":"9b0f","price_dollars":"0.960",
      "delta_fp":"-54.00","side":"yes","ts":"2022-11-22T20:44:01Z","ts_ms":1669149841000}}""",
    m.Ticker: b"""{"type":"ticker","sid":11,"msg":{"market_ticker":"FED-23DEC-T3.00",
      "price_dollars":"0.480","yes_bid_dollars":"0.450","yes_ask_dollars":"0.530",
      "volume_fp":"33896.00","dollar_volume":16948,"ts":1669149841,"ts_ms":1669149841000,
      "time":"2022-11-22T20:44:01Z"}}""",
    m.Trade: b"""{"type":"trade","sid":11,"msg":{"trade_id":"t1","market_ticker":"M",
      "yes_price_dollars":"0.360","no_price_dollars":"0.640","count_fp":"136.00",
      "taker_side":"no","ts":1669149841}}""",
    m.FillMessage: b"""{"type":"fill","sid":13,"msg":{"trade_id":"t","order_id":"o",
      "market_ticker":"M","is_taker":true,"side":"yes","action":"buy",
      "yes_price_dollars":"0.750","count_fp":"278.00","post_position_fp":"500.00","ts":1}}""",
    m.UserOrder: b"""{"type":"user_order","sid":14,"msg":{"order_id":"o","ticker":"M",
      "status":"resting","yes_price_dollars":"0.5","fill_count_fp":"0.00",
      "remaining_count_fp":"1.00","client_order_id":"c"}}""",
    m.MarketLifecycle: b"""{"type":"market_lifecycle_v2","sid":15,"msg":{"event_type":
      "price_level_structure_updated","market_ticker":"M","price_level_structure":"deci_cent",
      "price_ranges":[{"start":"0.0000","end":"0.1000","step":"0.0010"}]}}""",
    m.Subscribed: b'{"id":1,"type":"subscribed","msg":{"channel":"orderbook_delta","sid":1}}',
    m.Unsubscribed: b'{"id":102,"sid":2,"seq":7,"type":"unsubscribed"}',
    m.Ok: b'{"id":123,"sid":456,"seq":222,"type":"ok","msg":{"market_tickers":["A","B"]}}',
    m.Error: b'{"id":123,"type":"error","msg":{"code":6,"msg":"Already subscribed"}}',
}


@pytest.mark.parametrize("kind", list(WS_SAMPLES))
def test_every_documented_ws_message_decodes(kind: type) -> None:
    assert type(m.decode_ws(WS_SAMPLES[kind])) is kind


def test_delta_fields_arrive_untouched() -> None:
    delta = m.decode_ws(WS_SAMPLES[m.OrderbookDelta])
    assert isinstance(delta, m.OrderbookDelta)
    assert (delta.sid, delta.seq, delta.msg.side) == (2, 3, "yes")
    assert (m.to_micros(delta.msg.price_dollars), m.to_count(delta.msg.delta_fp)) == (
        960_000,
        -5400,
    )


def test_list_subscriptions_ok_carries_a_list() -> None:
    ok = m.decode_ws(b'{"id":3,"type":"ok","msg":[{"channel":"ticker","sid":2}]}')
    assert isinstance(ok, m.Ok)
    assert ok.msg == [m.SubscriptionInfo(channel="ticker", sid=2)]


def test_unknown_and_malformed_messages_never_raise() -> None:
    unknown = m.decode_ws(b'{"type":"market_position","sid":9,"seq":4,"msg":{}}')
    assert isinstance(unknown, m.UnknownMessage)
    assert (unknown.type, unknown.sid, unknown.seq) == ("market_position", 9, 4)
    broken = m.decode_ws(b'{"type":"orderbook_delta","sid":2,"seq":5,"msg":{"side":"up"}}')
    assert isinstance(broken, m.MalformedMessage)
    assert (broken.type, broken.sid, broken.seq) == ("orderbook_delta", 2, 5)
    assert isinstance(m.decode_ws(b"not json"), m.MalformedMessage)
    assert isinstance(m.decode_ws("[1, 2]"), m.MalformedMessage)
