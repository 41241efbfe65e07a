"""What a replay writes: report.json, trades.csv, signals.csv (and the plots, see plots.py).

Figures follow the execution report's definitions (services/execution/report.py):

* **P&L** is NAV at the end minus the bankroll: realized and marked, after fees.
  Positions still held at the end are settled where the data settled them, or
  where the market had decided (a last mark at 99 cents or more is a YES, at 1
  cent or less a NO: ``settled_from_last_marks``); the rest are marked at the
  mid of their last trusted book (risk's marks).
* **Trades** (for the win rate) are events closed out: nothing of the event
  held at the end (sold, or settled); a win makes money net of fees over all
  its markets, so an arbitrage set is one trade, not one per leg. **Fills**
  count executions.
* **Turnover** is price x count of every fill; **fees** what the fills paid.
* **Sharpe, Sortino, Calmar, max drawdown** come from the NAV curve (sampled
  every ``equity_interval`` and at every fill), on hourly returns annualized
  over 8,760 hours, or daily returns over 365 days when the replay spans 30
  days or more (``period`` in the report says which).
* **Per strategy**: each strategy's fills in a ledger of its own, starting from
  the whole bankroll, so its figures read as if it had traded alone.

Money stays integer micro-dollars (``*_micros``) and counts hundredths of a
contract (``*_centi``); the CSVs' ``edge_cents`` and leg prices are exact
decimal cents. Nothing in these files depends on the wall clock, so the same
replay writes the same bytes.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from services.backtest.replay import TOTAL, FillRecord, Results, SignalRecord
from shared.kelly import NS_PER_DAY
from shared.ledger import Ledger
from shared.messages import Leg
from shared.money import COUNT_PER_CONTRACT, Count, Micros, notional
from shared.performance import DAYS_PER_YEAR, EquityPoint, build_report, report_to_dict
from shared.risk.portfolio import event_from_ticker

NS_PER_HOUR: Final = NS_PER_DAY // 24
DAILY_FROM_NS: Final = 30 * NS_PER_DAY
MICROS_PER_CENT: Final = 10_000
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

SIGNAL_COLUMNS: Final = (
    "ts",
    "kind",
    "event_ticker",
    "legs",
    "edge_cents",
    "size",
    "strategy",
    "signal_id",
    "ev_micros",
    "approved",
    "reason",
)
TRADE_COLUMNS: Final = (
    "ts",
    "trade_id",
    "strategy",
    "signal_id",
    "route",
    "client_order_id",
    "market",
    "side",
    "action",
    "price_micros",
    "count_centi",
    "fee_micros",
    "is_taker",
)


@dataclass(frozen=True, slots=True)
class Period:
    name: str
    ns: int
    per_year: int


def period_of(span_ns: int) -> Period:
    if span_ns >= DAILY_FROM_NS:
        return Period("day", NS_PER_DAY, DAYS_PER_YEAR)
    return Period("hour", NS_PER_HOUR, DAYS_PER_YEAR * 24)


def iso(ts_ns: int) -> str:
    """ISO 8601 in UTC with microseconds, from ns since the epoch (exact, no float)."""
    return (EPOCH + timedelta(microseconds=ts_ns // 1000)).isoformat()


def cents_text(micros: Micros) -> str:
    """Exact decimal cents: 450_000 -> "45", 455_000 -> "45.5", -12_345 -> "-1.2345"."""
    sign = "-" if micros < 0 else ""
    whole, rest = divmod(abs(micros), MICROS_PER_CENT)
    if rest == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{rest:04d}".rstrip("0")


def contracts_text(count: Count) -> str:
    """Exact contracts: 1000 hundredths -> "10", 1050 -> "10.5"."""
    whole, rest = divmod(count, COUNT_PER_CONTRACT)
    return str(whole) if rest == 0 else f"{whole}.{rest:02d}".rstrip("0")


def legs_text(legs: Sequence[Leg]) -> str:
    return ";".join(f"{leg.market}:{leg.side.value}:{cents_text(leg.price)}" for leg in legs)


# --- the figures -------------------------------------------------------------------------


def closed_pnls(ledger: Ledger, fills: Sequence[FillRecord]) -> list[Micros]:
    """Net P&L of every event traded and no longer held, in event order."""
    by_event: dict[str, set[str]] = {}
    for record in fills:
        by_event.setdefault(event_from_ticker(record.fill.market), set()).add(record.fill.market)
    return [
        sum(ledger.realized_in(m) - ledger.fees_in(m) for m in markets)
        for _, markets in sorted(by_event.items())
        if all(ledger.holding(m) is None for m in markets)
    ]


def figures(
    curve: Sequence[EquityPoint], ledger: Ledger, fills: Sequence[FillRecord], period: Period
) -> dict[str, Any]:
    turnover = sum(notional(r.fill.price, r.fill.count) for r in fills)
    fees = sum(r.fill.fee for r in fills)
    report = build_report(
        curve, closed_pnls(ledger, fills), fees, turnover, period.ns, period.per_year
    )
    out: dict[str, Any] = dict(report_to_dict(report))
    out["fills"] = len(fills)
    out["contracts_centi"] = sum(r.fill.count for r in fills)
    out["held_markets"] = len(ledger.holdings)
    return out


def build(results: Results, meta: Mapping[str, Any]) -> dict[str, Any]:
    """report.json: the run's figures in total and per strategy, and what went in."""
    period = period_of(results.end_ns - results.start_ns)
    by_strategy: dict[str, list[FillRecord]] = {}
    for record in results.fills:
        by_strategy.setdefault(record.strategy, []).append(record)
    strategies = sorted(name for name in results.ledgers if name != TOTAL)
    decided = Counter(s.reason for s in results.signals)
    return {
        **meta,
        "span": {"start": iso(results.start_ns), "end": iso(results.end_ns)},
        "period": period.name,
        "replayed": {"ticks": results.ticks, "items": results.items},
        "signals": {
            "total": len(results.signals),
            "approved": sum(1 for s in results.signals if s.approved),
            "by_reason": dict(sorted(decided.items())),
        },
        "orders": {
            "total": len(results.orders),
            "by_status": dict(sorted(Counter(s.value for s in results.orders.values()).items())),
        },
        "settled": [s.market for s in results.settled if s not in results.inferred],
        "settled_from_last_marks": {s.market: s.result.value for s in results.inferred},
        "halts": [
            {
                "ts": iso(ts),
                "what": t.what,
                "subject": t.subject,
                "after": t.after,
                "reason": t.reason,
            }
            for ts, t in results.transitions
        ],
        "total": figures(results.curves[TOTAL], results.ledgers[TOTAL], results.fills, period),
        "strategies": {
            name: figures(
                results.curves[name], results.ledgers[name], by_strategy.get(name, []), period
            )
            for name in strategies
        },
    }


# --- the files ---------------------------------------------------------------------------


def signal_row(record: SignalRecord) -> list[str]:
    signal = record.signal
    size = min((leg.count for leg in signal.legs), default=0)
    return [
        iso(record.ts_ns),
        signal.kind,
        signal.event,
        legs_text(signal.legs),
        cents_text(signal.edge),
        contracts_text(size),
        signal.strategy,
        signal.signal_id,
        str(signal.ev),
        "true" if record.approved else "false",
        record.reason,
    ]


def trade_row(record: FillRecord) -> list[str]:
    fill = record.fill
    return [
        iso(fill.ts_ns),
        fill.trade_id,
        record.strategy,
        record.signal_id,
        record.route,
        fill.client_order_id,
        fill.market,
        fill.side.value,
        fill.action.value,
        str(fill.price),
        str(fill.count),
        str(fill.fee),
        "true" if fill.is_taker else "false",
    ]


def write_csv(path: Path, header: Sequence[str], rows: Sequence[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write(out: Path, results: Results, report: Mapping[str, Any]) -> list[Path]:
    """report.json, trades.csv and signals.csv into ``out``; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.json", out / "trades.csv", out / "signals.csv"]
    paths[0].write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    write_csv(paths[1], TRADE_COLUMNS, [trade_row(r) for r in results.fills])
    write_csv(paths[2], SIGNAL_COLUMNS, [signal_row(r) for r in results.signals])
    return paths
