import msgspec
import pytest

from shared.bus.codec import Codec, DecodeError
from shared.messages import (
    Action,
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    Fill,
    Leg,
    Level,
    MarketDataBatch,
    Side,
    Signal,
)
from shared.streams import ALL_STREAMS, FILLS, MARKET_DATA, SIGNALS, shard_of, stream_key


def test_market_data_batches_round_trip_each_kind():
    codec = Codec(MARKET_DATA)
    items = [
        BookSnapshot(market="M", event="E", yes_bids=[Level(420_000, 1300)], no_bids=[], seq=1),
        BookDelta(market="M", event="E", side=Side.NO, price=560_000, delta=-500, seq=2),
        BookStatus(market="M", event="E", state=BookState.INVALID, reason="gap"),
    ]
    for item in items:
        item.stamp("ingest.rx", 123)
    batch = MarketDataBatch(items=items)
    batch.stamp("ingest", 456)
    decoded = codec.decode(codec.encode(batch))
    assert decoded == batch
    assert isinstance(decoded, MarketDataBatch)
    assert [type(item) for item in decoded.items] == [BookSnapshot, BookDelta, BookStatus]


def test_signal_round_trip_keeps_integer_money():
    leg = Leg(market="M", side=Side.YES, action=Action.BUY, price=410_000, count=500)
    signal = Signal(
        signal_id="s1",
        strategy="atomic",
        kind="atomic_yes",
        event="E",
        legs=[leg],
        edge=30_000,
        model_p=0.5,
        kelly_fraction=0.1,
        confidence=0.9,
        ev=1000,
        aroc=2.5,
        expires_ns=1,
    )
    decoded = Codec(SIGNALS).decode(Codec(SIGNALS).encode(signal))
    assert decoded == signal
    assert isinstance(decoded, Signal)
    assert isinstance(decoded.legs[0].price, int)


def test_wrong_schema_for_stream_is_rejected():
    fill = Fill(
        trade_id="t",
        order_id="o",
        client_order_id="c",
        market="M",
        side=Side.YES,
        action=Action.BUY,
        price=1,
        count=1,
        fee=0,
        is_taker=True,
        ts_ns=0,
    )
    with pytest.raises(DecodeError):
        Codec(MARKET_DATA).decode(Codec(FILLS).encode(fill))


def test_garbage_and_missing_fields_are_rejected():
    codec = Codec(MARKET_DATA)
    with pytest.raises(DecodeError):
        codec.decode(b"\xc1not msgpack")
    with pytest.raises(DecodeError):
        codec.decode(
            msgspec.msgpack.encode({"type": "md_batch", "items": [{"type": "book_delta"}]})
        )
    with pytest.raises(DecodeError):
        codec.decode_entry({b"other": b""})


def test_unknown_schema_version_is_rejected():
    batch = MarketDataBatch(items=[], v=99)
    with pytest.raises(DecodeError, match="version 99"):
        Codec(MARKET_DATA).decode(Codec(MARKET_DATA).encode(batch))


def test_money_fields_refuse_floats():
    raw = msgspec.msgpack.encode(
        {
            "type": "book_delta",
            "market": "M",
            "event": "E",
            "side": "yes",
            "price": 0.42,
            "delta": 100,
            "seq": 1,
        }
    )
    with pytest.raises(DecodeError):
        Codec(MARKET_DATA).decode(raw)


def test_every_stream_has_one_schema_and_a_unique_name():
    names = [spec.name for spec in ALL_STREAMS]
    assert len(names) == len(set(names))
    for spec in ALL_STREAMS:
        Codec(spec)  # builds a decoder for its schema


def test_shards_are_stable_and_keep_an_event_together():
    assert shard_of("KXHIGHNY-25DEC05", 8) == shard_of("KXHIGHNY-25DEC05", 8)
    spread = {shard_of(f"EV-{i}", 8) for i in range(200)}
    assert spread == set(range(8))
    assert stream_key("p:", MARKET_DATA, 3) == "p:md:3"
    with pytest.raises(ValueError):
        stream_key("p:", MARKET_DATA)
    with pytest.raises(ValueError):
        stream_key("p:", FILLS, 1)
