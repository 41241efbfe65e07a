"""The trading state: ACTIVE, REDUCING or HALTED, from the halts in force.

The system state follows from a set of active halt reasons:

* ``kill``, ``operator_halt`` -- set by an operator; HALTED.
* ``operator_reduce`` -- set by an operator; REDUCING (only exits pass).
* ``daily_loss`` -- the day's loss exceeded ``daily_loss_halt_frac`` of the
  day's starting NAV; HALTED until an operator resumes, even across days.
* ``api_error_rate`` -- more than ``api_error_rate_halt`` of the exchange
  requests in the last ``api_error_window_s`` failed (with at least
  ``api_error_min_requests`` of them); HALTED while it lasts.
* ``feed_stale:<name>`` -- the feed reported itself stale, or was silent
  longer than ``feed_stale_halt_s``; HALTED while it lasts. Feed only the feeds
  whose silence must stop everything (the Kalshi market-data connection).

Any HALTED reason wins over REDUCING. An operator's :meth:`resume` clears
``kill``, the operator halts and ``daily_loss``; the automatic reasons clear
only when their condition clears (:meth:`on_feed`, :meth:`on_api_result`,
:meth:`on_clock`).

Markets halt on their own: while their book is INVALID or STALE (until a VALID
status), or by an operator. Recovery mode is a flag with hysteresis on the
drawdown; the checks do not use it, it tells strategy to size down.

Every change returns :class:`Transition` records for the audit trail. The
operator-set halts, ``daily_loss`` and the operator market halts survive a
restart through :meth:`to_record` / :meth:`from_record`; the automatic ones are
derived again from live conditions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from shared.messages import BookState, Command, ControlCommand, TradingState
from shared.money import Micros
from shared.risk.limits import PPM, RiskLimits, fraction_of, ppm

KILL: Final = "kill"
OPERATOR_HALT: Final = "operator_halt"
OPERATOR_REDUCE: Final = "operator_reduce"
DAILY_LOSS: Final = "daily_loss"
API_ERROR_RATE: Final = "api_error_rate"
FEED_STALE_PREFIX: Final = "feed_stale:"
CLEARED_BY_RESUME: Final = frozenset({KILL, OPERATOR_HALT, OPERATOR_REDUCE, DAILY_LOSS})
"""The halts an operator's resume clears; they are also the ones persisted."""

MARKET_BOOK: Final = "book"
MARKET_OPERATOR: Final = "operator"
SYSTEM_ACTOR: Final = "risk"
"""The actor of automatic transitions."""
RECORD_VERSION: Final = 1
NS_PER_S: Final = 10**9


@dataclass(frozen=True, slots=True)
class Halt:
    """Who set a halt, why, and since when (ns since the epoch)."""

    actor: str
    reason: str
    since_ns: int


@dataclass(frozen=True, slots=True)
class Transition:
    """One change, for the audit trail.

    ``what`` is ``halt`` (subject: the halt reason, before/after ``off``/``on``),
    ``system_state`` (subject ``system``, before/after the TradingState values),
    ``market_halt`` (subject: the market, before/after the comma-joined sources
    halting it, ``book`` and/or ``operator``; empty: trading) or
    ``recovery_mode`` (before/after ``off``/``on``).
    """

    what: str
    subject: str
    before: str
    after: str
    reason: str
    actor: str
    ts_ns: int


def _on_off(flag: bool) -> str:
    return "on" if flag else "off"


class TradingStateMachine:
    """System and market halts, recovery mode, and their transitions."""

    def __init__(self, limits: RiskLimits) -> None:
        self.limits = limits
        self._halts: dict[str, Halt] = {}
        self._market_halts: dict[str, dict[str, Halt]] = {}
        self._recovery = False
        self._feeds: dict[str, tuple[bool, int]] = {}
        self._api_results: deque[tuple[int, bool]] = deque()
        self._api_errors = 0

    # --- reading ---------------------------------------------------------------------------

    @property
    def system_state(self) -> TradingState:
        if any(reason != OPERATOR_REDUCE for reason in self._halts):
            return TradingState.HALTED
        if self._halts:
            return TradingState.REDUCING
        return TradingState.ACTIVE

    @property
    def reasons(self) -> frozenset[str]:
        """The halt reasons in force (see the module docstring)."""
        return frozenset(self._halts)

    @property
    def halts(self) -> Mapping[str, Halt]:
        return MappingProxyType(self._halts)

    @property
    def halted_markets(self) -> frozenset[str]:
        return frozenset(self._market_halts)

    def market_halts(self, market: str) -> Mapping[str, Halt]:
        """Why a market is halted: by source (``book``, ``operator``); empty if trading."""
        return MappingProxyType(self._market_halts.get(market, {}))

    def market_halted(self, market: str) -> bool:
        return market in self._market_halts

    @property
    def recovery_mode(self) -> bool:
        return self._recovery

    # --- operators -------------------------------------------------------------------------

    def kill(self, actor: str, now_ns: int, reason: str = "") -> list[Transition]:
        """The kill switch: HALTED until an operator resumes (survives restarts)."""
        return self._set(KILL, True, actor, reason, now_ns)

    def halt(self, actor: str, now_ns: int, reason: str = "") -> list[Transition]:
        return self._set(OPERATOR_HALT, True, actor, reason, now_ns)

    def reduce(self, actor: str, now_ns: int, reason: str = "") -> list[Transition]:
        """REDUCING: only orders that sell what is held pass."""
        return self._set(OPERATOR_REDUCE, True, actor, reason, now_ns)

    def resume(self, actor: str, now_ns: int, reason: str = "") -> list[Transition]:
        """Clear the kill, the operator halts and ``daily_loss``; automatic halts stay."""
        transitions: list[Transition] = []
        for key in sorted(CLEARED_BY_RESUME & self._halts.keys()):
            transitions += self._set(key, False, actor, reason, now_ns)
        return transitions

    def halt_market(
        self, market: str, actor: str, now_ns: int, reason: str = ""
    ) -> list[Transition]:
        return self._set_market(market, MARKET_OPERATOR, True, actor, reason, now_ns)

    def resume_market(
        self, market: str, actor: str, now_ns: int, reason: str = ""
    ) -> list[Transition]:
        """Clear an operator's halt of a market; a halt by its book stays."""
        return self._set_market(market, MARKET_OPERATOR, False, actor, reason, now_ns)

    def on_command(self, command: ControlCommand, now_ns: int) -> list[Transition]:
        """Apply an operator's ControlCommand; SET_MODE is not ours and changes nothing.

        With a market, HALT and REDUCE halt that market and RESUME resumes it;
        KILL always stops the whole system.
        """
        actor, reason, market = command.actor, command.reason, command.market
        match command.command:
            case Command.KILL:
                return self.kill(actor, now_ns, reason)
            case Command.HALT | Command.REDUCE if market:
                return self.halt_market(market, actor, now_ns, reason)
            case Command.HALT:
                return self.halt(actor, now_ns, reason)
            case Command.REDUCE:
                return self.reduce(actor, now_ns, reason)
            case Command.RESUME if market:
                return self.resume_market(market, actor, now_ns, reason)
            case Command.RESUME:
                return self.resume(actor, now_ns, reason)
        return []

    # --- automatic conditions --------------------------------------------------------------

    def on_feed(
        self, name: str, fresh: bool, last_message_ns: int, now_ns: int
    ) -> list[Transition]:
        """A feed's status: stale if it says so or was silent over ``feed_stale_halt_s``."""
        self._feeds[name] = (fresh, last_message_ns)
        return self._judge_feed(name, now_ns)

    def on_api_result(self, ok: bool, now_ns: int) -> list[Transition]:
        """One exchange request's outcome (ok: answered without error)."""
        self._api_results.append((now_ns, ok))
        self._api_errors += not ok
        return self._judge_api(now_ns)

    def on_clock(self, now_ns: int) -> list[Transition]:
        """Re-judge what ages with time alone (feed silence, the API window); call each second."""
        transitions = self._judge_api(now_ns)
        for name in sorted(self._feeds):
            transitions += self._judge_feed(name, now_ns)
        return transitions

    def on_daily_pnl(
        self, daily_pnl: Micros, day_start_nav: Micros, now_ns: int
    ) -> list[Transition]:
        """HALT (until an operator resumes) once the loss exceeds the limit of day-start NAV."""
        limit = fraction_of(max(day_start_nav, 0), self.limits.daily_loss_halt_frac)
        if -daily_pnl <= limit:
            return []
        reason = f"daily loss {-daily_pnl} > {limit} micros"
        return self._set(DAILY_LOSS, True, SYSTEM_ACTOR, reason, now_ns)

    def on_book_status(
        self, market: str, state: BookState, now_ns: int, reason: str = ""
    ) -> list[Transition]:
        """An INVALID or STALE book halts its market until a VALID status."""
        halted = state is not BookState.VALID
        why = reason or f"book {state.value}"
        return self._set_market(market, MARKET_BOOK, halted, SYSTEM_ACTOR, why, now_ns)

    def on_drawdown(self, drawdown_ppm: int, now_ns: int) -> list[Transition]:
        """Recovery mode: on at >= recovery_drawdown_frac, off below recovery_exit_drawdown_frac."""
        if self._recovery:
            recovery = drawdown_ppm >= ppm(self.limits.recovery_exit_drawdown_frac)
        else:
            recovery = drawdown_ppm >= ppm(self.limits.recovery_drawdown_frac)
        if recovery == self._recovery:
            return []
        self._recovery = recovery
        reason = f"drawdown {drawdown_ppm / (PPM / 100):.2f}%"
        return [
            Transition(
                "recovery_mode",
                "system",
                _on_off(not recovery),
                _on_off(recovery),
                reason,
                SYSTEM_ACTOR,
                now_ns,
            )
        ]

    def _judge_feed(self, name: str, now_ns: int) -> list[Transition]:
        fresh, last_ns = self._feeds[name]
        silent_ns = now_ns - last_ns
        stale = not fresh or silent_ns > round(self.limits.feed_stale_halt_s * NS_PER_S)
        reason = "reported stale" if not fresh else f"silent {silent_ns / NS_PER_S:.1f}s"
        return self._set(FEED_STALE_PREFIX + name, stale, SYSTEM_ACTOR, reason, now_ns)

    def _judge_api(self, now_ns: int) -> list[Transition]:
        horizon = now_ns - round(self.limits.api_error_window_s * NS_PER_S)
        results = self._api_results
        while results and results[0][0] <= horizon:
            self._api_errors -= not results.popleft()[1]
        total, errors = len(results), self._api_errors
        breached = (
            total >= self.limits.api_error_min_requests
            and errors * PPM > ppm(self.limits.api_error_rate_halt) * total
        )
        reason = f"{errors} errors in {total} requests"
        return self._set(API_ERROR_RATE, breached, SYSTEM_ACTOR, reason, now_ns)

    # --- changes ---------------------------------------------------------------------------

    def _set(self, key: str, on: bool, actor: str, reason: str, now_ns: int) -> list[Transition]:
        if (key in self._halts) == on:
            return []
        before = self.system_state
        if on:
            self._halts[key] = Halt(actor, reason, now_ns)
        else:
            del self._halts[key]
        transitions = [Transition("halt", key, _on_off(not on), _on_off(on), reason, actor, now_ns)]
        after = self.system_state
        if after != before:
            transitions.append(
                Transition("system_state", "system", before, after, reason, actor, now_ns)
            )
        return transitions

    def _set_market(
        self, market: str, source: str, on: bool, actor: str, reason: str, now_ns: int
    ) -> list[Transition]:
        sources = self._market_halts.get(market, {})
        if (source in sources) == on:
            return []
        before = ",".join(sorted(sources))
        sources = dict(sources)
        if on:
            sources[source] = Halt(actor, reason, now_ns)
        else:
            del sources[source]
        if sources:
            self._market_halts[market] = sources
        else:
            self._market_halts.pop(market, None)
        after = ",".join(sorted(sources))
        return [Transition("market_halt", market, before, after, reason, actor, now_ns)]

    # --- persistence -----------------------------------------------------------------------

    def to_record(self) -> dict[str, Any]:
        """What must survive a restart, as plain JSON-able data.

        The halts an operator must clear (kill, operator halt/reduce,
        daily_loss), the operators' market halts and the recovery flag.
        """
        return {
            "version": RECORD_VERSION,
            "halts": {
                key: _halt_record(halt)
                for key, halt in self._halts.items()
                if key in CLEARED_BY_RESUME
            },
            "market_halts": {
                market: _halt_record(sources[MARKET_OPERATOR])
                for market, sources in self._market_halts.items()
                if MARKET_OPERATOR in sources
            },
            "recovery_mode": self._recovery,
        }

    @classmethod
    def from_record(cls, limits: RiskLimits, record: Mapping[str, Any]) -> TradingStateMachine:
        """A machine restored from :meth:`to_record`; a restored kill stays in force.

        Raises ValueError for a record of another version or with unknown halts.
        """
        if record.get("version") != RECORD_VERSION:
            raise ValueError(f"trading state record version {record.get('version')!r} unknown")
        machine = cls(limits)
        for key, halt in _mapping(record, "halts").items():
            if key not in CLEARED_BY_RESUME:
                raise ValueError(f"trading state record: unknown halt {key!r}")
            machine._halts[key] = _halt_from(halt)
        for market, halt in _mapping(record, "market_halts").items():
            machine._market_halts[str(market)] = {MARKET_OPERATOR: _halt_from(halt)}
        machine._recovery = bool(record.get("recovery_mode", False))
        return machine


def _halt_record(halt: Halt) -> dict[str, Any]:
    return {"actor": halt.actor, "reason": halt.reason, "since_ns": halt.since_ns}


def _mapping(record: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = record.get(key, {})
    if not isinstance(value, Mapping):
        raise ValueError(f"trading state record: {key} is not a mapping")
    return value


def _halt_from(record: Any) -> Halt:
    try:
        return Halt(str(record["actor"]), str(record.get("reason", "")), int(record["since_ns"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"trading state record: bad halt {record!r}") from exc
