"""What the gateway reads from Postgres: orders, fills, signals, audit, equity, profit.

Money leaves as integer micro-dollars and counts as integer hundredths, in
fields named for their unit; times as ISO 8601 strings (UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from shared.ledger import Ledger
from shared.performance import EquityPoint, max_drawdown
from shared.store.ledger import load_fills, load_settlements
from shared.store.pool import Pool

OPEN_ORDER_STATUSES: Final = ["sent", "unknown", "resting", "partial"]


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).isoformat()


async def _rows(pool: Pool, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    async with pool.connection() as conn:
        return await (await conn.execute(query, params)).fetchall()


async def open_orders(pool: Pool) -> list[dict[str, Any]]:
    rows = await _rows(
        pool,
        "SELECT client_order_id, market, side, action, price_micros, count_centi, filled_centi,"
        " status, route, created_at FROM orders WHERE status = ANY(%s) ORDER BY created_at DESC",
        (OPEN_ORDER_STATUSES,),
    )
    keys = ("client_order_id", "market", "side", "action", "price_micros", "count_centi")
    return [
        {
            **dict(zip(keys, r[:6], strict=True)),
            "filled_centi": r[6],
            "status": r[7],
            "route": r[8],
            "created_at": _iso(r[9]),
        }
        for r in rows
    ]


async def fills(pool: Pool, limit: int) -> list[dict[str, Any]]:
    rows = await _rows(
        pool,
        "SELECT trade_id, ts, market, side, action, price_micros, count_centi, fee_micros,"
        " is_taker, paper FROM fills ORDER BY ts DESC, trade_id LIMIT %s",
        (limit,),
    )
    return [fill_row(r) for r in rows]


def fill_row(r: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "trade_id": r[0],
        "ts": _iso(r[1]),
        "market": r[2],
        "side": r[3],
        "action": r[4],
        "price_micros": r[5],
        "count_centi": r[6],
        "fee_micros": r[7],
        "is_taker": r[8],
        "paper": r[9],
    }


async def signals(pool: Pool, limit: int) -> list[dict[str, Any]]:
    rows = await _rows(
        pool,
        "SELECT s.signal_id, s.ts, s.strategy, s.kind, s.event, s.legs, s.edge_micros,"
        " s.ev_micros, s.model_p, s.confidence, s.kelly_fraction, s.aroc, d.approved, d.reason,"
        " s.score"
        " FROM signals s LEFT JOIN risk_decisions d USING (signal_id)"
        " ORDER BY s.ts DESC LIMIT %s",
        (limit,),
    )
    return [
        {
            "signal_id": r[0],
            "ts": _iso(r[1]),
            "strategy": r[2],
            "kind": r[3],
            "event": r[4],
            "legs": [_leg(leg) for leg in r[5]],
            "edge_micros": r[6],
            "ev_micros": r[7],
            "model_p": r[8],
            "confidence": r[9],
            "kelly_fraction": r[10],
            "aroc": r[11],
            "score": r[14],
            "decision": _decision(r[12], r[13]),
        }
        for r in rows
    ]


def _leg(leg: dict[str, Any]) -> dict[str, Any]:
    return {
        "market": leg["market"],
        "side": leg["side"],
        "action": leg["action"],
        "price_micros": leg["price"],
        "count_centi": leg["count"],
    }


def _decision(approved: bool | None, reason: str | None) -> str:
    if approved is None:
        return "pending"
    return "approved" if approved else f"rejected:{reason}"


async def audit(pool: Pool, limit: int, before: datetime | None) -> dict[str, Any]:
    rows = await _rows(
        pool,
        "SELECT ts, id, actor, action, subject, reason, detail FROM audit_trail"
        " WHERE ts < %s ORDER BY ts DESC, id LIMIT %s",
        (before or datetime.now(UTC) + timedelta(days=1), limit),
    )
    entries = [
        {
            "ts": _iso(r[0]),
            "id": r[1],
            "actor": r[2],
            "action": r[3],
            "subject": r[4],
            "reason": r[5],
            "detail": r[6],
        }
        for r in rows
    ]
    return {"entries": entries, "next": entries[-1]["ts"] if len(entries) == limit else None}


async def equity(pool: Pool, limit: int) -> list[list[int]]:
    rows = await _rows(
        pool,
        "SELECT ts, nav_micros, drawdown_ppm FROM (SELECT * FROM portfolio_snapshots"
        " ORDER BY ts DESC LIMIT %s) AS recent ORDER BY ts",
        (limit,),
    )
    return [[int(r[0].timestamp() * 1_000_000) * 1000, r[1], r[2]] for r in rows]


async def profit(pool: Pool, bankroll: int) -> dict[str, Any]:
    """Totals in the manner of freqtrade's /profit, from the ledger and the snapshots."""
    fills_seen = await load_fills(pool)
    ledger = Ledger.replay(bankroll, fills_seen, await load_settlements(pool))
    points = [EquityPoint(ts, nav) for ts, nav, _ in await equity(pool, 100_000)]
    drawdown = max_drawdown(points) if points else None
    first = min((f.ts_ns for f in fills_seen), default=None)
    last = max((f.ts_ns for f in fills_seen), default=None)
    return {
        "trades": len(fills_seen),
        "realized_pnl_micros": ledger.realized,
        "fees_micros": ledger.fees,
        "net_realized_pnl_micros": ledger.net_realized,
        "cash_micros": ledger.cash,
        "bankroll_micros": bankroll,
        "open_markets": len(ledger.holdings),
        "max_drawdown_micros": drawdown.depth if drawdown else 0,
        "max_drawdown_ppm": drawdown.depth_ppm if drawdown else 0,
        "first_trade_ts_ns": first,
        "latest_trade_ts_ns": last,
    }


async def daily(pool: Pool, days: int) -> list[dict[str, Any]]:
    """Per UTC day: NAV at its last snapshot and its change, fills and fees (freqtrade /daily)."""
    navs = await _rows(
        pool,
        "SELECT date_trunc('day', ts) AS day, (array_agg(nav_micros ORDER BY ts DESC))[1]"
        " FROM portfolio_snapshots WHERE ts >= now() - make_interval(days => %s)"
        " GROUP BY day ORDER BY day",
        (days + 1,),
    )
    trades = await _rows(
        pool,
        "SELECT date_trunc('day', ts) AS day, count(*), coalesce(sum(fee_micros), 0)"
        " FROM fills WHERE ts >= now() - make_interval(days => %s) GROUP BY day",
        (days,),
    )
    by_day = {r[0]: (r[1], r[2]) for r in trades}
    out = []
    previous: int | None = None
    for day, nav in navs:
        count, fees_paid = by_day.get(day, (0, 0))
        out.append(
            {
                "date": day.date().isoformat(),
                "nav_micros": nav,
                "pnl_micros": None if previous is None else nav - previous,
                "trades": count,
                "fees_micros": int(fees_paid),
            }
        )
        previous = nav
    return out[-days:]
