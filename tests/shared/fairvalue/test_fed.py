"""Fed markets from FedOdds: thresholds, decision buckets, age, None on bad inputs."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.fairvalue.fed import (
    DECISION_BUCKETS,
    FedModelConfig,
    decision_probability,
    fed_fair_value,
    move_distribution,
)
from shared.fedwatch import shift, step_distribution
from shared.messages import FedOdds

NS = 10**9
NOW = 1_790_000_000 * NS
# After the 2026-09-16 meeting, from an upper bound of 425 bp today
ODDS = FedOdds(
    meeting="2026-09-16",
    upper_bound_bp_probs={375: 0.05, 400: 0.15, 425: 0.5, 450: 0.2, 475: 0.1},
    computed_at_ns=NOW,
)
NOW_425 = {425: 1.0}


def value(ticker: str, odds: FedOdds | None = ODDS, **kwargs: object) -> float | None:
    fv = fed_fair_value(ticker, odds, NOW, **kwargs)  # type: ignore[arg-type]
    return None if fv is None else fv.p_yes


@pytest.mark.parametrize(
    ("ticker", "expected"),
    [
        ("KXFED-26SEP-T3.50", 1.0),  # every outcome is above 350
        ("KXFED-26SEP-T3.75", 0.95),  # 400 + 425 + 450 + 475: 0.15 + 0.5 + 0.2 + 0.1
        ("KXFED-26SEP-T4.25", 0.3),  # strictly above 425: 450 + 475 = 0.2 + 0.1
        ("KXFED-26SEP-T4.40", 0.3),  # 440 bp: still 450 + 475
        ("KXFED-26SEP-T4.75", 0.0),
    ],
)
def test_threshold_markets(ticker: str, expected: float) -> None:
    assert value(ticker) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("code", "expected"),
    [("C26", 0.05), ("C25", 0.15), ("H0", 0.5), ("H25", 0.2), ("H26", 0.1)],
)
def test_decision_buckets_from_the_current_bound(code: str, expected: float) -> None:
    # moves relative to 425: 375 = -50 (C26), 400 = -25, 425 = 0, 450 = +25, 475 = +50 (H26)
    assert value(f"KXFEDDECISION-26SEP-{code}", before_meeting=NOW_425) == pytest.approx(expected)


def test_decision_buckets_of_a_later_meeting_use_the_tree_step() -> None:
    # before: 425 70%, 400 30% (mean 417.5 bp); this meeting: 40% one cut, 60% hold
    before = {400: 0.3, 425: 0.7}
    after = shift(before, step_distribution(-0.4))  # {375: .12, 400: .46, 425: .42}, mean 407.5
    # (407.5 - 417.5) / 25 = -0.4 steps -> C25 0.4, H0 0.6
    assert decision_probability("C25", after, before) == pytest.approx(0.4)
    assert decision_probability("H0", after, before) == pytest.approx(0.6)
    assert decision_probability("C26", after, before) == pytest.approx(0.0)
    assert decision_probability("XX", after, before) is None


def test_confidence_from_the_odds_age() -> None:
    fresh = fed_fair_value("KXFED-26SEP-T4.25", ODDS, NOW)
    assert fresh is not None
    assert fresh.confidence == pytest.approx(0.8)
    assert fresh.model == "fed"
    # 1200 s old: (1800 - 1200) / (1800 - 600) = 0.5 of the base 0.8
    aged = fed_fair_value("KXFED-26SEP-T4.25", ODDS, NOW + 1200 * NS)
    assert aged is not None
    assert aged.confidence == pytest.approx(0.4)
    assert fed_fair_value("KXFED-26SEP-T4.25", ODDS, NOW + 1800 * NS) is None


def bad_odds(probs: dict[int, float], meeting: str = "2026-09-16") -> FedOdds:
    return FedOdds(meeting=meeting, upper_bound_bp_probs=probs, computed_at_ns=NOW)


@pytest.mark.parametrize(
    ("ticker", "odds", "kwargs"),
    [
        ("KXFED-26SEP-T4.25", None, {}),
        ("KXFED-26SEP-T4.25", ODDS, {"feed_fresh": False}),
        ("KXFED-26OCT-T4.25", ODDS, {}),  # another meeting's odds
        ("KXFED-26SEP-T4.25", bad_odds({425: 0.5, 450: 0.4}), {}),  # sums to 0.9
        ("KXFED-26SEP-T4.25", bad_odds({}), {}),
        ("KXFED-26SEP-T4.25", bad_odds({425: 1.0}, meeting="not a date"), {}),
        ("KXFED-26SEP-T4.255", ODDS, {}),  # finer than a basis point
        ("KXFED-26SEP", ODDS, {}),
        ("KXFEDDECISION-26SEP-H0", ODDS, {}),  # no bound before the meeting
        ("KXFEDDECISION-26SEP-H0", ODDS, {"before_meeting": {425: 0.5}}),
        ("KXFEDDECISION-26SEP-Z9", ODDS, {"before_meeting": NOW_425}),
        ("KXCPI-26SEP-T4.25", ODDS, {}),
    ],
)
def test_no_value_without_good_inputs(
    ticker: str, odds: FedOdds | None, kwargs: dict[str, object]
) -> None:
    assert value(ticker, odds, **kwargs) is None


def test_config_rejects_inverted_ages() -> None:
    with pytest.raises(ValueError, match="full_confidence_age_s"):
        FedModelConfig(full_confidence_age_s=2000, stale_after_s=1800)


@settings(max_examples=100, deadline=None)
@given(
    weights=st.lists(st.floats(min_value=0.01, max_value=1.0), min_size=1, max_size=6),
    lowest=st.integers(min_value=0, max_value=20),
    current=st.integers(min_value=0, max_value=25),
)
def test_buckets_are_exhaustive_and_the_ladder_monotone(
    weights: list[float], lowest: int, current: int
) -> None:
    total = sum(weights)
    after = {25 * (lowest + i): w / total for i, w in enumerate(weights)}
    before = {25 * current: 1.0}
    buckets = [decision_probability(code, after, before) or 0.0 for code in DECISION_BUCKETS]
    assert sum(buckets) == pytest.approx(1.0, abs=1e-9)
    moves = move_distribution(after, before)
    assert sum(moves.values()) == pytest.approx(1.0, abs=1e-9)
    odds = FedOdds(meeting="2026-09-16", upper_bound_bp_probs=after, computed_at_ns=NOW)
    ladder = [value(f"KXFED-26SEP-T{bp / 100:.2f}", odds) or 0.0 for bp in range(0, 1000, 25)]
    assert ladder[-1] == 0.0  # 975 bp is above every outcome drawn here
    assert all(a >= b for a, b in itertools.pairwise(ladder))
