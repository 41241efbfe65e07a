"""The ledger's truth as Postgres keeps it: fills, settlements, and risk's trading state.

Execution writes these; risk, execution and the report read them back to rebuild
a :class:`shared.ledger.Ledger` (``Ledger.replay(bankroll, fills, settlements)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from shared.messages import Action, Fill, Side
from shared.store.pool import Pool


def _ns(ts: datetime) -> int:
    return int(ts.timestamp() * 1_000_000) * 1000


async def load_trading_record(pool: Pool) -> dict[str, Any] | None:
    """Risk's persisted trading state (halts, kill), or None before the first."""
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT record FROM trading_state")).fetchone()
    return None if row is None else dict(row[0])


FILL_COLUMNS: Final = (
    "trade_id, order_id, client_order_id, market, side, action, price_micros,"
    " count_centi, fee_micros, is_taker, ts, paper"
)
"""The columns :func:`fill_from_row` reads, in its order."""


def fill_from_row(r: Sequence[Any]) -> Fill:
    return Fill(
        trade_id=r[0],
        order_id=r[1],
        client_order_id=r[2],
        market=r[3],
        side=Side(r[4]),
        action=Action(r[5]),
        price=r[6],
        count=r[7],
        fee=r[8],
        is_taker=r[9],
        ts_ns=_ns(r[10]),
        paper=r[11],
    )


async def load_fills(pool: Pool) -> list[Fill]:
    query = f"SELECT {FILL_COLUMNS} FROM fills ORDER BY ts, trade_id"
    async with pool.connection() as conn:
        rows = await (await conn.execute(query)).fetchall()
    return [fill_from_row(r) for r in rows]


async def load_settlements(pool: Pool) -> list[tuple[str, bool]]:
    query = "SELECT market, result FROM settlements ORDER BY settled_at, market"
    async with pool.connection() as conn:
        rows = await (await conn.execute(query)).fetchall()
    return [(r[0], r[1] == "yes") for r in rows]
