"""Execution's records in Postgres: orders, order events, fills, positions, settlements.

The ``orders`` row of a client order id is written (status ``sent``) before the
order leaves for the exchange; a second claim of the same id finds the row and
sends nothing: that is what makes a restart unable to send an order twice. A
fill is written with its position in one transaction, keyed by the exchange's
trade id, so a fill seen twice (the fill stream and a reconciliation) counts
once, and a fill that arrives after a cancel still counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from psycopg import sql
from psycopg.types.json import Jsonb

from services.execution.venue import VenueOrder
from shared.ledger import Ledger
from shared.messages import Action, Fill, Leg, MarketSettled, OrderIntent, OrderStatus, Route, Side
from shared.store.ledger import load_fills, load_settlements, load_trading_record
from shared.store.pool import Pool
from shared.store.writer import ts_from_ns

UNRESOLVED: Final = ("sent", "unknown")
RESTING: Final = ("resting", "partial")


def _ns(ts: datetime) -> int:
    return int(ts.timestamp() * 1_000_000) * 1000


@dataclass(frozen=True, slots=True)
class StoredOrder:
    client_order_id: str
    order_id: str
    leg: Leg
    status: OrderStatus
    filled: int
    route: Route
    created_ns: int


class ExecutionStore:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._ledger_writes = asyncio.Lock()
        """Intents run concurrently; a position row must be written in ledger order,
        or a slower transaction could leave a stale position behind a newer one."""

    async def claim(self, intent: OrderIntent, client_order_id: str, leg: Leg, route: str) -> bool:
        """Write one order before it is sent; False if its client order id exists already."""
        return await self.claim_all(intent, [(client_order_id, leg)], route)

    async def claim_all(
        self, intent: OrderIntent, orders: Sequence[tuple[str, Leg]], route: str
    ) -> bool:
        """Write every order of an intent, all or none; False if any id exists already.

        One statement in autocommit, one round trip: it is on the path from tick to
        order. The CTE inserts nothing when any of the ids is taken.
        """
        values = sql.SQL(", ").join(
            sql.SQL(
                "(%s, %s, %s, %s, %s, %s, %s::bigint, %s::bigint, %s, %s::float8,"
                " %s::bigint, %s::float8)"
            )
            for _ in orders
        )
        params: list[Any] = []
        for coid, leg in orders:
            params += [
                coid,
                intent.intent_id,
                intent.signal_id,
                leg.market,
                leg.side.value,
                leg.action.value,
                leg.price,
                leg.count,
                route,
                intent.kelly_fraction,
                intent.ev,
                intent.aroc,
            ]
        query = sql.SQL(
            "WITH new (client_order_id, intent_id, signal_id, market, side, action,"
            " price_micros, count_centi, route, kelly_fraction, ev_micros, aroc) AS (VALUES {}),"
            " taken AS (SELECT 1 FROM orders JOIN new USING (client_order_id))"
            " INSERT INTO orders (client_order_id, intent_id, signal_id, market, side, action,"
            " price_micros, count_centi, route, status, kelly_fraction, ev_micros, aroc)"
            " SELECT client_order_id, intent_id, signal_id, market, side, action, price_micros,"
            " count_centi, route, 'sent', kelly_fraction, ev_micros, aroc FROM new"
            " WHERE NOT EXISTS (SELECT 1 FROM taken)"
            " ON CONFLICT (client_order_id) DO NOTHING RETURNING client_order_id"
        ).format(values)
        async with self.pool.connection() as conn:
            await conn.set_autocommit(True)
            try:
                inserted = await (await conn.execute(query, params)).fetchall()
            finally:
                await conn.set_autocommit(False)
        return len(inserted) == len(orders)

    async def update(
        self, order: VenueOrder, ts_ns: int, detail: dict[str, Any] | None = None
    ) -> None:
        """The order's latest state, and the event that brought it."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "UPDATE orders SET order_id = coalesce(nullif(%s, ''), order_id), status = %s,"
                " filled_centi = greatest(filled_centi, %s), updated_at = %s"
                " WHERE client_order_id = %s",
                (
                    order.order_id,
                    order.status.value,
                    order.filled,
                    ts_from_ns(ts_ns),
                    order.client_order_id,
                ),
            )
            await conn.execute(
                "INSERT INTO order_events (client_order_id, order_id, status, filled_centi,"
                " remaining_centi, reason, ts, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (
                    order.client_order_id,
                    order.order_id,
                    order.status.value,
                    order.filled,
                    order.remaining,
                    order.reason,
                    ts_from_ns(ts_ns),
                    Jsonb(detail or {}),
                ),
            )

    async def record_fill(self, fill: Fill, ledger: Ledger) -> bool:
        """Write a fill and its market's position; False (nothing changed) if seen before."""
        async with self._ledger_writes, self.pool.connection() as conn, conn.transaction():
            row = await (
                await conn.execute(
                    "INSERT INTO fills (trade_id, order_id, client_order_id, market, side, action,"
                    " price_micros, count_centi, fee_micros, is_taker, ts, paper)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (trade_id) DO NOTHING RETURNING trade_id",
                    (
                        fill.trade_id,
                        fill.order_id,
                        fill.client_order_id,
                        fill.market,
                        fill.side.value,
                        fill.action.value,
                        fill.price,
                        fill.count,
                        fill.fee,
                        fill.is_taker,
                        ts_from_ns(fill.ts_ns),
                        fill.paper,
                    ),
                )
            ).fetchone()
            if row is None:
                return False
            ledger.apply(fill)
            await self._position(conn, ledger, fill.market)
        return True

    async def record_settlement(self, settled: MarketSettled, ledger: Ledger) -> bool:
        async with self._ledger_writes, self.pool.connection() as conn, conn.transaction():
            row = await (
                await conn.execute(
                    "INSERT INTO settlements (market, result, settled_at, paper)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (market) DO NOTHING RETURNING market",
                    (
                        settled.market,
                        settled.result.value,
                        ts_from_ns(settled.ts_ns),
                        settled.paper,
                    ),
                )
            ).fetchone()
            if row is None:
                return False
            ledger.settle(settled.market, settled.result is Side.YES)
            await self._position(conn, ledger, settled.market)
        return True

    @staticmethod
    async def _position(conn: Any, ledger: Ledger, market: str) -> None:
        holding = ledger.holding(market)
        yes = holding.yes.count if holding else 0
        no = holding.no.count if holding else 0
        cost = holding.cost if holding else 0
        await conn.execute(
            "INSERT INTO positions (market, yes_centi, no_centi, cost_micros,"
            " realized_pnl_micros, fees_micros, updated_at) VALUES (%s, %s, %s, %s, %s, %s, now())"
            " ON CONFLICT (market) DO UPDATE SET yes_centi = excluded.yes_centi,"
            " no_centi = excluded.no_centi, cost_micros = excluded.cost_micros,"
            " realized_pnl_micros = excluded.realized_pnl_micros,"
            " fees_micros = excluded.fees_micros, updated_at = now()",
            (market, yes, no, cost, ledger.realized_in(market), ledger.fees_in(market)),
        )

    async def record_episode(self, intent: OrderIntent, ts_ns: int, detail: dict[str, Any]) -> None:
        """A multi-leg execution (fills, unwinds) as one audit record."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO audit_trail (ts, id, actor, action, subject, reason, detail)"
                " VALUES (%s, %s, 'execution', 'episode', %s, %s, %s) ON CONFLICT DO NOTHING",
                (
                    ts_from_ns(ts_ns),
                    f"episode:{intent.intent_id}",
                    intent.event,
                    str(detail.get("outcome", "")),
                    Jsonb(detail),
                ),
            )

    # --- start ----------------------------------------------------------------------

    async def orders(self, statuses: Sequence[str]) -> list[StoredOrder]:
        query = (
            "SELECT client_order_id, coalesce(order_id, ''), market, side, action, price_micros,"
            " count_centi, status, filled_centi, route, created_at FROM orders"
            " WHERE status = ANY(%s) ORDER BY created_at"
        )
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(query, (list(statuses),))).fetchall()
        return [
            StoredOrder(
                client_order_id=r[0],
                order_id=r[1],
                leg=Leg(market=r[2], side=Side(r[3]), action=Action(r[4]), price=r[5], count=r[6]),
                status=OrderStatus(r[7]),
                filled=r[8],
                route=Route(r[9]) if r[9] in Route._value2member_map_ else Route.SNIPER,
                created_ns=_ns(r[10]),
            )
            for r in rows
        ]

    async def fills(self) -> list[Fill]:
        return await load_fills(self.pool)

    async def settlements(self) -> list[tuple[str, bool]]:
        return await load_settlements(self.pool)

    async def trading_record(self) -> dict[str, Any] | None:
        return await load_trading_record(self.pool)
