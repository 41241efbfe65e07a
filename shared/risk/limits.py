"""The risk limits, and exact integer arithmetic on the fractions they are given in.

Money limits are micro-dollars and count limits hundredths of a contract
(:mod:`shared.money`). Fractions (of NAV, error rates, drawdowns) are floats in
configuration but are turned into integer parts per million before they touch
money (:func:`ppm`, :func:`fraction_of`), so every comparison is exact.
"""

from __future__ import annotations

from typing import Final, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.money import ONE_DOLLAR, Count, Micros, cents, contracts, dollars

PPM: Final = 1_000_000
"""Parts per million: one whole."""


def ppm(fraction: float) -> int:
    """A fraction in parts per million, rounded to the nearest."""
    return round(fraction * PPM)


def fraction_of(amount: Micros, fraction: float) -> Micros:
    """``fraction`` of ``amount`` (micros), floored: the limit is never looser than asked."""
    return amount * ppm(fraction) // PPM


class RiskLimits(BaseModel):
    """Every limit the risk guardian enforces (defaults for a $10,000 paper account)."""

    model_config = ConfigDict(frozen=True)

    bankroll: Micros = Field(
        dollars(10_000), gt=0, description="starting cash of the ledger, micro-dollars"
    )
    max_event_exposure_frac: float = Field(
        0.20, gt=0, le=1, description="exposure of one event at most this fraction of NAV"
    )
    max_series_exposure_frac: float = Field(
        0.20, gt=0, le=1, description="exposure of one series at most this fraction of NAV"
    )
    max_correlated_exposure_frac: float = Field(
        0.25,
        gt=0,
        le=1,
        description="exposure of one correlated group (station, FED) at most this fraction of NAV",
    )
    max_order_notional: Micros = Field(
        dollars(500), gt=0, description="price x count of one order at most this, micro-dollars"
    )
    max_open_orders: int = Field(
        200, ge=1, description="resting (or possibly resting) orders at most this many"
    )
    max_market_contracts: Count = Field(
        contracts(1_000),
        gt=0,
        description="held + open buys of one side of one market, hundredths of a contract",
    )
    exchange_position_limit: Count = Field(
        contracts(25_000),
        gt=0,
        description="held + open buys of both sides of one market, hundredths of a contract",
    )
    max_buy_price: Micros = Field(
        cents(99), gt=0, le=ONE_DOLLAR, description="buys at or above this price are refused"
    )
    min_sell_price: Micros = Field(
        cents(1), ge=0, lt=ONE_DOLLAR, description="sells at or below this price are refused"
    )
    submit_rate_per_s: float = Field(
        8.0, gt=0, description="orders per second (Kalshi Basic allows 10 writes/s: stay below)"
    )
    submit_burst: int = Field(
        10, ge=1, description="orders at once; a signal with more legs can never pass"
    )
    daily_loss_halt_frac: float = Field(
        0.10, gt=0, le=1, description="halt when the day's loss exceeds this fraction of its NAV"
    )
    api_error_rate_halt: float = Field(
        0.05, gt=0, le=1, description="halt when exchange API errors exceed this rate"
    )
    api_error_window_s: float = Field(60.0, gt=0, description="window of the API error rate, s")
    api_error_min_requests: int = Field(
        20, ge=1, description="the error rate counts only with this many requests in the window"
    )
    feed_stale_halt_s: float = Field(
        5.0, gt=0, description="halt when a feed has been silent longer than this, s"
    )
    recovery_drawdown_frac: float = Field(
        0.05, gt=0, lt=1, description="enter recovery mode at this drawdown from peak NAV"
    )
    recovery_exit_drawdown_frac: float = Field(
        0.02, ge=0, lt=1, description="leave recovery mode below this drawdown"
    )
    day_boundary_utc_hour: int = Field(
        0, ge=0, le=23, description="UTC hour the trading day (and its daily P&L) starts"
    )

    @model_validator(mode="after")
    def _recovery_hysteresis(self) -> Self:
        if self.recovery_exit_drawdown_frac >= self.recovery_drawdown_frac:
            raise ValueError("recovery_exit_drawdown_frac must be below recovery_drawdown_frac")
        return self


DEFAULT_LIMITS: Final = RiskLimits()
