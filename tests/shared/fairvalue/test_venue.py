"""Cross-venue reference: executable prices after Polymarket's fee, fee-adjusted midpoint."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.fairvalue.venue import (
    VenueModelConfig,
    executable_buy,
    venue_fair_value,
    venue_fee,
)
from shared.messages import Level, Side, VenueBook
from shared.money import contracts

NS = 10**9
NOW = 1_790_000_000 * NS


def book(
    bids: list[Level],
    asks: list[Level],
    rate: float = 0.05,
    observed_at_ns: int = NOW,
) -> VenueBook:
    return VenueBook(
        venue="polymarket",
        market="KXHIGHNY-26JAN15-T40",
        bids=bids,
        asks=asks,
        taker_fee_rate=rate,
        observed_at_ns=observed_at_ns,
    )


# YES bids 0.48 x 100, 0.47 x 50; YES asks 0.52 x 30, 0.53 x 200 (counts in hundredths)
BOOK = book(
    bids=[Level(480_000, contracts(100)), Level(470_000, contracts(50))],
    asks=[Level(520_000, contracts(30)), Level(530_000, contracts(200))],
)


def test_fee_is_rounded_up_to_polymarkets_precision() -> None:
    # 1 contract at 0.333: 0.05 x 0.333 x 0.667 = 0.01110555 $ -> 0.01111 $ = 11_110 micros
    assert venue_fee(333_000, contracts(1), 0.05) == 11_110
    # 30 at 0.52: 30 x 0.05 x 0.52 x 0.48 = 0.3744 $ exactly
    assert venue_fee(520_000, contracts(30), 0.05) == 374_400
    assert venue_fee(520_000, contracts(30), 0.0) == 0
    with pytest.raises(ValueError, match="fee rate"):
        venue_fee(520_000, contracts(30), 1.5)


def test_buy_yes_walks_the_asks() -> None:
    # 30 @ 0.52 = 15.60 $, fee 0.3744; 20 @ 0.53 = 10.60 $, fee 20 x 0.05 x 0.53 x 0.47 = 0.2491
    buy = executable_buy(BOOK, Side.YES, contracts(50))
    assert buy is not None
    assert buy.cost == 26_200_000
    assert buy.fee == 374_400 + 249_100
    assert buy.total == 26_823_500
    assert buy.average_price == 536_470  # 26.8235 $ / 50
    assert buy.worst_price == 530_000


def test_buy_no_takes_the_yes_bids_turned_around() -> None:
    # a YES bid at 0.48 is a NO ask at 0.52: 50 @ 0.52 = 26.00 $, fee 50 x 0.05 x 0.52 x 0.48
    buy = executable_buy(BOOK, Side.NO, contracts(50))
    assert buy is not None
    assert (buy.cost, buy.fee, buy.worst_price) == (26_000_000, 624_000, 520_000)
    assert buy.average_price == 532_480


def test_buy_needs_enough_depth() -> None:
    assert executable_buy(BOOK, Side.YES, contracts(230)) is not None
    assert executable_buy(BOOK, Side.YES, contracts(231)) is None
    assert executable_buy(BOOK, Side.NO, contracts(151)) is None
    assert executable_buy(BOOK, Side.YES, 0) is None
    assert executable_buy(book(BOOK.bids, BOOK.asks, rate=-0.1), Side.YES, 100) is None


def test_fair_value_is_the_fee_adjusted_midpoint() -> None:
    # net bid = 0.48 - 0.05 x 0.48 x 0.52 = 0.46752; all-in ask = 0.52 + 0.01248 = 0.53248
    fv = venue_fair_value(BOOK, NOW)
    assert fv is not None
    assert fv.p_yes == pytest.approx(0.5)
    # spread 0.06496 of max 0.10 -> 0.3504; depth min(150, 230) >= 100 -> 1; fresh -> 1
    assert fv.confidence == pytest.approx(0.3504)
    assert fv.model == "venue"


def test_fees_move_the_midpoint_away_from_the_edges() -> None:
    # net bid = 0.10 - 0.05 x 0.10 x 0.90 = 0.0955; all-in ask = 0.12 + 0.05 x 0.12 x 0.88 = 0.12528
    # midpoint 0.110390 (raw 0.11); spread 0.02978 -> 0.7022; depth 10 of 100 -> 0.1
    thin = book([Level(100_000, contracts(10))], [Level(120_000, contracts(40))])
    fv = venue_fair_value(thin, NOW)
    assert fv is not None
    assert fv.p_yes == pytest.approx(0.11039)
    assert fv.confidence == pytest.approx(0.7022 * 0.1)


def test_a_quiet_book_loses_confidence_down_to_a_floor() -> None:
    # 330 s old: (330 - 60) / (600 - 60) = half way from 1 to 0.5 -> 0.75
    half = venue_fair_value(book(BOOK.bids, BOOK.asks, observed_at_ns=NOW - 330 * NS), NOW)
    floor = venue_fair_value(book(BOOK.bids, BOOK.asks, observed_at_ns=NOW - 9000 * NS), NOW)
    assert half is not None and floor is not None
    assert half.confidence == pytest.approx(0.3504 * 0.75)
    assert floor.confidence == pytest.approx(0.3504 * 0.5)


@pytest.mark.parametrize(
    ("venue_book", "fresh"),
    [
        (None, True),
        (BOOK, False),
        (book([], BOOK.asks), True),
        (book(BOOK.bids, []), True),
        (book([Level(530_000, 100)], [Level(520_000, 100)]), True),  # crossed
        (book(BOOK.bids, BOOK.asks, rate=float("nan")), True),
    ],
)
def test_no_value_without_good_inputs(venue_book: VenueBook | None, fresh: bool) -> None:
    assert venue_fair_value(venue_book, NOW, feed_fresh=fresh) is None


def test_config_rejects_inverted_ages() -> None:
    with pytest.raises(ValueError, match="full_confidence_age_s"):
        VenueModelConfig(full_confidence_age_s=900, quiet_age_s=600)


levels = st.lists(
    st.builds(
        Level,
        st.integers(min_value=1, max_value=999).map(lambda c: c * 1000),
        st.integers(min_value=1, max_value=50_000),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(
    asks=levels,
    first=st.integers(min_value=1, max_value=20_000),
    more=st.integers(min_value=0, max_value=20_000),
    rate=st.sampled_from([0.0, 0.03, 0.05, 0.07]),
)
def test_buying_more_never_gets_cheaper_per_contract(
    asks: list[Level], first: int, more: int, rate: float
) -> None:
    venue_book = book([], asks, rate=rate)
    small = executable_buy(venue_book, Side.YES, first)
    large = executable_buy(venue_book, Side.YES, first + more)
    if large is None:
        return
    assert small is not None
    assert small.total <= large.total
    assert min(level.price for level in asks) <= small.average_price
    assert small.worst_price <= large.worst_price
