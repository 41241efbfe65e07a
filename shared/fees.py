"""Kalshi's trading fee formula in integer money.

``fee = round_up_to_cent(rate x C x P x (1 - P))`` with C contracts and P the
price in dollars (the formula is symmetric, so either leg's price gives the
same fee). The rate is 0.07 x ``fee_multiplier`` for takers; makers pay
0.0175 x multiplier on ``quadratic_with_maker_fees`` series, 0.035 x
multiplier on ``quadratic_with_combo_maker_fees`` series, and nothing
otherwise (see ``shared/reference/protocols.md`` 3.1).

Multipliers are parsed from their decimal strings exactly; everything is
integer arithmetic with ceiling division, never a float. Prices are
micro-dollars and counts hundredths of a contract (:mod:`shared.money`).

An order that fills in several pieces pays, in total, the formula applied to
the whole order rounded up once (Kalshi's rounding-fee rebate makes it so):
accumulate :func:`fee_numerator` over the fills and charge the difference of
:func:`round_up_numerator` before and after each fill.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from shared.money import MICROS_PER_CENT, ONE_DOLLAR, Count, Micros, ceil_div

QUADRATIC: Final = "quadratic"
QUADRATIC_WITH_MAKER_FEES: Final = "quadratic_with_maker_fees"
QUADRATIC_WITH_COMBO_MAKER_FEES: Final = "quadratic_with_combo_maker_fees"
FLAT: Final = "flat"
FEE_TYPES: Final = frozenset(
    {QUADRATIC, QUADRATIC_WITH_MAKER_FEES, QUADRATIC_WITH_COMBO_MAKER_FEES, FLAT}
)

_DECIMAL = re.compile(r"^\+?(\d*)(?:\.(\d*))?$")
_TAKER_RATE: Final = (7, 100)  # 0.07
_MAKER_RATES: Final = {
    QUADRATIC_WITH_MAKER_FEES: (175, 10_000),  # 0.0175
    QUADRATIC_WITH_COMBO_MAKER_FEES: (35, 1_000),  # 0.035
}
# rate x (count / 100) x (price / 1e6) x ((1e6 - price) / 1e6) dollars, times 1e6 for micros
_PRODUCT_SCALE: Final = 100 * ONE_DOLLAR


class FeeError(ValueError):
    """An unknown fee type or a multiplier that is not a plain decimal."""


@dataclass(frozen=True, slots=True)
class FeeRate:
    """An exact fee rate: ``numerator / denominator`` dollars per contract per P(1-P)."""

    numerator: int
    denominator: int

    @property
    def is_zero(self) -> bool:
        return self.numerator == 0


ZERO_RATE: Final = FeeRate(0, 1)


def parse_multiplier(text: str) -> tuple[int, int]:
    """``"0.5"`` -> ``(5, 10)``; exact, non-negative, no exponent notation."""
    match = _DECIMAL.match(str(text).strip())
    if match is None or not (match.group(1) or match.group(2)):
        raise FeeError(f"fee multiplier {text!r} is not a non-negative decimal")
    whole, frac = match.group(1) or "0", match.group(2) or ""
    return int(whole + frac), 10 ** len(frac)


def _rate(base: tuple[int, int], fee_multiplier: str) -> FeeRate:
    mult_num, mult_den = parse_multiplier(fee_multiplier)
    return FeeRate(base[0] * mult_num, base[1] * mult_den)


def _check_type(fee_type: str) -> None:
    if fee_type not in FEE_TYPES:
        raise FeeError(f"unknown fee type {fee_type!r}")


def taker_rate(fee_type: str, fee_multiplier: str) -> FeeRate:
    """The taker rate; ``flat`` series are charged the general table too (details unpublished)."""
    _check_type(fee_type)
    return _rate(_TAKER_RATE, fee_multiplier)


def maker_rate(fee_type: str, fee_multiplier: str) -> FeeRate:
    """The maker rate: zero unless the series charges makers."""
    _check_type(fee_type)
    base = _MAKER_RATES.get(fee_type)
    return ZERO_RATE if base is None else _rate(base, fee_multiplier)


def fee_numerator(price: Micros, count: Count, rate: FeeRate) -> int:
    """The exact fee in micro-dollars times ``rate.denominator * 100 * 1e6``."""
    if not 0 <= price <= ONE_DOLLAR or count < 0:
        raise FeeError(f"price {price} or count {count} out of range")
    return rate.numerator * count * price * (ONE_DOLLAR - price)


def round_up_numerator(numerator: int, rate: FeeRate) -> Micros:
    """An exact fee numerator (see :func:`fee_numerator`) rounded up to the cent."""
    if rate.is_zero:
        return 0
    denominator = rate.denominator * _PRODUCT_SCALE * MICROS_PER_CENT
    return ceil_div(numerator, denominator) * MICROS_PER_CENT


def fee(price: Micros, count: Count, rate: FeeRate) -> Micros:
    """The fee of one order at one price, rounded up to the cent."""
    return round_up_numerator(fee_numerator(price, count, rate), rate)


def taker_fee(price: Micros, count: Count, fee_type: str, fee_multiplier: str) -> Micros:
    """Taker fee in micro-dollars (whole cents) for ``count`` hundredths at ``price``."""
    return fee(price, count, taker_rate(fee_type, fee_multiplier))


def maker_fee(price: Micros, count: Count, fee_type: str, fee_multiplier: str) -> Micros:
    """Maker fee in micro-dollars (whole cents); zero unless the series charges makers."""
    return fee(price, count, maker_rate(fee_type, fee_multiplier))
