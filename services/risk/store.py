"""What risk keeps in Postgres: decisions, signals, the audit trail, the trading state,
portfolio snapshots; and what it reads back on start (the ledger's fills, open orders).

Every write is idempotent (keyed by signal id, or by id and time), so a batch
retried after a failure changes nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final

import msgspec
from psycopg.types.json import Jsonb

from services.risk.guardian import Decision
from shared.messages import (
    Action,
    ControlCommand,
    Fill,
    Leg,
    OrderEvent,
    OrderIntent,
    OrderStatus,
    PortfolioState,
    Side,
)
from shared.risk import Transition
from shared.store.ledger import load_fills, load_settlements, load_trading_record
from shared.store.pool import Pool
from shared.store.writer import ts_from_ns

OPEN_STATUSES: Final = ("sent", "unknown", "resting", "partial")
ACTOR: Final = "risk"
_intent_codec = msgspec.msgpack.Encoder()
_intent_decoder = msgspec.msgpack.Decoder(OrderIntent)


def _ns(ts: datetime) -> int:
    return int(ts.timestamp() * 1_000_000) * 1000


class RiskStore:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    # --- start ----------------------------------------------------------------------

    async def trading_state(self) -> dict[str, Any] | None:
        return await load_trading_record(self.pool)

    async def fills(self) -> list[Fill]:
        return await load_fills(self.pool)

    async def settlements(self) -> list[tuple[str, bool]]:
        return await load_settlements(self.pool)

    async def open_orders(self) -> list[OrderEvent]:
        query = (
            "SELECT client_order_id, coalesce(order_id, ''), market, side, action, price_micros,"
            " count_centi, filled_centi, status FROM orders WHERE status = ANY(%s)"
        )
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(query, (list(OPEN_STATUSES),))).fetchall()
        return [
            OrderEvent(
                client_order_id=r[0],
                order_id=r[1],
                market=r[2],
                status=OrderStatus(r[8]),
                leg=Leg(market=r[2], side=Side(r[3]), action=Action(r[4]), price=r[5], count=r[6]),
                filled=r[7],
                remaining=r[6] - r[7],
            )
            for r in rows
        ]

    async def recent_decisions(
        self, now_ns: int
    ) -> tuple[list[tuple[str, int]], list[OrderIntent]]:
        """Signals decided and still unexpired: their ids, and the approved ones' intents."""
        query = (
            "SELECT signal_id, expires_at, intent FROM risk_decisions"
            " WHERE expires_at > %s ORDER BY ts"
        )
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(query, (ts_from_ns(now_ns),))).fetchall()
        seen = [(r[0], _ns(r[1])) for r in rows]
        intents = [_intent_decoder.decode(r[2]) for r in rows if r[2] is not None]
        return seen, intents

    async def peak_and_day_start(self, day_start_ns: int) -> tuple[int | None, int | None]:
        """Peak NAV ever snapshotted, and the first NAV of the current day."""
        async with self.pool.connection() as conn:
            peak = await (
                await conn.execute("SELECT max(peak_nav_micros) FROM portfolio_snapshots")
            ).fetchone()
            day = await (
                await conn.execute(
                    "SELECT nav_micros FROM portfolio_snapshots WHERE ts >= %s ORDER BY ts LIMIT 1",
                    (ts_from_ns(day_start_ns),),
                )
            ).fetchone()
        return (peak[0] if peak else None), (day[0] if day else None)

    # --- running ----------------------------------------------------------------------

    async def record_decisions(self, decisions: Sequence[Decision], now_ns: int) -> None:
        if not decisions:
            return
        ts = ts_from_ns(now_ns)
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO risk_decisions (signal_id, ts, approved, reason, detail,"
                " intent_id, intent, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (signal_id) DO NOTHING",
                [_decision_row(d, ts) for d in decisions],
            )
            await cur.executemany(
                "INSERT INTO signals (signal_id, ts, strategy, kind, event, legs, edge_micros,"
                " model_p, kelly_fraction, confidence, ev_micros, aroc, size_centi,"
                " expires_at, reasons, score) VALUES"
                " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (signal_id) DO NOTHING",
                [_signal_row(d, ts) for d in decisions],
            )
            await cur.executemany(
                "INSERT INTO audit_trail (ts, id, actor, action, subject, reason, detail)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [_decision_audit(d, ts) for d in decisions],
            )

    async def record_transitions(
        self, transitions: Iterable[Transition], record: dict[str, Any]
    ) -> None:
        """Audit state changes and save the state machine's record, in one transaction."""
        rows = [
            (
                ts_from_ns(t.ts_ns),
                f"{t.what}:{t.subject}:{t.ts_ns}",
                t.actor,
                t.what,
                t.subject,
                t.reason,
                Jsonb({"before": t.before, "after": t.after}),
            )
            for t in transitions
        ]
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            if rows:
                await cur.executemany(
                    "INSERT INTO audit_trail (ts, id, actor, action, subject, reason, detail)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    rows,
                )
            await cur.execute(
                "INSERT INTO trading_state (id, record, updated_at) VALUES (1, %s, now())"
                " ON CONFLICT (id) DO UPDATE SET record = excluded.record,"
                " updated_at = excluded.updated_at",
                (Jsonb(record),),
            )

    async def record_command(self, command: ControlCommand, now_ns: int) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO audit_trail (ts, id, actor, action, subject, reason, detail)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (
                    ts_from_ns(command.ts_ns or now_ns),
                    f"command:{command.command_id}",
                    command.actor,
                    f"command:{command.command.value}",
                    command.market or "system",
                    command.reason,
                    Jsonb({"value": command.value}),
                ),
            )

    async def snapshot(self, state: PortfolioState) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO portfolio_snapshots (ts, cash_micros, nav_micros, peak_nav_micros,"
                " daily_pnl_micros, drawdown_ppm, trading_state)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (ts) DO NOTHING",
                (
                    ts_from_ns(state.ts_ns),
                    state.cash,
                    state.nav,
                    state.peak_nav,
                    state.daily_pnl,
                    state.drawdown_ppm,
                    state.trading_state.value,
                ),
            )


def _decision_row(d: Decision, ts: datetime) -> tuple[Any, ...]:
    intent = None if d.intent is None else _intent_codec.encode(d.intent)
    return (
        d.signal.signal_id,
        ts,
        d.verdict.approved,
        d.verdict.reason.value,
        d.verdict.detail,
        "" if d.intent is None else d.intent.intent_id,
        intent,
        ts_from_ns(d.signal.expires_ns),
    )


def _signal_row(d: Decision, ts: datetime) -> tuple[Any, ...]:
    s = d.signal
    legs = [msgspec.to_builtins(leg) for leg in s.legs]
    return (
        s.signal_id,
        ts_from_ns(s.hops[-1].ts_ns) if s.hops else ts,
        s.strategy,
        s.kind,
        s.event,
        Jsonb(legs),
        s.edge,
        s.model_p,
        s.kelly_fraction,
        s.confidence,
        s.ev,
        s.aroc,
        max((leg.count for leg in s.legs), default=0),
        ts_from_ns(s.expires_ns),
        list(s.reasons),
        s.score,
    )


def _decision_audit(d: Decision, ts: datetime) -> tuple[Any, ...]:
    detail = {"detail": d.verdict.detail, "intent_id": d.intent.intent_id if d.intent else ""}
    return (
        ts,
        f"decision:{d.signal.signal_id}",
        ACTOR,
        "approve" if d.verdict.approved else "reject",
        d.signal.event,
        d.verdict.reason.value,
        Jsonb(detail),
    )
