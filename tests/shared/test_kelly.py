"""Fee-adjusted Kelly: hand-worked cases, a brute-force twin, and properties."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.fees import taker_rate
from shared.kelly import (
    AskLadder,
    KellyConfig,
    aroc,
    days_to_close,
    edge_after_fees,
    full_kelly,
    kelly_multiplier,
    net_payout,
    score,
    size_buy,
)
from shared.messages import Level
from shared.money import ONE_DOLLAR, cents, contracts, dollars

RATE = taker_rate("quadratic", "1")


def test_full_kelly_by_hand() -> None:
    # even odds, no fee: b = 1, f* = 0.6 - 0.4 = 0.2
    assert full_kelly(0.6, cents(50)) == pytest.approx(0.2)
    # all-in 52 cents: b = 48/52, f* = (0.6 - 0.52) / 0.48
    assert full_kelly(0.6, cents(52)) == pytest.approx(0.08 / 0.48)
    assert full_kelly(0.5, cents(50)) == 0.0
    assert full_kelly(0.4, cents(50)) < 0
    assert edge_after_fees(0.6, cents(52)) == pytest.approx(0.08)


def test_settlement_fee_hook_lowers_payout() -> None:
    assert net_payout() == ONE_DOLLAR
    assert full_kelly(0.6, cents(50), net_payout(cents(2))) < full_kelly(0.6, cents(50))


def test_full_kelly_rejects_impossible_costs() -> None:
    for cost in (0, ONE_DOLLAR, ONE_DOLLAR + 1):
        with pytest.raises(ValueError):
            full_kelly(0.5, cost)


def test_multiplier_follows_recovery_mode() -> None:
    assert kelly_multiplier(False) == 0.25
    assert kelly_multiplier(True) == 0.10


def test_quarter_kelly_one_level_by_hand() -> None:
    """p 0.6, asks 10 @ $0.50, bankroll $100; fee(n) = ceil(1.75 n) cents.

    n = 8: fee 14c, T = $4.14, c = 0.5175, f* = 0.0825 / 0.4825 = 0.17098,
    stake limit 0.25 x 0.17098 x $100 = $4.27 >= $4.14. n = 9: T = $4.66 > $4.26.
    """
    sized = size_buy(0.6, [Level(cents(50), contracts(10))], RATE, dollars(100))
    assert sized.count == contracts(8)
    assert sized.walk.fee == cents(14)
    assert sized.walk.cost == cents(414)
    assert sized.full_kelly == pytest.approx(0.0825 / 0.4825)
    assert sized.kelly_fraction == pytest.approx(0.25 * 0.0825 / 0.4825)
    assert sized.edge == pytest.approx(0.0825)
    assert sized.ev == cents(480 - 414)
    assert sized.reason == ""


def test_recovery_mode_sizes_smaller_by_hand() -> None:
    # 0.10 x f* x $100: n = 3 costs $1.56 within $1.67; n = 4 costs $2.07 over $1.71
    sized = size_buy(0.6, [Level(cents(50), contracts(10))], RATE, dollars(100), recovery_mode=True)
    assert sized.count == contracts(3)
    assert sized.walk.cost == cents(156)


def test_walks_levels_and_rounds_the_order_fee_once() -> None:
    # rich bankroll: size is capped by the levels worth buying (0.95 has negative edge)
    asks = [
        Level(cents(50), contracts(3)),
        Level(cents(60), contracts(3)),
        Level(cents(95), 10_000),
    ]
    sized = size_buy(0.9, asks, RATE, dollars(1_000_000))
    assert sized.count == contracts(6)
    assert sized.walk.fills == (Level(cents(50), contracts(3)), Level(cents(60), contracts(3)))
    # 0.07 x (3 x 0.25 + 3 x 0.24) = 0.1029 -> 11 cents (rounding per level would give 12)
    assert sized.walk.fee == cents(11)
    assert sized.walk.limit_price == cents(60)


def test_fractional_depth_is_sized_in_whole_contracts() -> None:
    asks = [Level(cents(50), 250), Level(cents(51), 125)]
    sized = size_buy(0.9, asks, RATE, dollars(1_000_000))
    assert sized.count == contracts(3)
    assert sized.walk.fills == (Level(cents(50), 250), Level(cents(51), 50))
    assert sized.walk.notional == cents(125) + cents(51) // 2


def test_skips_below_min_edge() -> None:
    asks = [Level(cents(50), contracts(100))]
    # edge after fees 0.53 - 0.5175 = 0.0125 < 0.02
    skipped = size_buy(0.53, asks, RATE, dollars(100))
    assert skipped.count == 0
    assert "edge" in skipped.reason
    assert size_buy(0.53, asks, RATE, dollars(100), config=KellyConfig(min_edge=0.0)).count > 0
    assert size_buy(0.9, [], RATE, dollars(100)).count == 0


def test_tiny_bankroll_buys_nothing() -> None:
    sized = size_buy(0.6, [Level(cents(50), contracts(10))], RATE, dollars(1))
    assert sized.count == 0
    assert "one contract" in sized.reason


def test_ask_ladder_costs() -> None:
    ladder = AskLadder([Level(cents(50), contracts(3)), Level(cents(60), contracts(3))], RATE)
    assert ladder.depth == contracts(6)
    assert ladder.cost(0) == 0
    assert ladder.cost(contracts(1)) == cents(52)
    assert ladder.cost(contracts(4)) == cents(150 + 60 + 7)  # 0.07 x (0.75 + 0.24) -> 7c
    with pytest.raises(ValueError):
        ladder.cost(contracts(7))


def test_aroc_and_score() -> None:
    assert aroc(dollars(2), dollars(100), 73.0) == pytest.approx(0.1)
    assert aroc(dollars(2), dollars(100), 0.0) == pytest.approx(0.02 * 365 * 24)
    assert days_to_close(0, 2 * 86_400 * 10**9) == 2.0
    assert score(0.5, 1.0, contracts(1)) == 0.0  # a one-contract ghost
    assert score(0.05, 1.0, contracts(100)) > score(0.5, 1.0, contracts(1))
    assert score(0.1, 0.5, contracts(10)) == pytest.approx(0.05 * math.log(10))


# --- properties -----------------------------------------------------------------------

probabilities = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
prices = st.integers(1, 99).map(cents)
levels = st.lists(st.builds(Level, prices, st.integers(1, 2_000)), min_size=0, max_size=5).map(
    lambda ls: sorted({lv.price: lv for lv in ls}.values(), key=lambda lv: lv.price)
)


@given(probabilities, st.integers(1, ONE_DOLLAR - 1))
def test_full_kelly_never_positive_without_edge(p: float, cost: int) -> None:
    kelly = full_kelly(p, cost)
    if Fraction(p) * ONE_DOLLAR <= cost:
        assert kelly <= 0
    else:
        assert kelly > 0 or kelly == pytest.approx(0)


@given(probabilities, probabilities, st.integers(1, ONE_DOLLAR - 1))
def test_full_kelly_monotone_in_p(p1: float, p2: float, cost: int) -> None:
    low, high = sorted((p1, p2))
    assert full_kelly(low, cost) <= full_kelly(high, cost)


@settings(max_examples=150, deadline=None)
@given(probabilities, probabilities, levels, st.integers(1, 10_000).map(dollars), st.booleans())
def test_size_monotone_in_p_and_never_without_edge(
    p1: float, p2: float, asks: list[Level], bankroll: int, recovery: bool
) -> None:
    low, high = sorted((p1, p2))
    small = size_buy(low, asks, RATE, bankroll, recovery_mode=recovery)
    large = size_buy(high, asks, RATE, bankroll, recovery_mode=recovery)
    assert small.count <= large.count
    for sized, p in ((small, low), (large, high)):
        if sized.count:
            assert Fraction(p) * sized.count * ONE_DOLLAR / 100 > sized.walk.cost
            assert sized.kelly_fraction > 0
            assert sized.walk.cost <= bankroll * sized.kelly_fraction * (1 + 1e-12)
            assert sized.edge >= 0.02 - 1e-12


def _brute_force(p: float, asks: list[Level], bankroll: int, config: KellyConfig) -> int:
    """The largest whole size meeting the rules, trying every size, in exact rationals."""
    pf, edge, mult = Fraction(p), Fraction(config.min_edge), Fraction(config.fraction)
    worthy = []
    for lv in asks:
        own = Fraction(lv.price, ONE_DOLLAR) * (
            1 + Fraction(7, 100) * (1 - Fraction(lv.price, ONE_DOLLAR))
        )
        if pf - own < edge:
            break
        worthy.append(lv)
    best, depth = 0, sum(lv.count for lv in worthy) // 100
    for n in range(1, depth + 1):
        left, spent, fee = n * 100, Fraction(0), Fraction(0)
        for lv in worthy:
            take = min(left, lv.count)
            price = Fraction(lv.price, ONE_DOLLAR)
            spent += price * Fraction(take, 100)
            fee += Fraction(7, 100) * Fraction(take, 100) * price * (1 - price)
            left -= take
        total = spent + Fraction(math.ceil(fee * 100), 100)
        cost = total / n
        if cost >= 1 or pf - cost < edge:
            continue
        if total * ONE_DOLLAR <= mult * (pf - cost) / (1 - cost) * bankroll:
            best = n
    return best


@settings(max_examples=80, deadline=None)
@given(
    probabilities,
    st.lists(st.builds(Level, prices, st.integers(1, 400)), max_size=4).map(
        lambda ls: sorted({lv.price: lv for lv in ls}.values(), key=lambda lv: lv.price)
    ),
    st.integers(1, 300).map(dollars),
)
def test_size_matches_brute_force(p: float, asks: list[Level], bankroll: int) -> None:
    config = KellyConfig()
    assert size_buy(p, asks, RATE, bankroll).count == 100 * _brute_force(p, asks, bankroll, config)
