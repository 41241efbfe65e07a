"""FOMC outcome probabilities from 30-day Fed funds futures (ZQ), by CME's FedWatch method.

Pure arithmetic, no I/O. A ZQ contract's price is 100 minus the average
effective fed funds rate (EFFR) expected over its month. In a month with a
meeting on day D (N days), CME counts M = D - 1 days at the old rate, so

    R = 100 - price,  R = (M x start + (N - M) x end) / N,
    end = (N x R - M x start) / (N - M),
    expected 25 bp steps = (end - start) / 0.25.

``start`` comes from the previous month's contract when that month has no
meeting, otherwise from the previous meeting's ``end`` (the chain), otherwise
from the current EFFR. When the meeting falls late in its month (fewer than
``late_days`` days after it) and the next month has no meeting, ``end`` is
read straight from the next month's contract instead, because dividing by a
small N - M amplifies noise in the quote. With neither a start nor a
meeting-month quote, start is solved backwards from the next month.

Each meeting moves the rate by floor(steps) or floor(steps) + 1 steps (a
binary tree: 0.3 steps is 30% one hike, 70% hold; 1.3 steps is 30% two
hikes, 70% one), and meetings chain: the distribution after a meeting is the
previous distribution shifted by this meeting's step distribution.
Probabilities are per target-range upper bound in basis points.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final, NamedTuple

STEP_BP: Final = 25
STEP_PCT: Final = 0.25
DEFAULT_LATE_DAYS: Final = 7
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_KXFED_THRESHOLD = re.compile(r"-T(\d+(?:\.\d+)?)$")
_MONTH_CODES: Final = "JANFEBMARAPRMAYJUNJULAUGSEPOCTNOVDEC"


class FedWatchError(ValueError):
    """Quotes that do not determine a meeting's outcome."""


class Month(NamedTuple):
    year: int
    month: int

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.year, day.month)

    @classmethod
    def parse(cls, text: str) -> Month:
        """``"2026-09"`` -> Month(2026, 9)."""
        match = _MONTH.match(text.strip())
        if match is None or not 1 <= int(match.group(2)) <= 12:
            raise FedWatchError(f"month {text!r} is not YYYY-MM")
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def days(self) -> int:
        return calendar.monthrange(self.year, self.month)[1]

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def prev(self) -> Month:
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True, slots=True)
class MeetingOdds:
    """One meeting: the implied rates around it and the upper-bound distribution after it."""

    meeting: date
    start_rate: float
    end_rate: float
    expected_steps: float
    """This meeting's own expected move, in 25 bp steps (negative = cuts)."""
    upper_bound_bp_probs: dict[int, float]


def implied_rate(price: float) -> float:
    """ZQ price -> the month's expected average EFFR in percent."""
    return 100.0 - price


def post_meeting_rate(average: float, start: float, days: int, days_before: int) -> float:
    """The rate after a meeting, from the month's average and the rate before it."""
    if not 0 <= days_before < days:
        raise FedWatchError(f"{days_before} days before the meeting in a {days}-day month")
    return (days * average - days_before * start) / (days - days_before)


def pre_meeting_rate(average: float, end: float, days: int, days_before: int) -> float:
    """The rate before a meeting, from the month's average and the rate after it."""
    if not 0 < days_before <= days:
        raise FedWatchError("a meeting on the 1st leaves no pre-meeting days to solve for")
    return (days * average - (days - days_before) * end) / days_before


def step_distribution(expected_steps: float) -> dict[int, float]:
    """Expected steps -> {steps: probability} over the two nearest whole step counts."""
    expected_steps = round(expected_steps, 9)  # -0.9999999999996 from float noise is -1
    low = math.floor(expected_steps)
    upper_share = expected_steps - low
    if upper_share == 0:
        return {low: 1.0}
    return {low: 1.0 - upper_share, low + 1: upper_share}


def shift(distribution: Mapping[int, float], steps: Mapping[int, float]) -> dict[int, float]:
    """The distribution of upper bounds after applying a step distribution to each."""
    result: dict[int, float] = {}
    for upper_bp, p in distribution.items():
        for step, q in steps.items():
            key = upper_bp + step * STEP_BP
            result[key] = result.get(key, 0.0) + p * q
    return dict(sorted(result.items()))


@dataclass
class _Chain:
    meeting_months: frozenset[Month]
    rates: dict[Month, float]
    late_days: int
    effr: float | None
    previous_end: float | None = None

    def clean_rate(self, month: Month) -> float | None:
        """A no-meeting month's quoted rate: the rate that holds all month."""
        if month in self.meeting_months:
            return None
        return self.rates.get(month)

    def start_rate(self, month: Month) -> float | None:
        before = self.clean_rate(month.prev())
        if before is not None:
            return before
        return self.previous_end if self.previous_end is not None else self.effr

    def meeting(self, day: date) -> tuple[float, float]:
        month = Month.of(day)
        days, days_before = month.days, day.day - 1
        average = self.rates.get(month)
        after = self.clean_rate(month.next())
        start = self.start_rate(month)
        if start is None and after is not None and average is not None:
            start = pre_meeting_rate(average, after, days, days_before)
        if start is None:
            raise FedWatchError(f"no rate before the {day} meeting: quote {month.prev()} or EFFR")
        if after is not None and (average is None or days - days_before < self.late_days):
            return start, after
        if average is None:
            raise FedWatchError(f"no quote for {month} nor a clean {month.next()}")
        return start, post_meeting_rate(average, start, days, days_before)


def fedwatch(
    meetings: Iterable[date],
    quotes: Mapping[Month, float],
    current_upper_bp: int,
    *,
    as_of: date,
    effr: float | None = None,
    late_days: int = DEFAULT_LATE_DAYS,
) -> list[MeetingOdds]:
    """Probabilities per upper bound after each meeting on or after ``as_of``.

    ``meetings`` is the FOMC calendar (decision days; past ones may be included,
    they tell which months are not clean); ``quotes`` maps months to ZQ prices;
    ``current_upper_bp`` is today's target-range upper bound; ``effr`` the
    current EFFR in percent, used when no quote gives the first start rate.
    Stops at the first meeting the quotes do not reach (raises if that is the first).
    """
    calendar_days = sorted(set(meetings))
    chain = _Chain(
        meeting_months=frozenset(Month.of(d) for d in calendar_days),
        rates={month: implied_rate(price) for month, price in quotes.items()},
        late_days=late_days,
        effr=effr,
    )
    distribution: dict[int, float] = {current_upper_bp: 1.0}
    results: list[MeetingOdds] = []
    for day in (d for d in calendar_days if d >= as_of):
        try:
            start, end = chain.meeting(day)
        except FedWatchError:
            if not results:
                raise
            break  # the quotes reach no further; later meetings hang on this one
        expected = (end - start) / STEP_PCT
        distribution = shift(distribution, step_distribution(expected))
        results.append(MeetingOdds(day, start, end, expected, distribution))
        chain.previous_end = end
    return results


def probability_upper_above(upper_bound_bp_probs: Mapping[int, float], threshold_bp: int) -> float:
    """P(upper bound > threshold): the YES probability of ``KXFED-...-T<threshold>``."""
    return sum(p for upper, p in upper_bound_bp_probs.items() if upper > threshold_bp)


def kalshi_threshold_probabilities(
    upper_bound_bp_probs: Mapping[int, float], thresholds_bp: Iterable[int]
) -> dict[int, float]:
    """{threshold bp: P(upper bound > threshold)} for a KXFED ladder."""
    return {k: probability_upper_above(upper_bound_bp_probs, k) for k in thresholds_bp}


def kxfed_threshold_bp(ticker: str) -> int:
    """``KXFED-26SEP-T4.00`` -> 400 (basis points)."""
    match = _KXFED_THRESHOLD.search(ticker)
    if match is None:
        raise FedWatchError(f"{ticker!r} has no -T<rate> threshold")
    whole, _, frac = match.group(1).partition(".")
    if len(frac.rstrip("0")) > 2:
        raise FedWatchError(f"{ticker!r}: threshold finer than a basis point")
    return int(whole) * 100 + int(frac.rstrip("0").ljust(2, "0") or "0")


def kalshi_meeting_code(meeting: date) -> str:
    """The meeting part of Kalshi's Fed tickers: 2026-09-16 -> ``26SEP``."""
    return f"{meeting.year % 100:02d}{_MONTH_CODES[3 * meeting.month - 3 : 3 * meeting.month]}"
