"""Signals built from what the scanner and the models found (pure).

A signal's id is derived from its legs and the versions of the inputs it was
computed from (each book's sequence number, the observation's time), so a
replay of the same data yields the same ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from services.strategy.models import Valuation
from shared.arbitrage import Opportunity
from shared.ids import signal_id
from shared.kelly import KellySize, aroc, days_to_close, roi, score
from shared.messages import Action, Leg, MarketInfo, Side, Signal
from shared.money import ONE_DOLLAR, Micros, format_dollars

ARBITRAGE: Final = "arbitrage"


def arb_signal(
    opportunity: Opportunity, inputs: Sequence[str], bankroll: Micros, now_ns: int, ttl_ns: int
) -> Signal:
    """A riskless set: certain payout, so model p is 1 and the stake is its cost."""
    legs = opportunity.signal_legs()
    kind = opportunity.kind.value
    sets = opportunity.sets // 100
    return Signal(
        signal_id=signal_id(ARBITRAGE, kind, legs, inputs),
        strategy=ARBITRAGE,
        kind=kind,
        event=opportunity.event,
        legs=legs,
        edge=opportunity.edge_per_set,
        model_p=1.0,
        kelly_fraction=opportunity.cost / bankroll,
        confidence=1.0,
        ev=opportunity.edge,
        aroc=aroc(
            opportunity.edge, opportunity.cost, days_to_close(now_ns, opportunity.close_ts_ns)
        ),
        expires_ns=now_ns + ttl_ns,
        reasons=[
            f"{kind}: {sets} set(s) of {len(legs)} legs cost {format_dollars(opportunity.cost, 6)} "
            f"all-in and pay {format_dollars(opportunity.payout, 6)}",
            f"edge {format_dollars(opportunity.edge_per_set, 6)} per set after fees",
        ],
        score=opportunity.score,
        close_ts_ns=opportunity.close_ts_ns,
    )


def model_signal(
    info: MarketInfo,
    valuation: Valuation,
    side: Side,
    size: KellySize,
    inputs: Sequence[str],
    now_ns: int,
    ttl_ns: int,
) -> Signal:
    """Buy ``side`` of one market because a model prices it above its all-in ask."""
    walk = size.walk
    leg = Leg(
        market=info.market, side=side, action=Action.BUY, price=walk.limit_price, count=walk.count
    )
    fair = valuation.fair
    p = fair.p_yes if side is Side.YES else fair.p_no
    return Signal(
        signal_id=signal_id(fair.model, valuation.kind, [leg], [*inputs, valuation.version]),
        strategy=fair.model,
        kind=valuation.kind,
        event=info.event,
        legs=[leg],
        edge=round(size.edge * ONE_DOLLAR),
        model_p=p,
        kelly_fraction=size.kelly_fraction,
        confidence=fair.confidence,
        ev=size.ev,
        aroc=aroc(size.ev, walk.cost, days_to_close(now_ns, info.close_ts_ns)),
        expires_ns=now_ns + ttl_ns,
        reasons=[
            f"{fair.model}: P({side.value})={p:.4f} vs all-in "
            f"{format_dollars(walk.cost * 100 // walk.count, 6)} per contract",
            f"edge {size.edge:.2%} after fees, full kelly {size.full_kelly:.3f}",
            fair.inputs,
        ],
        score=score(roi(size.ev, walk.cost), fair.confidence, walk.count),
        close_ts_ns=info.close_ts_ns,
    )
