"""Deterministic ids: same inputs, same id; any input changed, another id."""

from __future__ import annotations

from shared.ids import client_order_id, intent_id, signal_id
from shared.messages import Action, Leg, Side

LEG = Leg(market="KXA-1-T1", side=Side.YES, action=Action.BUY, price=400_000, count=500)


def test_signal_ids_depend_on_every_input_and_on_nothing_else():
    base = signal_id("arbitrage", "ladder", [LEG], ["KXA-1-T1@7"])
    assert base == signal_id("arbitrage", "ladder", [LEG], ["KXA-1-T1@7"])
    other_leg = Leg(market="KXA-1-T1", side=Side.YES, action=Action.BUY, price=410_000, count=500)
    variants = {
        signal_id("weather", "ladder", [LEG], ["KXA-1-T1@7"]),
        signal_id("arbitrage", "atomic_yes", [LEG], ["KXA-1-T1@7"]),
        signal_id("arbitrage", "ladder", [other_leg], ["KXA-1-T1@7"]),
        signal_id("arbitrage", "ladder", [LEG], ["KXA-1-T1@8"]),
    }
    assert base not in variants and len(variants) == 4


def test_client_order_ids_are_per_leg_and_attempt_and_fit_kalshis_field():
    ids = {client_order_id("s1", leg, attempt) for leg in range(3) for attempt in range(2)}
    assert len(ids) == 6
    assert client_order_id("s1", 0) == client_order_id("s1", 0)
    assert all(len(i) == 32 and i.isalnum() for i in ids)
    assert intent_id("s1") != intent_id("s2")
