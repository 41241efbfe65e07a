"""Kalshi's fee formula against values computed independently with Fractions."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from shared.fees import (
    FeeError,
    fee,
    fee_numerator,
    maker_fee,
    parse_multiplier,
    round_up_numerator,
    taker_fee,
    taker_rate,
)
from shared.money import cents, contracts


def reference_fee(rate: Fraction, count_contracts: int, price_cents: int) -> int:
    """The published formula in exact rationals, rounded up to the cent; returns cents."""
    p = Fraction(price_cents, 100)
    return math.ceil(rate * count_contracts * p * (1 - p) * 100)


@pytest.mark.parametrize("count", [1, 10, 100])
@pytest.mark.parametrize("price", range(1, 100))
def test_taker_table(price: int, count: int) -> None:
    expected = reference_fee(Fraction(7, 100), count, price)
    assert taker_fee(cents(price), contracts(count), "quadratic", "1") == cents(expected)


@pytest.mark.parametrize("count", [1, 10, 100])
@pytest.mark.parametrize("price", range(1, 100))
def test_maker_table(price: int, count: int) -> None:
    expected = reference_fee(Fraction(175, 10_000), count, price)
    got = maker_fee(cents(price), contracts(count), "quadratic_with_maker_fees", "1")
    assert got == cents(expected)
    assert maker_fee(cents(price), contracts(count), "quadratic", "1") == 0


@pytest.mark.parametrize(
    ("count", "price", "taker", "maker"),
    [(1, 50, 2, 1), (10, 50, 18, None), (100, 50, 175, 44), (100, 10, 63, None)],
)
def test_worked_examples(count: int, price: int, taker: int, maker: int | None) -> None:
    assert taker_fee(cents(price), contracts(count), "quadratic", "1") == cents(taker)
    if maker is not None:
        got = maker_fee(cents(price), contracts(count), "quadratic_with_maker_fees", "1")
        assert got == cents(maker)


def test_multiplier_scales_exactly() -> None:
    # 0.07 x 0.5 = 0.035: 100 @ 0.50 -> 0.875 -> 88 cents
    assert taker_fee(cents(50), contracts(100), "quadratic", "0.5") == cents(88)
    assert taker_fee(cents(50), contracts(100), "quadratic", "0") == 0
    # combo makers: 0.035 x 1 -> 100 @ 0.50 = 0.875 -> 88 cents
    assert maker_fee(cents(50), contracts(100), "quadratic_with_combo_maker_fees", "1") == cents(88)


def test_sub_penny_and_fractional() -> None:
    # 2.5 contracts at $0.4321: 0.07 x 2.5 x 0.4321 x 0.5679 = 0.04294... -> 5 cents
    expected = math.ceil(
        Fraction(7, 100) * Fraction(5, 2) * Fraction(4321, 10_000) * Fraction(5679, 10_000) * 100
    )
    assert taker_fee(432_100, 250, "quadratic", "1") == cents(expected) == cents(5)


def test_accumulated_fills_round_once() -> None:
    rate = taker_rate("quadratic", "1")
    one_fill = fee(cents(50), contracts(10), rate)
    numerator = sum(fee_numerator(cents(50), contracts(1), rate) for _ in range(10))
    assert round_up_numerator(numerator, rate) == one_fill == cents(18)


@pytest.mark.parametrize("bad", ["", "abc", "1e-3", "-1", "0.5.5"])
def test_bad_multiplier(bad: str) -> None:
    with pytest.raises(FeeError):
        parse_multiplier(bad)


def test_unknown_fee_type() -> None:
    with pytest.raises(FeeError):
        taker_fee(cents(50), contracts(1), "mystery", "1")
