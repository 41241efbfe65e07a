"""The common result type and the freshness rule."""

from __future__ import annotations

import pytest

from shared.fairvalue import FairValue
from shared.fairvalue.model import age_s, clamp_probability, freshness


def test_fair_value_checks_its_ranges() -> None:
    fv = FairValue(market="M", p_yes=0.25, confidence=1.0, model="x", inputs="")
    assert fv.p_no == 0.75
    for p, confidence in ((1.1, 0.5), (-0.1, 0.5), (float("nan"), 0.5), (0.5, 1.5)):
        with pytest.raises(ValueError, match="M"):
            FairValue(market="M", p_yes=p, confidence=confidence, model="x", inputs="")


def test_freshness_is_full_then_linear_then_none() -> None:
    assert freshness(0.0, 60, 120) == 1.0
    assert freshness(60.0, 60, 120) == 1.0
    assert freshness(90.0, 60, 120) == pytest.approx(0.5)
    assert freshness(120.0, 60, 120) is None


def test_age_ignores_a_timestamp_from_the_future() -> None:
    assert age_s(5 * 10**9, 2 * 10**9) == 3.0
    assert age_s(2 * 10**9, 5 * 10**9) == 0.0


def test_clamp_probability() -> None:
    assert clamp_probability(-1e-17) == 0.0
    assert clamp_probability(1 + 1e-16) == 1.0
    assert clamp_probability(0.3) == 0.3
