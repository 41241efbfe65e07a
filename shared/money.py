"""Integer fixed-point money and counts.

Kalshi sends dollar amounts as strings with up to six decimals (``*_dollars``)
and contract counts as strings with two decimals (``*_fp``). We hold them as
integers of one fixed unit each, end to end:

* money (prices, fees, cash, P&L): micro-dollars, ``1 $ == 1_000_000``;
* counts: hundredths of a contract, ``1 contract == 100``.

Parsing is exact: a string that does not parse exactly into the unit is
rejected, never rounded, and no value ever passes through a float.
"""

from __future__ import annotations

import re
from typing import Final, TypeAlias

Micros: TypeAlias = int
"""Money in millionths of a dollar (prices, fees, cash, P&L)."""

Count: TypeAlias = int
"""Contract counts in hundredths of a contract."""

MICROS_PER_DOLLAR: Final = 1_000_000
MICROS_PER_CENT: Final = 10_000
COUNT_PER_CONTRACT: Final = 100
ONE_DOLLAR: Final[Micros] = MICROS_PER_DOLLAR
"""What one winning contract pays."""

_DECIMAL = re.compile(r"^([+-]?)(\d*)(?:\.(\d*))?$")


class MoneyFormatError(ValueError):
    """A money or count string that does not parse exactly."""


def _parse_fixed(text: str, decimals: int, what: str) -> int:
    if not isinstance(text, str):
        raise MoneyFormatError(f"{what} must be a string, got {type(text).__name__}")
    match = _DECIMAL.match(text.strip())
    if match is None:
        raise MoneyFormatError(f"{what} {text!r} is not a decimal number")
    sign, whole, frac = match.group(1), match.group(2), match.group(3) or ""
    if not whole and not frac:
        raise MoneyFormatError(f"{what} {text!r} has no digits")
    significant = frac.rstrip("0")
    if len(significant) > decimals:
        raise MoneyFormatError(f"{what} {text!r} has more than {decimals} decimals")
    value: int = int(whole or "0") * 10**decimals + int(significant.ljust(decimals, "0") or "0")
    return -value if sign == "-" else value


def _format_fixed(value: int, decimals: int, places: int, what: str) -> str:
    if places > decimals:
        raise ValueError(f"{what} has only {decimals} decimals, asked for {places}")
    scale = 10 ** (decimals - places)
    if value % scale:
        raise MoneyFormatError(f"{what} {value} is not representable with {places} decimals")
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value) // scale, 10**places)
    if places == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:0{places}d}"


def parse_dollars(text: str) -> Micros:
    """``"0.5600"`` -> 560_000 micro-dollars. Up to six decimals, exact."""
    return _parse_fixed(text, 6, "dollar amount")


def format_dollars(value: Micros, places: int = 4) -> str:
    """560_000 -> ``"0.5600"``; raises if the value needs more than ``places`` decimals."""
    return _format_fixed(value, 6, places, "dollar amount")


def format_usd(value: Micros) -> str:
    """For people: exact, with two decimals unless the amount needs four or six."""
    places = next(p for p in (2, 4, 6) if value % 10 ** (6 - p) == 0)
    return format_dollars(value, places)


def parse_count(text: str) -> Count:
    """``"10.00"`` -> 1000 hundredths of a contract. Up to two decimals, exact."""
    return _parse_fixed(text, 2, "contract count")


def format_count(value: Count) -> str:
    """1000 -> ``"10.00"``, the way Kalshi writes ``*_fp`` fields."""
    return _format_fixed(value, 2, 2, "contract count")


def cents(value: int) -> Micros:
    """Whole cents to micro-dollars."""
    return value * MICROS_PER_CENT


def dollars(value: int) -> Micros:
    """Whole dollars to micro-dollars."""
    return value * MICROS_PER_DOLLAR


def contracts(value: int) -> Count:
    """Whole contracts to hundredths."""
    return value * COUNT_PER_CONTRACT


def ceil_div(numerator: int, denominator: int) -> int:
    """Integer division rounding toward +infinity (denominator > 0)."""
    return -((-numerator) // denominator)


def round_up_to(value: Micros, unit: Micros) -> Micros:
    """Round a non-negative amount up to a whole multiple of ``unit``."""
    return ceil_div(value, unit) * unit


def notional(price: Micros, count: Count) -> Micros:
    """Cost of ``count`` contracts at ``price``, exact to the micro-dollar.

    Valid Kalshi prices are multiples of $0.0001 (100 micro-dollars), so
    price x hundredths / 100 is always whole; anything else is rejected.
    """
    total, rest = divmod(price * count, COUNT_PER_CONTRACT)
    if rest:
        raise MoneyFormatError(f"notional of {count} at {price} is not whole micro-dollars")
    return total


def complement(price: Micros) -> Micros:
    """The other side's price: a YES bid at p is a NO ask at $1 - p."""
    return ONE_DOLLAR - price
