"""The FedWatch method: CME's worked example, chained meetings worked by hand, Kalshi mapping."""

from __future__ import annotations

from datetime import date

import pytest

from shared.fedwatch import (
    FedWatchError,
    Month,
    fedwatch,
    kalshi_meeting_code,
    kalshi_threshold_probabilities,
    kxfed_threshold_bp,
    post_meeting_rate,
    pre_meeting_rate,
    probability_upper_above,
    step_distribution,
)


def price(rate_pct: float) -> float:
    """The ZQ price of a month whose average EFFR is ``rate_pct``."""
    return 100.0 - rate_pct


def test_cme_worked_example_september_2015() -> None:
    # protocols.md 7: N=30, M=16, start 0.1325 (= 100 - 99.8675, August), R = 0.195
    odds = fedwatch(
        [date(2015, 9, 17), date(2015, 10, 28)],
        {Month(2015, 8): 99.8675, Month(2015, 9): 99.805},
        25,
        as_of=date(2015, 9, 1),
    )
    september = odds[0]  # October is beyond the quotes: the chain stops there
    assert len(odds) == 1
    assert september.start_rate == pytest.approx(0.1325)
    assert september.end_rate == pytest.approx(0.26643, abs=1e-5)
    assert september.upper_bound_bp_probs[50] == pytest.approx(0.536, abs=0.0005)
    assert september.upper_bound_bp_probs[25] == pytest.approx(0.464, abs=0.0005)
    assert probability_upper_above(september.upper_bound_bp_probs, 25) == pytest.approx(
        0.5357, 1e-3
    )


def test_rate_formulas_invert_each_other() -> None:
    end = post_meeting_rate(0.195, 0.1325, 30, 16)
    assert pre_meeting_rate(0.195, end, 30, 16) == pytest.approx(0.1325)
    with pytest.raises(FedWatchError):
        post_meeting_rate(1.0, 1.0, 30, 30)
    with pytest.raises(FedWatchError):
        pre_meeting_rate(1.0, 1.0, 30, 0)


@pytest.mark.parametrize(
    ("steps", "distribution"),
    [
        (0.0, {0: 1.0}),
        (0.3, {0: 0.7, 1: 0.3}),
        (-0.44, {-1: 0.44, 0: 0.56}),
        (1.3, {1: 0.7, 2: 0.3}),  # beyond one hike the excess spills into a second step
        (-2.0, {-2: 1.0}),
    ],
)
def test_step_distribution(steps: float, distribution: dict[int, float]) -> None:
    result = step_distribution(steps)
    assert result.keys() == distribution.keys()
    for key, p in distribution.items():
        assert result[key] == pytest.approx(p)


def test_two_meetings_late_month_then_meeting_month() -> None:
    # Worked by hand. July 29 (N=31, M=28): only 3 days after the meeting, and August has no
    # meeting, so July's end rate is August's contract: 4.22. Start: June (no meeting) 4.33.
    #   steps = (4.22 - 4.33) / 0.25 = -0.44 -> cut 44%, hold 56%.
    # September 16 (N=30, M=15): start = August 4.22, R = 4.10,
    #   end = (30 x 4.10 - 15 x 4.22) / 15 = 3.98, steps = -0.96 -> cut 96%, hold 4%.
    # Chained from {450: .56, 425: .44}: 450: .56 x .04 = .0224; 425: .56 x .96 + .44 x .04 =
    # .5552; 400: .44 x .96 = .4224.
    quotes = {
        Month(2026, 6): price(4.33),
        Month(2026, 7): price(4.30),  # not used: the meeting is too late in July
        Month(2026, 8): price(4.22),
        Month(2026, 9): price(4.10),
    }
    july, september = fedwatch(
        [date(2026, 7, 29), date(2026, 9, 16)], quotes, 450, as_of=date(2026, 7, 1)
    )
    assert (july.start_rate, july.end_rate) == pytest.approx((4.33, 4.22))
    assert july.upper_bound_bp_probs == pytest.approx({425: 0.44, 450: 0.56})
    assert september.start_rate == pytest.approx(4.22)
    assert september.end_rate == pytest.approx(3.98)
    assert september.expected_steps == pytest.approx(-0.96)
    assert september.upper_bound_bp_probs == pytest.approx({400: 0.4224, 425: 0.5552, 450: 0.0224})
    ladder = kalshi_threshold_probabilities(september.upper_bound_bp_probs, [375, 400, 425, 450])
    assert ladder == pytest.approx({375: 1.0, 400: 0.5776, 425: 0.0224, 450: 0.0})


def test_consecutive_months_chain_through_the_previous_meetings_end() -> None:
    # March 18 (N=31, M=17): start = February 4.33; chosen end 4.13 (-0.8 steps) gives
    #   R = (17 x 4.33 + 14 x 4.13) / 31. April 29 (N=30, M=28): March has a meeting, so
    #   start = March's end 4.13; chosen end 4.03 (-0.4 steps) gives
    #   R = (28 x 4.13 + 2 x 4.03) / 30.
    #   After March {425: .8, 450: .2}; after April 400: .8 x .4 = .32,
    #   425: .8 x .6 + .2 x .4 = .56, 450: .2 x .6 = .12.
    quotes = {
        Month(2026, 2): price(4.33),
        Month(2026, 3): price((17 * 4.33 + 14 * 4.13) / 31),
        Month(2026, 4): price((28 * 4.13 + 2 * 4.03) / 30),
    }
    march, april = fedwatch(
        [date(2026, 3, 18), date(2026, 4, 29)], quotes, 450, as_of=date(2026, 3, 1), late_days=1
    )
    assert march.upper_bound_bp_probs == pytest.approx({425: 0.8, 450: 0.2})
    assert april.start_rate == pytest.approx(4.13)
    assert april.end_rate == pytest.approx(4.03)
    assert april.upper_bound_bp_probs == pytest.approx({400: 0.32, 425: 0.56, 450: 0.12})


def test_past_meetings_are_skipped_but_mark_their_month() -> None:
    # June 17 is past; July's start cannot come from June's contract (June had a move in it)
    meetings = [date(2026, 6, 17), date(2026, 7, 29)]
    quotes = {Month(2026, 6): price(4.0), Month(2026, 8): price(4.08)}
    (july,) = fedwatch(meetings, quotes, 450, as_of=date(2026, 7, 2), effr=4.33)
    assert july.meeting == date(2026, 7, 29)
    assert july.start_rate == pytest.approx(4.33)  # the current EFFR
    assert july.upper_bound_bp_probs == pytest.approx({425: 1.0})


def test_start_solved_backwards_from_a_clean_next_month() -> None:
    # No EFFR and June is not quoted: start = (N x R - (N - M) x end) / M with end = August.
    quotes = {Month(2026, 7): price((28 * 4.33 + 3 * 4.08) / 31), Month(2026, 8): price(4.08)}
    (july,) = fedwatch([date(2026, 7, 29)], quotes, 450, as_of=date(2026, 7, 1))
    assert july.start_rate == pytest.approx(4.33)
    assert july.upper_bound_bp_probs == pytest.approx({425: 1.0})


def test_no_start_rate_is_an_error() -> None:
    with pytest.raises(FedWatchError, match="no rate before"):
        fedwatch([date(2026, 9, 16)], {Month(2026, 9): 95.9}, 450, as_of=date(2026, 9, 1))


def test_hike_beyond_one_step() -> None:
    # start 1.00, R such that end = 1.325: 1.3 steps -> +25 bp 70%, +50 bp 30%
    quotes = {Month(2026, 8): price(1.0), Month(2026, 9): price((15 * 1.0 + 15 * 1.325) / 30)}
    (september,) = fedwatch([date(2026, 9, 16)], quotes, 125, as_of=date(2026, 9, 1))
    assert september.upper_bound_bp_probs == pytest.approx({150: 0.7, 175: 0.3})


def test_kalshi_names() -> None:
    assert kalshi_meeting_code(date(2026, 9, 16)) == "26SEP"
    assert kalshi_meeting_code(date(2027, 1, 27)) == "27JAN"
    assert kxfed_threshold_bp("KXFED-26SEP-T4.00") == 400
    assert kxfed_threshold_bp("KXFED-26SEP-T3.75") == 375
    assert kxfed_threshold_bp("FED-23DEC-T5") == 500
    with pytest.raises(FedWatchError):
        kxfed_threshold_bp("KXFEDDECISION-26SEP-H0")


def test_months() -> None:
    assert Month.parse("2026-12").next() == Month(2027, 1)
    assert Month(2026, 1).prev() == Month(2025, 12)
    assert Month(2024, 2).days == 29
    assert str(Month(2026, 3)) == "2026-03"
    with pytest.raises(FedWatchError):
        Month.parse("2026-13")
