import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.money import (
    MoneyFormatError,
    ceil_div,
    cents,
    complement,
    format_count,
    format_dollars,
    notional,
    parse_count,
    parse_dollars,
    round_up_to,
)


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("0.5600", 560_000),
        ("0.56", 560_000),
        ("1.0000", 1_000_000),
        ("0.0001", 100),
        ("123.456789", 123_456_789),
        ("-0.0100", -10_000),
        (".48", 480_000),
        ("0", 0),
        ("7", 7_000_000),
        ("0.123400", 123_400),
    ],
)
def test_parse_dollars_exact(text, micros):
    assert parse_dollars(text) == micros


@pytest.mark.parametrize("text", ["0.1234567", "", ".", "abc", "1e-3", "0.5.6", "--1", "NaN"])
def test_parse_dollars_rejects_what_does_not_parse_exactly(text):
    with pytest.raises(MoneyFormatError):
        parse_dollars(text)


def test_parse_rejects_non_strings():
    with pytest.raises(MoneyFormatError):
        parse_dollars(0.56)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "count"), [("10.00", 1000), ("0.01", 1), ("3", 300), ("2.5", 250)]
)
def test_parse_count(text, count):
    assert parse_count(text) == count


def test_count_with_three_decimals_is_rejected():
    with pytest.raises(MoneyFormatError):
        parse_count("1.001")


def test_format_matches_kalshi_strings():
    assert format_dollars(560_000) == "0.5600"
    assert format_dollars(560_000, 2) == "0.56"
    assert format_dollars(-10_000) == "-0.0100"
    assert format_dollars(123_456_789, 6) == "123.456789"
    assert format_count(1000) == "10.00"
    assert format_count(1) == "0.01"


def test_format_refuses_to_round():
    with pytest.raises(MoneyFormatError):
        format_dollars(123_456_789, 4)


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_dollars_round_trip(micros):
    assert parse_dollars(format_dollars(micros, 6)) == micros


@given(st.integers(min_value=0, max_value=10**12))
def test_count_round_trip(count):
    assert parse_count(format_count(count)) == count


def test_arithmetic_helpers():
    assert cents(56) == 560_000
    assert complement(cents(42)) == cents(58)
    assert ceil_div(7, 2) == 4
    assert ceil_div(-7, 2) == -3
    assert round_up_to(17_500, cents(1)) == 20_000
    assert round_up_to(20_000, cents(1)) == 20_000
    assert notional(cents(42), 1000) == 4_200_000  # 10 contracts at $0.42
    assert notional(100, 1) == 1  # $0.0001 x 0.01 contract


def test_notional_rejects_off_grid_prices():
    with pytest.raises(MoneyFormatError):
        notional(1, 1)


def test_format_usd_is_exact_with_two_decimals_unless_more_are_needed():
    from shared.money import format_usd

    assert format_usd(130_000) == "0.13"
    assert format_usd(400_100) == "0.4001"
    assert format_usd(1_234) == "0.001234"
    assert format_usd(-5_500_000) == "-5.50"
