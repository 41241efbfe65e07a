"""Performance statistics: a hand-worked equity curve, edge cases, and properties."""

from __future__ import annotations

import json
import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.money import dollars
from shared.performance import (
    Drawdown,
    EquityPoint,
    annualized_return,
    build_report,
    calmar,
    max_drawdown,
    period_closes,
    report_to_dict,
    returns,
    sharpe,
    sortino,
    win_rate,
)

DAY = 86_400 * 10**9
NOON = DAY // 2


def daily(*navs_in_dollars: int) -> list[EquityPoint]:
    """One point per day at noon, NAVs in whole dollars."""
    return [EquityPoint(day * DAY + NOON, dollars(nav)) for day, nav in enumerate(navs_in_dollars)]


# 100 -> 110 -> 99 -> 120 -> 102 -> 130 (dollars, one a day)
CURVE = daily(100, 110, 99, 120, 102, 130)
CURVE_RETURNS = [110 / 100 - 1, 99 / 110 - 1, 120 / 99 - 1, 102 / 120 - 1, 130 / 102 - 1]


def test_daily_returns_by_hand() -> None:
    assert returns(CURVE, DAY) == pytest.approx(CURVE_RETURNS)


def test_sharpe_and_sortino_by_hand() -> None:
    mean = statistics.mean(CURVE_RETURNS)
    expected_sharpe = mean / statistics.stdev(CURVE_RETURNS) * math.sqrt(365)
    # downside deviation: the losses (-10%, -15%) squared, averaged over all 5 periods
    downside = math.sqrt(((99 / 110 - 1) ** 2 + (102 / 120 - 1) ** 2) / 5)
    expected_sortino = mean / downside * math.sqrt(365)

    assert sharpe(returns(CURVE, DAY), 365) == pytest.approx(expected_sharpe)
    assert sortino(returns(CURVE, DAY), 365) == pytest.approx(expected_sortino)
    assert expected_sortino > expected_sharpe > 0


def test_max_drawdown_by_hand() -> None:
    # 110 -> 99 is 10%; 120 -> 102 is 15% (the deepest), recovered by 130 a day later
    drawdown = max_drawdown(CURVE)
    assert drawdown == Drawdown(
        depth=dollars(18),
        depth_ppm=150_000,
        peak_ts_ns=3 * DAY + NOON,
        trough_ts_ns=4 * DAY + NOON,
        duration_ns=2 * DAY,
    )
    assert drawdown.fraction == 0.15


def test_drawdown_never_recovered_lasts_to_the_end() -> None:
    drawdown = max_drawdown(daily(100, 120, 90, 110))
    assert drawdown.depth == dollars(30)
    assert drawdown.depth_ppm == 250_000
    assert (drawdown.peak_ts_ns, drawdown.trough_ts_ns) == (DAY + NOON, 2 * DAY + NOON)
    assert drawdown.duration_ns == 2 * DAY


def test_deepest_is_by_fraction_and_earliest_among_equals() -> None:
    # $10 of $20 (50%) is deeper than $40 of $200 (20%)
    drawdown = max_drawdown(daily(20, 10, 200, 160))
    assert (drawdown.depth, drawdown.depth_ppm) == (dollars(10), 500_000)
    # two 10% falls: the first counts
    assert max_drawdown(daily(100, 90, 100, 90)).trough_ts_ns == DAY + NOON


def test_no_drawdown() -> None:
    assert max_drawdown(daily(100, 100, 101)).depth == 0
    assert max_drawdown([]).depth == 0
    assert max_drawdown(daily(0, 0)).depth_ppm == 0


def test_bad_curves_are_refused() -> None:
    with pytest.raises(ValueError, match="order"):
        max_drawdown([EquityPoint(2, 1), EquityPoint(1, 1)])
    with pytest.raises(ValueError, match="negative"):
        max_drawdown([EquityPoint(1, -1)])
    with pytest.raises(ValueError):
        returns(CURVE, 0)


def test_resampling_keeps_the_last_value_and_carries_gaps() -> None:
    points = [
        EquityPoint(10 * 3_600 * 10**9, dollars(100)),
        EquityPoint(20 * 3_600 * 10**9, dollars(105)),  # day 0 closes at 105
        EquityPoint(2 * DAY + 1, dollars(110)),  # day 1 has no point: 105 carried
    ]
    assert period_closes(points, DAY) == [dollars(105), dollars(105), dollars(110)]
    assert returns(points, DAY) == pytest.approx([0.0, 110 / 105 - 1])
    assert returns(daily(0, 100, 110), DAY) == pytest.approx([0.1])  # no return from zero


def test_undefined_statistics_are_none() -> None:
    assert sharpe([], 365) is None
    assert sharpe([0.01], 365) is None
    assert sharpe([0.01, 0.01, 0.01], 365) is None
    assert sortino([0.01, 0.02], 365) is None  # no losses
    assert sortino([-0.01], 365) is None
    assert calmar(0.5, 0.0) is None
    assert calmar(None, 0.1) is None
    assert win_rate([]) is None
    assert annualized_return(daily(100), 365 * DAY) is None
    assert annualized_return(daily(0, 100), 365 * DAY) is None
    assert annualized_return([EquityPoint(0, 1), EquityPoint(1, 10**12)], 365 * DAY) is None
    assert calmar(1e300, 1e-9) is None  # overflows to inf


def test_annualized_return_and_calmar_by_hand() -> None:
    two_years = [EquityPoint(0, dollars(100)), EquityPoint(2 * 365 * DAY, dollars(121))]
    assert annualized_return(two_years, 365 * DAY) == pytest.approx(0.10)
    assert calmar(0.10, 0.25) == pytest.approx(0.4)
    assert annualized_return(daily(100, 0), 365 * DAY) == -1.0


def test_win_rate_counts_break_even_as_a_trade() -> None:
    assert win_rate([dollars(5), -dollars(3), 0, dollars(1)]) == 0.5


def test_build_report_by_hand() -> None:
    pnls = [dollars(5), -dollars(3), 0, dollars(1)]
    report = build_report(CURVE, pnls, fees=dollars(2), turnover=dollars(500))

    assert (report.start_nav, report.end_nav, report.pnl) == (
        dollars(100),
        dollars(130),
        dollars(30),
    )
    assert (report.realized_pnl, report.fees, report.turnover) == (
        dollars(3),
        dollars(2),
        dollars(500),
    )
    assert (report.trades, report.wins, report.losses, report.win_rate) == (4, 2, 1, 0.5)
    assert report.total_return == pytest.approx(0.30)
    assert report.periods == 5
    assert report.sharpe == pytest.approx(
        statistics.mean(CURVE_RETURNS) / statistics.stdev(CURVE_RETURNS) * math.sqrt(365)
    )
    years = 5 / 365
    annual = 1.3 ** (1 / years) - 1
    assert report.annualized_return == pytest.approx(annual)
    assert report.calmar == pytest.approx(annual / 0.15)
    assert report.max_drawdown.depth == dollars(18)


def test_report_dict_is_json_with_units_in_the_keys() -> None:
    report = build_report(CURVE, [dollars(1)], fees=12_345, turnover=dollars(7))
    out = report_to_dict(report)

    assert out["pnl_micros"] == dollars(30)
    assert out["fees_micros"] == 12_345
    assert out["turnover_micros"] == dollars(7)
    assert out["start_nav_micros"] == dollars(100)
    assert out["max_drawdown_micros"] == dollars(18)
    assert out["max_drawdown_ppm"] == 150_000
    assert out["max_drawdown_duration_ns"] == 2 * DAY
    assert out["trades"] == 1
    assert "pnl" not in out
    assert all(isinstance(v, int | float | str) or v is None for v in out.values())
    json.dumps(out, allow_nan=False)


def test_empty_report_is_still_valid_json() -> None:
    out = report_to_dict(build_report([], [], fees=0, turnover=0))
    assert out["sharpe"] is None and out["win_rate"] is None and out["total_return"] is None
    json.dumps(out, allow_nan=False)


# --- properties ------------------------------------------------------------------------

curves = st.lists(st.integers(min_value=0, max_value=10**9), min_size=0, max_size=40).map(
    lambda navs: [EquityPoint(i * DAY // 3, nav) for i, nav in enumerate(navs)]
)


def brute_force_deepest(points: list[EquityPoint]) -> tuple[int, int]:
    """(depth, ppm) of the deepest fractional fall over every pair (i before j)."""
    best = (0, 0)
    best_key = 0.0
    for i, peak in enumerate(points):
        for trough in points[i + 1 :]:
            if peak.nav > 0 and trough.nav < peak.nav:
                depth = peak.nav - trough.nav
                if depth * 10**6 // peak.nav > best_key:
                    best_key = depth * 10**6 // peak.nav
                    best = (depth, depth * 10**6 // peak.nav)
    return best


@settings(max_examples=200, deadline=None)
@given(points=curves)
def test_drawdown_properties(points) -> None:
    drawdown = max_drawdown(points)
    peak = max((p.nav for p in points), default=0)

    assert 0 <= drawdown.depth <= peak
    assert 0 <= drawdown.depth_ppm <= 1_000_000
    assert drawdown.peak_ts_ns <= drawdown.trough_ts_ns
    assert drawdown.duration_ns >= drawdown.trough_ts_ns - drawdown.peak_ts_ns
    assert drawdown.depth_ppm == brute_force_deepest(points)[1]


@settings(max_examples=100, deadline=None)
@given(points=curves)
def test_report_never_holds_nan_or_inf(points) -> None:
    out = report_to_dict(build_report(points, [], fees=0, turnover=0, period_ns=DAY // 3))
    json.dumps(out, allow_nan=False)
