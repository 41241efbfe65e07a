"""Why msgspec: a 10-field message, encode+decode, msgspec Struct vs msgpack + dict."""

from __future__ import annotations

import time

import msgpack

from bench.figures import Figure
from shared.bus.codec import Codec
from shared.messages import Action, Fill, Side
from shared.streams import FILLS

ROUNDS = 200_000


def _fill() -> Fill:
    return Fill(
        trade_id="t-123456",
        order_id="o-98765",
        client_order_id="c-1",
        market="KXHIGHNY-25DEC05-T37",
        side=Side.YES,
        action=Action.BUY,
        price=560_000,
        count=1000,
        fee=20_000,
        is_taker=True,
        ts_ns=time.time_ns(),
    )


def _time(fn: object, rounds: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(rounds):
        fn()  # type: ignore[operator]
    return (time.perf_counter_ns() - start) / rounds


def run() -> list[Figure]:
    codec = Codec(FILLS)
    fill = _fill()
    as_dict = {f: getattr(fill, f) for f in fill.__struct_fields__ if f != "hops"}

    def with_msgspec() -> None:
        codec.decode(codec.encode(fill))

    def with_msgpack() -> None:
        decoded = msgpack.unpackb(msgpack.packb(as_dict))
        Fill(**decoded)  # the dict must still become a typed, validated message

    def with_msgpack_raw() -> None:
        msgpack.unpackb(msgpack.packb(as_dict))

    ours = _time(with_msgspec, ROUNDS)
    dicts = _time(with_msgpack, ROUNDS)
    raw = _time(with_msgpack_raw, ROUNDS)
    return [
        Figure("codec_msgspec_roundtrip_ns", ours, "ns", "encode+decode+validate"),
        Figure("codec_msgpack_dict_roundtrip_ns", dicts, "ns", "msgpack + dict -> Struct"),
        Figure("codec_msgpack_raw_roundtrip_ns", raw, "ns", "msgpack + dict, unvalidated"),
        Figure("codec_speedup_x", dicts / ours, "x", "msgpack+dict time / msgspec time"),
    ]
