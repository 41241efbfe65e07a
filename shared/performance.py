"""Performance statistics of an equity curve and of closed trades (pure).

Used by the execution service's report command and by the backtester. Money
stays integer micro-dollars (:mod:`shared.money`); returns and ratios are
floats, since they are statistics, not money. A statistic that is undefined
(too few returns, no deviation, no drawdown) is ``None``, never NaN or inf,
so a report is always valid JSON.

Conventions:

* NAV is never negative: every Kalshi position is paid for in full.
* Drawdowns are measured as a fraction of the running peak (the usual
  definition, and the one the Calmar ratio divides by); the deepest one wins,
  the earliest of equals.
* Returns are simple returns between the last NAV of consecutive periods
  (aligned on the epoch, e.g. UTC days); a period without a point keeps the
  previous NAV (a zero return), like ``resample(period).last().ffill()
  .pct_change()`` in pandas. A period following a NAV of zero has no return.
* Sharpe and Sortino assume a zero risk-free rate and target return.
  Sharpe uses the sample standard deviation; Sortino's downside deviation is
  the root mean square of the negative returns over all periods.
* Calmar is the compound annual growth rate over the fractional max drawdown.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from itertools import pairwise
from typing import Final

from shared.kelly import NS_PER_DAY
from shared.money import Micros

PPM: Final = 1_000_000
DAYS_PER_YEAR: Final = 365


@dataclass(frozen=True, slots=True)
class EquityPoint:
    """The NAV (micro-dollars) at one time (ns since the epoch)."""

    ts_ns: int
    nav: Micros


@dataclass(frozen=True, slots=True)
class Drawdown:
    """The deepest fall from a running peak.

    ``depth`` is peak NAV minus trough NAV in micro-dollars, ``depth_ppm`` the same
    as parts per million of the peak (rounded down); ``duration_ns`` runs from
    the peak to the recovery (the first NAV back at the peak), or to the last
    point if the NAV never recovered. All zeros when the NAV never fell.
    """

    depth: Micros
    depth_ppm: int
    peak_ts_ns: int
    trough_ts_ns: int
    duration_ns: int

    @property
    def fraction(self) -> float:
        return self.depth_ppm / PPM


NO_DRAWDOWN: Final = Drawdown(0, 0, 0, 0, 0)


def _check(points: Sequence[EquityPoint]) -> None:
    for before, after in pairwise(points):
        if after.ts_ns < before.ts_ns:
            raise ValueError(f"equity points out of order at {after.ts_ns}")
    for point in points:
        if point.nav < 0:
            raise ValueError(f"negative NAV {point.nav} at {point.ts_ns}")


def _deepest(points: Sequence[EquityPoint]) -> tuple[int, int] | None:
    """Indexes of (peak, trough) of the deepest fractional drawdown, None if none."""
    best: tuple[int, int] | None = None
    best_fraction = Fraction(0)
    peak = 0
    for index, point in enumerate(points):
        if point.nav >= points[peak].nav:
            peak = index
            continue
        fraction = Fraction(points[peak].nav - point.nav, points[peak].nav)
        if fraction > best_fraction:
            best, best_fraction = (peak, index), fraction
    return best


def max_drawdown(points: Sequence[EquityPoint]) -> Drawdown:
    """The deepest drawdown of an equity curve (time-ordered, NAV >= 0)."""
    _check(points)
    deepest = _deepest(points)
    if deepest is None:
        return NO_DRAWDOWN
    peak, trough = points[deepest[0]], points[deepest[1]]
    recovery = next((p.ts_ns for p in points[deepest[1] :] if p.nav >= peak.nav), points[-1].ts_ns)
    depth = peak.nav - trough.nav
    return Drawdown(
        depth=depth,
        depth_ppm=depth * PPM // peak.nav,
        peak_ts_ns=peak.ts_ns,
        trough_ts_ns=trough.ts_ns,
        duration_ns=recovery - peak.ts_ns,
    )


def period_closes(points: Sequence[EquityPoint], period_ns: int) -> list[Micros]:
    """The last NAV of every period from the first point's to the last's, gaps carried."""
    if period_ns <= 0:
        raise ValueError(f"period {period_ns} ns must be positive")
    _check(points)
    if not points:
        return []
    last_of: dict[int, Micros] = {}
    for point in points:
        last_of[point.ts_ns // period_ns] = point.nav
    first, final = min(last_of), max(last_of)
    closes: list[Micros] = []
    for period in range(first, final + 1):
        closes.append(last_of.get(period, closes[-1] if closes else 0))
    return closes


def returns(points: Sequence[EquityPoint], period_ns: int) -> list[float]:
    """Simple returns between consecutive period closes (module docstring)."""
    closes = period_closes(points, period_ns)
    return [after / before - 1 for before, after in pairwise(closes) if before > 0]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def sharpe(period_returns: Sequence[float], periods_per_year: float) -> float | None:
    """Annualized Sharpe ratio (zero risk-free rate); None below two returns or no deviation."""
    if len(period_returns) < 2:
        return None
    deviation = statistics.stdev(period_returns)
    if deviation == 0:
        return None
    return statistics.fmean(period_returns) / deviation * math.sqrt(periods_per_year)


def sortino(period_returns: Sequence[float], periods_per_year: float) -> float | None:
    """Annualized Sortino ratio (target 0); None below two returns or without a loss."""
    if len(period_returns) < 2:
        return None
    downside = math.sqrt(math.fsum(min(r, 0.0) ** 2 for r in period_returns) / len(period_returns))
    if downside == 0:
        return None
    return statistics.fmean(period_returns) / downside * math.sqrt(periods_per_year)


def calmar(total_return_annualized: float | None, max_dd_frac: float) -> float | None:
    """Annualized return over the max drawdown (a fraction); None without a drawdown."""
    if total_return_annualized is None or max_dd_frac <= 0:
        return None
    return _finite(total_return_annualized / max_dd_frac)


def annualized_return(points: Sequence[EquityPoint], year_ns: int) -> float | None:
    """Compound annual growth rate from the first to the last point.

    None when it is undefined: no time elapsed, no starting capital, or a rate
    too large for a float (a big move over a few seconds).
    """
    if len(points) < 2 or points[0].nav <= 0:
        return None
    years = (points[-1].ts_ns - points[0].ts_ns) / year_ns
    if years <= 0:
        return None
    growth = points[-1].nav / points[0].nav
    if growth == 0:
        return -1.0
    try:
        return _finite(math.exp(math.log(growth) / years) - 1)
    except OverflowError:
        return None


def win_rate(trade_pnls: Sequence[Micros]) -> float | None:
    """Share of closed trades that made money (break-even trades count as trades, not
    wins); None without trades."""
    if not trade_pnls:
        return None
    return sum(1 for pnl in trade_pnls if pnl > 0) / len(trade_pnls)


@dataclass(frozen=True, slots=True)
class Report:
    """A run's performance; money in micro-dollars, ratios as floats or None."""

    start_nav: Micros
    end_nav: Micros
    pnl: Micros
    """End NAV minus start NAV: realized and marked, after fees."""
    realized_pnl: Micros
    """Sum of the closed trades' P&L as given."""
    fees: Micros
    turnover: Micros
    trades: int
    wins: int
    losses: int
    win_rate: float | None
    total_return: float | None
    annualized_return: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown: Drawdown
    periods: int
    """Number of period returns behind Sharpe and Sortino."""


def build_report(
    points: Sequence[EquityPoint],
    trade_pnls: Sequence[Micros],
    fees: Micros,
    turnover: Micros,
    period_ns: int = NS_PER_DAY,
    periods_per_year: int = DAYS_PER_YEAR,
) -> Report:
    """Everything the report shows, from the equity curve and the closed trades' P&L."""
    drawdown = max_drawdown(points)
    period_returns = returns(points, period_ns)
    start = points[0].nav if points else 0
    end = points[-1].nav if points else 0
    annual = annualized_return(points, period_ns * periods_per_year)
    return Report(
        start_nav=start,
        end_nav=end,
        pnl=end - start,
        realized_pnl=sum(trade_pnls),
        fees=fees,
        turnover=turnover,
        trades=len(trade_pnls),
        wins=sum(1 for pnl in trade_pnls if pnl > 0),
        losses=sum(1 for pnl in trade_pnls if pnl < 0),
        win_rate=win_rate(trade_pnls),
        total_return=end / start - 1 if start > 0 else None,
        annualized_return=annual,
        sharpe=sharpe(period_returns, periods_per_year),
        sortino=sortino(period_returns, periods_per_year),
        calmar=calmar(annual, drawdown.fraction),
        max_drawdown=drawdown,
        periods=len(period_returns),
    )


_MONEY_FIELDS: Final = ("start_nav", "end_nav", "pnl", "realized_pnl", "fees", "turnover")


def report_to_dict(report: Report) -> dict[str, int | float | str | None]:
    """A JSON-ready report: money as integer micro-dollars, the unit in the key."""
    fields = asdict(report)
    drawdown = fields.pop("max_drawdown")
    out: dict[str, int | float | str | None] = {}
    for name, value in fields.items():
        out[f"{name}_micros" if name in _MONEY_FIELDS else name] = value
    out["max_drawdown_micros"] = drawdown["depth"]
    out["max_drawdown_ppm"] = drawdown["depth_ppm"]
    out["max_drawdown_peak_ts_ns"] = drawdown["peak_ts_ns"]
    out["max_drawdown_trough_ts_ns"] = drawdown["trough_ts_ns"]
    out["max_drawdown_duration_ns"] = drawdown["duration_ns"]
    return out
