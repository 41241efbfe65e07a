"""The trading state machine: halts, their clearing, market halts, recovery, persistence."""

from __future__ import annotations

import json

import pytest

from shared.messages import BookState, Command, ControlCommand, TradingState
from shared.money import dollars
from shared.risk import DEFAULT_LIMITS, TradingStateMachine, Transition
from shared.risk.trading_state import (
    API_ERROR_RATE,
    DAILY_LOSS,
    KILL,
    OPERATOR_HALT,
    OPERATOR_REDUCE,
)

NOW = 1_764_950_400 * 10**9
SECOND = 10**9
MARKET = "KXHIGHNY-25DEC05-T37"
ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


def machine() -> TradingStateMachine:
    return TradingStateMachine(DEFAULT_LIMITS)


def test_starts_active() -> None:
    sm = machine()
    assert sm.system_state is ACTIVE
    assert sm.reasons == frozenset()
    assert not sm.halted_markets
    assert not sm.recovery_mode


def test_kill_and_resume_with_transitions() -> None:
    sm = machine()
    assert sm.kill("alice", NOW, "fat finger") == [
        Transition("halt", KILL, "off", "on", "fat finger", "alice", NOW),
        Transition("system_state", "system", ACTIVE, HALTED, "fat finger", "alice", NOW),
    ]
    assert sm.system_state is HALTED
    assert sm.halts[KILL].actor == "alice"
    assert sm.kill("bob", NOW + 1) == []
    assert sm.resume("bob", NOW + 2) == [
        Transition("halt", KILL, "on", "off", "", "bob", NOW + 2),
        Transition("system_state", "system", HALTED, ACTIVE, "", "bob", NOW + 2),
    ]
    assert sm.system_state is ACTIVE


def test_reduce_is_weaker_than_halt() -> None:
    sm = machine()
    sm.reduce("op", NOW)
    assert sm.system_state is REDUCING
    transitions = sm.halt("op", NOW)
    assert transitions[-1] == Transition("system_state", "system", REDUCING, HALTED, "", "op", NOW)
    assert sm.reasons == {OPERATOR_HALT, OPERATOR_REDUCE}
    sm.resume("op", NOW)
    assert sm.system_state is ACTIVE


def test_resume_leaves_automatic_halts() -> None:
    sm = machine()
    sm.kill("op", NOW)
    sm.on_feed("kalshi", False, NOW, NOW)
    sm.resume("op", NOW)
    assert sm.system_state is HALTED
    assert sm.reasons == {"feed_stale:kalshi"}
    sm.on_feed("kalshi", True, NOW + SECOND, NOW + SECOND)
    assert sm.system_state is ACTIVE


def test_feed_silence_at_the_limit() -> None:
    sm = machine()
    assert sm.on_feed("kalshi", True, NOW, NOW + 5 * SECOND) == []
    transitions = sm.on_clock(NOW + 5 * SECOND + 1)
    assert [t.what for t in transitions] == ["halt", "system_state"]
    assert transitions[0].subject == "feed_stale:kalshi"
    assert sm.system_state is HALTED
    sm.on_feed("kalshi", True, NOW + 6 * SECOND, NOW + 6 * SECOND)
    assert sm.system_state is ACTIVE


def test_api_error_rate_at_the_limit() -> None:
    sm = machine()
    for i in range(95):
        sm.on_api_result(True, NOW + i)
    for i in range(5):
        assert sm.on_api_result(False, NOW + 100 + i) == []  # 5 of 100: exactly 5%
    assert sm.system_state is ACTIVE
    sm.on_api_result(False, NOW + 200)  # 6 of 101
    assert sm.reasons == {API_ERROR_RATE}
    for i in range(20):
        sm.on_api_result(True, NOW + 300 + i)  # 6 of 121 <= 5%
    assert sm.system_state is ACTIVE


def test_api_error_rate_needs_enough_requests_and_slides() -> None:
    sm = machine()
    for i in range(19):
        sm.on_api_result(False, NOW + i)
    assert sm.system_state is ACTIVE
    sm.on_api_result(False, NOW + 19)
    assert sm.system_state is HALTED
    assert sm.on_clock(NOW + 60 * SECOND - 1) == []
    transitions = sm.on_clock(NOW + 60 * SECOND)  # the first result is 60 s old: gone
    assert [(t.subject, t.after) for t in transitions] == [
        (API_ERROR_RATE, "off"),
        ("system", ACTIVE),
    ]
    assert transitions[0].reason == "19 errors in 19 requests"  # too few to judge
    assert sm.reasons == frozenset()


def test_daily_loss_at_the_limit_needs_an_operator() -> None:
    sm = machine()
    assert sm.on_daily_pnl(-dollars(1_000), dollars(10_000), NOW) == []
    sm.on_daily_pnl(-dollars(1_000) - 1, dollars(10_000), NOW)
    assert sm.reasons == {DAILY_LOSS}
    assert sm.on_daily_pnl(0, dollars(10_000), NOW + 1) == []
    assert sm.system_state is HALTED
    sm.resume("op", NOW + 2)
    assert sm.system_state is ACTIVE


def test_book_status_halts_a_market_until_valid() -> None:
    sm = machine()
    transitions = sm.on_book_status(MARKET, BookState.INVALID, NOW, "gap")
    assert transitions == [Transition("market_halt", MARKET, "", "book", "gap", "risk", NOW)]
    assert sm.halted_markets == {MARKET}
    assert sm.on_book_status(MARKET, BookState.STALE, NOW) == []
    sm.halt_market(MARKET, "op", NOW)
    sm.on_book_status(MARKET, BookState.VALID, NOW)
    assert sm.market_halted(MARKET)
    assert set(sm.market_halts(MARKET)) == {"operator"}
    sm.resume("op", NOW)
    assert sm.market_halted(MARKET)
    sm.resume_market(MARKET, "op", NOW)
    assert not sm.halted_markets
    assert sm.system_state is ACTIVE


def test_recovery_mode_hysteresis() -> None:
    sm = machine()
    assert sm.on_drawdown(49_999, NOW) == []
    transitions = sm.on_drawdown(50_000, NOW)
    assert [(t.what, t.before, t.after) for t in transitions] == [("recovery_mode", "off", "on")]
    assert sm.recovery_mode
    assert sm.on_drawdown(20_000, NOW) == []
    assert sm.recovery_mode
    sm.on_drawdown(19_999, NOW)
    assert not sm.recovery_mode
    assert sm.system_state is ACTIVE


def test_record_keeps_the_sticky_halts_only() -> None:
    sm = machine()
    sm.kill("alice", NOW, "why not")
    sm.reduce("bob", NOW)
    sm.on_daily_pnl(-dollars(2_000), dollars(10_000), NOW)
    sm.on_feed("kalshi", False, NOW, NOW)
    sm.on_book_status(MARKET, BookState.INVALID, NOW)
    sm.halt_market("KXFED-26JAN-T4.00", "carol", NOW, "FOMC")
    sm.on_drawdown(60_000, NOW)
    record = json.loads(json.dumps(sm.to_record()))
    restored = TradingStateMachine.from_record(DEFAULT_LIMITS, record)
    assert restored.reasons == {KILL, OPERATOR_REDUCE, DAILY_LOSS}
    assert restored.halts[KILL].actor == "alice"
    assert restored.system_state is HALTED
    assert restored.halted_markets == {"KXFED-26JAN-T4.00"}
    assert restored.recovery_mode
    restored.resume("alice", NOW + 1)
    assert restored.system_state is ACTIVE


@pytest.mark.parametrize(
    "record",
    [
        {"version": 99},
        {"version": 1, "halts": {"feed_stale:kalshi": {"actor": "x", "since_ns": 0}}},
        {"version": 1, "halts": {"kill": {"reason": "no actor"}}},
        {"version": 1, "market_halts": {MARKET: "yes"}},
        {"version": 1, "halts": ["kill"]},
    ],
)
def test_bad_records_raise(record: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="trading state record"):
        TradingStateMachine.from_record(DEFAULT_LIMITS, record)


def command(kind: Command, market: str = "") -> ControlCommand:
    return ControlCommand(command_id="x", command=kind, actor="op", market=market)


def test_control_commands() -> None:
    sm = machine()
    sm.on_command(command(Command.REDUCE), NOW)
    assert sm.system_state is REDUCING
    sm.on_command(command(Command.HALT, MARKET), NOW)
    assert sm.halted_markets == {MARKET}
    sm.on_command(command(Command.KILL, MARKET), NOW)
    assert KILL in sm.reasons
    sm.on_command(command(Command.RESUME, MARKET), NOW)
    assert not sm.halted_markets
    assert sm.system_state is HALTED
    assert sm.on_command(command(Command.SET_MODE), NOW) == []
    sm.on_command(command(Command.RESUME), NOW)
    assert sm.system_state is ACTIVE
