"""Fair value of Kalshi's Fed markets from the ingest's FedWatch odds (``FedOdds``).

* ``KXFED-<YYMMM>-T<rate>``: YES iff the target-range upper bound after the
  meeting is strictly above ``rate`` (protocols.md 4.5), i.e. the sum of the
  probabilities of the upper bounds above it.
* ``KXFEDDECISION-<YYMMM>-<code>``: the meeting's move relative to the upper
  bound before it: ``H0`` hold, ``C25`` cut 25 bp, ``C26`` cut more than 25 bp,
  ``H25`` hike 25 bp, ``H26`` hike more than 25 bp. These meanings are inferred
  from public bots (UNCERTAIN in protocols.md 4.5); check a market's rules
  text before trading it.

A decision bucket needs the distribution of the upper bound before the meeting:
``{current upper bound: 1.0}`` for the next meeting, the previous meeting's
``FedOdds`` for later ones. From a single known bound the move distribution is
read off directly; from a spread of bounds it is the FedWatch tree's own step
distribution, recovered from the change of the expected upper bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import date
from typing import Final, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.fairvalue.model import FairValue, age_s, clamp_probability, freshness
from shared.fedwatch import (
    STEP_BP,
    FedWatchError,
    kalshi_meeting_code,
    kxfed_threshold_bp,
    probability_upper_above,
    step_distribution,
)
from shared.messages import FedOdds

MODEL: Final = "fed"
THRESHOLD_SERIES: Final = frozenset({"KXFED", "FED"})
DECISION_SERIES: Final = "KXFEDDECISION"
DECISION_BUCKETS: Final[Mapping[str, Callable[[int], bool]]] = {
    "H0": lambda move_bp: move_bp == 0,
    "C25": lambda move_bp: move_bp == -25,
    "C26": lambda move_bp: move_bp < -25,
    "H25": lambda move_bp: move_bp == 25,
    "H26": lambda move_bp: move_bp > 25,
}


class FedModelConfig(BaseModel):
    """Trust in the FedWatch odds: futures carry a term premium and EFFR != the target."""

    model_config = ConfigDict(frozen=True)

    base_confidence: float = Field(0.8, ge=0, le=1, description="confidence of fresh odds")
    full_confidence_age_s: float = Field(
        600, ge=0, description="odds this old keep full confidence (polled every 300 s)"
    )
    stale_after_s: float = Field(1800, gt=0, description="older odds: no value")
    sum_tolerance: float = Field(1e-6, gt=0, description="odds must sum to 1 within this")

    @model_validator(mode="after")
    def _ages_ordered(self) -> Self:
        if self.full_confidence_age_s >= self.stale_after_s:
            raise ValueError("full_confidence_age_s must be below stale_after_s")
        return self


DEFAULT_FED_CONFIG: Final = FedModelConfig()


def _is_distribution(probs: Mapping[int, float], tolerance: float) -> bool:
    if not probs or any(not 0.0 <= p <= 1.0 for p in probs.values()):
        return False
    return abs(math.fsum(probs.values()) - 1.0) <= tolerance


def _mean(probs: Mapping[int, float]) -> float:
    return math.fsum(bound * p for bound, p in probs.items())


def move_distribution(after: Mapping[int, float], before: Mapping[int, float]) -> dict[int, float]:
    """{move in bp: probability} of one meeting, from the upper bounds before and after it."""
    if len(before) == 1:
        (start_bp,) = before
        return {bound - start_bp: p for bound, p in after.items()}
    steps = step_distribution((_mean(after) - _mean(before)) / STEP_BP)
    return {step * STEP_BP: p for step, p in steps.items()}


def decision_probability(
    code: str, after: Mapping[int, float], before: Mapping[int, float]
) -> float | None:
    """P(YES) of a ``KXFEDDECISION`` bucket; None for a code we do not know."""
    bucket = DECISION_BUCKETS.get(code)
    if bucket is None:
        return None
    moves = move_distribution(after, before)
    return clamp_probability(math.fsum(p for move, p in moves.items() if bucket(move)))


def _ticker_parts(ticker: str) -> tuple[str, str, str] | None:
    parts = ticker.split("-")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def _meeting_code(meeting: str) -> str | None:
    try:
        return kalshi_meeting_code(date.fromisoformat(meeting))
    except ValueError:
        return None


def _probability(
    ticker: str, series: str, outcome: str, odds: FedOdds, before: Mapping[int, float] | None
) -> float | None:
    if series in THRESHOLD_SERIES:
        try:
            threshold_bp = kxfed_threshold_bp(ticker)
        except FedWatchError:
            return None
        return clamp_probability(probability_upper_above(odds.upper_bound_bp_probs, threshold_bp))
    if series == DECISION_SERIES and before is not None:
        return decision_probability(outcome, odds.upper_bound_bp_probs, before)
    return None


def fed_fair_value(
    ticker: str,
    odds: FedOdds | None,
    now_ns: int,
    config: FedModelConfig = DEFAULT_FED_CONFIG,
    *,
    before_meeting: Mapping[int, float] | None = None,
    feed_fresh: bool = True,
) -> FairValue | None:
    """P(YES) of a KXFED threshold or KXFEDDECISION bucket market, or None.

    None when the odds are missing, stale, not a distribution, or of another
    meeting than the ticker's; for a decision bucket also without
    ``before_meeting`` (the upper-bound distribution before the meeting).
    """
    parts = _ticker_parts(ticker)
    if odds is None or parts is None or not feed_fresh:
        return None
    series, meeting_code, outcome = parts
    fresh = freshness(
        age_s(now_ns, odds.computed_at_ns), config.full_confidence_age_s, config.stale_after_s
    )
    valid = _is_distribution(odds.upper_bound_bp_probs, config.sum_tolerance)
    if fresh is None or not valid or _meeting_code(odds.meeting) != meeting_code:
        return None
    if before_meeting is not None and not _is_distribution(before_meeting, config.sum_tolerance):
        return None
    p = _probability(ticker, series, outcome, odds, before_meeting)
    if p is None:
        return None
    return FairValue(
        market=ticker,
        p_yes=p,
        confidence=config.base_confidence * fresh,
        model=MODEL,
        inputs=f"meeting={odds.meeting} odds={dict(sorted(odds.upper_bound_bp_probs.items()))}",
    )
