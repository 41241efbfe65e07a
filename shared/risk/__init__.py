"""The risk guardian's pure domain: limits, portfolio view, trading state and checks.

No I/O: ``services/risk`` feeds these with bus messages and persists what they
return. Money is integer micro-dollars, counts integer hundredths of a contract.
"""

from shared.risk.checks import (
    APPROVED,
    CHECK_ORDER,
    CheckContext,
    TokenBucket,
    Verdict,
    check,
    crosses,
    usd,
)
from shared.risk.limits import DEFAULT_LIMITS, PPM, RiskLimits, fraction_of, ppm
from shared.risk.portfolio import (
    PortfolioView,
    correlation_group,
    day_start_ns,
    mark_from_book,
    weather_station,
)
from shared.risk.reasons import Reason
from shared.risk.trading_state import Halt, TradingStateMachine, Transition

__all__ = [
    "APPROVED",
    "CHECK_ORDER",
    "DEFAULT_LIMITS",
    "PPM",
    "CheckContext",
    "Halt",
    "PortfolioView",
    "Reason",
    "RiskLimits",
    "TokenBucket",
    "TradingStateMachine",
    "Transition",
    "Verdict",
    "check",
    "correlation_group",
    "crosses",
    "day_start_ns",
    "fraction_of",
    "mark_from_book",
    "ppm",
    "usd",
    "weather_station",
]
