"""``python -m services.execution.report``: how the bot has done, read from Postgres.

    python -m services.execution.report [--config FILE] [--since ISO] [--until ISO]
                                        [--paper | --live | --all] [--csv FILE] [--json]

What it shows, and how each figure is defined:

* **Scope.** Fills of one mode: ``--paper``, ``--live`` or ``--all``; by default
  the configured mode (``KHV_MODE``, paper unless set). The window is
  ``[--since, --until)``, ISO 8601 times (UTC when no offset is given), open
  when not given. Settlements are facts about markets, so every one applies,
  whatever the mode.
* **P&L.** The ledger (:class:`shared.ledger.Ledger`) replayed from the fills and
  settlements before ``--until``, starting from ``risk.bankroll``. Realized P&L
  and fees of the window are the ledger's at ``--until`` minus its at
  ``--since`` (a position opened before the window and closed in it counts in
  the window). Cash and open positions are the ledger's at ``--until``.
* **Trades** are fills (one execution of one order), with their turnover
  (price x count, what changed hands) and fees.
* **Win rate** is per market: a market counts once nothing of it is held any
  more (sold out or settled) and its last fill or settlement falls in the
  window; it is a win when its whole realized P&L, net of fees, is positive
  (:func:`shared.performance.win_rate`; break-even counts, but not as a win).
* **Equity** figures (latest NAV, Sharpe, Sortino, max drawdown) come from
  risk's ``portfolio_snapshots`` in the window, daily returns annualized over
  365 days (:func:`shared.performance.build_report`). Those snapshots are the
  portfolio of whichever mode risk ran in; they are not split by mode.

``--csv FILE`` writes the ``trade_log`` view of the window (every fill with
its order and the signal behind it) with a header; money stays integer
micro-dollars and counts hundredths of a contract, the unit in each column's
name. ``--json`` prints the figures for machines (money in ``*_micros``).
Exit status: 0 done, 1 the database cannot be read (or the CSV written),
2 bad settings or arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.rows import TupleRow

from shared.config import ConfigError, load_settings
from shared.ledger import Ledger, LedgerError
from shared.messages import Fill
from shared.money import Count, Micros, format_count, format_dollars, notional
from shared.performance import EquityPoint, Report, build_report
from shared.store.ledger import FILL_COLUMNS, fill_from_row
from shared.store.pool import StoreUnavailable, open_pool

Scope: TypeAlias = Literal["paper", "live", "all"]
Connection: TypeAlias = AsyncConnection[TupleRow]

PROG: Final = "python -m services.execution.report"
CONNECT_TIMEOUT_S: Final = 5.0
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
TABLES: Final = ("fills", "settlements", "portfolio_snapshots", "trade_log")
CSV_COLUMNS: Final = (
    "trade_id",
    "ts",
    "paper",
    "market",
    "side",
    "action",
    "price_micros",
    "count_centi",
    "fee_micros",
    "is_taker",
    "order_id",
    "client_order_id",
    "intent_id",
    "signal_id",
    "route",
    "strategy",
    "kind",
    "event",
    "edge_micros",
    "model_p",
    "kelly_fraction",
    "ev_micros",
    "aroc",
)
LABEL_WIDTH: Final = 26
VALUE_WIDTH: Final = 16


class ReportError(Exception):
    """The report cannot be made; the message is one line saying why."""


# --- what to report on -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """Fills of ``scope`` in ``[since, until)`` (either end open when None)."""

    scope: Scope
    since: datetime | None = None
    until: datetime | None = None

    @property
    def since_ns(self) -> int | None:
        return None if self.since is None else to_ns(self.since)

    def describe(self) -> str:
        if self.since is None and self.until is None:
            return f"{self.scope} fills, all time"
        start = "the start" if self.since is None else when(self.since)
        end = "now" if self.until is None else when(self.until)
        return f"{self.scope} fills from {start} until {end}"


def to_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime, exactly (no float)."""
    return (moment - EPOCH) // timedelta(microseconds=1) * 1000


def from_ns(ts_ns: int) -> datetime:
    return EPOCH + timedelta(microseconds=ts_ns // 1000)


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_time(text: str) -> datetime:
    """An ISO 8601 date or time; UTC when it has no offset."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --- reading Postgres --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Records:
    """What the report is made of: fills and settlements before ``until``, NAVs in the window."""

    fills: list[Fill]
    settlements: list[tuple[str, bool, int]]
    """(market, yes won, settled at ns), in time order."""
    navs: list[EquityPoint]
    trade_log: list[tuple[Any, ...]] | None = None
    has_schema: bool = True


def _where(window: Window, column: str, *, from_since: bool, by_scope: bool) -> sql.Composable:
    col = sql.Identifier(column)
    parts: list[sql.Composable] = []
    if from_since and window.since is not None:
        parts.append(sql.SQL("{} >= {}").format(col, sql.Literal(window.since)))
    if window.until is not None:
        parts.append(sql.SQL("{} < {}").format(col, sql.Literal(window.until)))
    if by_scope and window.scope != "all":
        parts.append(sql.SQL("paper = {}").format(sql.Literal(window.scope == "paper")))
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts) if parts else sql.SQL("")


async def _rows(conn: Connection, query: sql.Composed) -> list[tuple[Any, ...]]:
    return await (await conn.execute(query)).fetchall()


async def _has_schema(conn: Connection) -> bool:
    present = sql.SQL(" AND ").join(
        sql.SQL("to_regclass({}) IS NOT NULL").format(sql.Literal(table)) for table in TABLES
    )
    [(found,)] = await _rows(conn, sql.SQL("SELECT {}").format(present))
    return bool(found)


async def _fills(conn: Connection, window: Window) -> list[Fill]:
    query = sql.SQL("SELECT {} FROM fills{} ORDER BY ts, trade_id").format(
        sql.SQL(FILL_COLUMNS), _where(window, "ts", from_since=False, by_scope=True)
    )
    return [fill_from_row(r) for r in await _rows(conn, query)]


async def _settlements(conn: Connection, window: Window) -> list[tuple[str, bool, int]]:
    query = sql.SQL(
        "SELECT market, result, settled_at FROM settlements{} ORDER BY settled_at, market"
    ).format(_where(window, "settled_at", from_since=False, by_scope=False))
    return [(r[0], r[1] == "yes", to_ns(r[2])) for r in await _rows(conn, query)]


async def _navs(conn: Connection, window: Window) -> list[EquityPoint]:
    query = sql.SQL("SELECT ts, nav_micros FROM portfolio_snapshots{} ORDER BY ts").format(
        _where(window, "ts", from_since=True, by_scope=False)
    )
    return [EquityPoint(to_ns(r[0]), r[1]) for r in await _rows(conn, query)]


async def _trade_log(conn: Connection, window: Window) -> list[tuple[Any, ...]]:
    columns = sql.SQL(", ").join(sql.Identifier(name) for name in CSV_COLUMNS)
    query = sql.SQL("SELECT {} FROM trade_log{} ORDER BY ts, trade_id").format(
        columns, _where(window, "ts", from_since=True, by_scope=True)
    )
    return await _rows(conn, query)


async def _read(conn: Connection, window: Window, with_log: bool) -> Records:
    if not await _has_schema(conn):
        return Records([], [], [], trade_log=[] if with_log else None, has_schema=False)
    return Records(
        fills=await _fills(conn, window),
        settlements=await _settlements(conn, window),
        navs=await _navs(conn, window),
        trade_log=await _trade_log(conn, window) if with_log else None,
    )


async def read_records(url: str, window: Window, *, with_log: bool = False) -> Records:
    """Everything the report needs, in one connection; ReportError if Postgres fails."""
    try:
        pool = await open_pool(url, max_size=1, timeout_s=CONNECT_TIMEOUT_S, name="report")
    except StoreUnavailable as exc:
        raise ReportError(str(exc)) from None
    try:
        async with pool.connection() as conn:
            return await _read(conn, window, with_log)
    except psycopg.Error as exc:
        raise ReportError(f"database error: {' '.join(str(exc).split())}") from None
    finally:
        await pool.close()


# --- the figures -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Summary:
    """Every figure of the report; money in micro-dollars, counts in hundredths."""

    window: Window
    bankroll: Micros
    fills: int
    contracts: Count
    turnover: Micros
    fees: Micros
    realized: Micros
    """Realized P&L of the window, gross of fees."""
    cash: Micros
    open_markets: int
    open_cost: Micros
    closed_pnl: Micros
    """Whole realized P&L, net of fees, of the markets closed in the window."""
    snapshots: int
    latest_nav_at: datetime | None
    performance: Report
    has_schema: bool = True

    @property
    def net_realized(self) -> Micros:
        return self.realized - self.fees

    @property
    def no_trades(self) -> bool:
        return self.fills == 0


def _ledger(bankroll: Micros, records: Records, before_ns: int | None) -> Ledger:
    """The ledger of everything before ``before_ns`` (all of it when None)."""
    fills = [f for f in records.fills if before_ns is None or f.ts_ns < before_ns]
    settled = [
        (m, won) for m, won, ts in records.settlements if before_ns is None or ts < before_ns
    ]
    try:
        return Ledger.replay(bankroll, fills, settled)
    except LedgerError as exc:
        raise ReportError(f"the recorded fills do not replay: {exc}") from None


def _closed_markets(ledger: Ledger, records: Records, since_ns: int | None) -> list[str]:
    """Markets traded and no longer held whose last fill or settlement is in the window."""
    last: dict[str, int] = {}
    for fill in records.fills:
        last[fill.market] = max(last.get(fill.market, fill.ts_ns), fill.ts_ns)
    for market, _, ts in records.settlements:
        if market in last:
            last[market] = max(last[market], ts)
    return sorted(
        market
        for market, ts in last.items()
        if ledger.holding(market) is None and (since_ns is None or ts >= since_ns)
    )


def _performance(records: Records, pnls: list[Micros], fees: Micros, turnover: Micros) -> Report:
    try:
        return build_report(records.navs, pnls, fees, turnover)
    except ValueError as exc:  # a NAV out of order or negative
        raise ReportError(f"portfolio snapshots unusable: {exc}") from None


def summarize(records: Records, window: Window, bankroll: Micros) -> Summary:
    since_ns = window.since_ns
    end = _ledger(bankroll, records, None)
    start = Ledger(bankroll) if since_ns is None else _ledger(bankroll, records, since_ns)
    traded = [f for f in records.fills if since_ns is None or f.ts_ns >= since_ns]
    turnover = sum(notional(f.price, f.count) for f in traded)
    fees = end.fees - start.fees
    closed = _closed_markets(end, records, since_ns)
    pnls = [end.realized_in(m) - end.fees_in(m) for m in closed]
    return Summary(
        window=window,
        bankroll=bankroll,
        fills=len(traded),
        contracts=sum(f.count for f in traded),
        turnover=turnover,
        fees=fees,
        realized=end.realized - start.realized,
        cash=end.cash,
        open_markets=len(end.holdings),
        open_cost=end.cost_basis(),
        closed_pnl=sum(pnls),
        snapshots=len(records.navs),
        latest_nav_at=from_ns(records.navs[-1].ts_ns) if records.navs else None,
        performance=_performance(records, pnls, fees, turnover),
        has_schema=records.has_schema,
    )


# --- output ------------------------------------------------------------------------------


def _grouped(text: str) -> str:
    """``"-1234.50"`` -> ``"-1,234.50"``."""
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, dot, frac = digits.partition(".")
    return f"{sign}{int(whole):,}{dot}{frac}"


def money(value: Micros) -> str:
    """Dollars with cents, exactly: more decimals only when the amount has them."""
    places = next(p for p in (2, 4, 6) if value % 10 ** (6 - p) == 0)
    text = _grouped(format_dollars(abs(value), places))
    return f"-${text}" if value < 0 else f"${text}"


def contracts_text(value: Count) -> str:
    return _grouped(format_count(value))


def ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def percent(value: float | None, places: int = 2) -> str:
    return "n/a" if value is None else f"{value * 100:.{places}f}%"


def ppm_percent(ppm: int) -> str:
    """Parts per million as a percentage with two decimals (truncated, exact)."""
    return f"{ppm // 10_000}.{ppm % 10_000 // 100:02d}%"


def _line(label: str, value: str, note: str = "") -> str:
    line = f"  {label:<{LABEL_WIDTH}}{value:>{VALUE_WIDTH}}"
    return f"{line}  {note}" if note else line


def _trading_lines(s: Summary) -> list[str]:
    return [
        "Trading",
        _line("trades (fills)", f"{s.fills:,}"),
        _line("contracts", contracts_text(s.contracts)),
        _line("turnover", money(s.turnover)),
        _line("fees paid", money(s.fees)),
    ]


def _pnl_lines(s: Summary) -> list[str]:
    return [
        f"P&L (ledger replayed from fills and settlements, bankroll {money(s.bankroll)})",
        _line("realized, gross", money(s.realized)),
        _line("realized, net of fees", money(s.net_realized)),
        _line("cash at the end", money(s.cash)),
        _line("markets held at the end", f"{s.open_markets:,}", f"cost {money(s.open_cost)}"),
    ]


def _closed_lines(s: Summary) -> list[str]:
    p = s.performance
    return [
        "Closed markets (nothing held any more; a win makes money net of fees)",
        _line("markets", f"{p.trades:,}"),
        _line("won / lost", f"{p.wins} / {p.losses}"),
        _line("win rate", percent(p.win_rate, 1)),
        _line("net P&L", money(s.closed_pnl)),
    ]


def _equity_lines(s: Summary) -> list[str]:
    p, dd = s.performance, s.performance.max_drawdown
    if s.snapshots == 0:
        return ["Equity (portfolio snapshots)", "  no portfolio snapshots in this window"]
    latest = when(s.latest_nav_at) if s.latest_nav_at is not None else ""
    span = f"from {when(from_ns(dd.peak_ts_ns))} to {when(from_ns(dd.trough_ts_ns))}"
    return [
        "Equity (portfolio snapshots)",
        _line("snapshots", f"{s.snapshots:,}"),
        _line("latest NAV", money(p.end_nav), latest),
        _line("NAV change", money(p.pnl), f"total return {percent(p.total_return)}"),
        _line(
            "max drawdown",
            money(dd.depth),
            f"{ppm_percent(dd.depth_ppm)} {span}" if dd.depth else "",
        ),
        _line("Sharpe", ratio(p.sharpe), "daily returns, annualized"),
        _line("Sortino", ratio(p.sortino)),
    ]


def render(s: Summary) -> str:
    """The human-readable report."""
    lines = [f"Performance report: {s.window.describe()}", ""]
    if s.no_trades:
        lines += [_no_trades(s), ""]
    else:
        for section in (_trading_lines(s), _pnl_lines(s), _closed_lines(s)):
            lines += [*section, ""]
    lines += _equity_lines(s)
    return "\n".join(lines)


def _no_trades(s: Summary) -> str:
    if not s.has_schema:
        return "No trades yet: the database has no trading tables (no service has run on it)."
    return f"No trades yet: no {s.window.scope} fills in this window."


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _equity_json(s: Summary) -> dict[str, Any]:
    p, dd = s.performance, s.performance.max_drawdown
    some = s.snapshots > 0
    return {
        "snapshots": s.snapshots,
        "latest_nav_micros": p.end_nav if some else None,
        "latest_nav_at": _iso(s.latest_nav_at),
        "start_nav_micros": p.start_nav if some else None,
        "nav_change_micros": p.pnl if some else None,
        "total_return": p.total_return,
        "annualized_return": p.annualized_return,
        "sharpe": p.sharpe,
        "sortino": p.sortino,
        "calmar": p.calmar,
        "periods": p.periods,
        "max_drawdown_micros": dd.depth,
        "max_drawdown_ppm": dd.depth_ppm,
        "max_drawdown_peak_at": _iso(from_ns(dd.peak_ts_ns)) if dd.depth else None,
        "max_drawdown_trough_at": _iso(from_ns(dd.trough_ts_ns)) if dd.depth else None,
    }


def to_json(s: Summary) -> dict[str, Any]:
    """The report for machines: money in integer micro-dollars, counts in hundredths."""
    p = s.performance
    return {
        "scope": s.window.scope,
        "since": _iso(s.window.since),
        "until": _iso(s.window.until),
        "no_trades": s.no_trades,
        "trading": {
            "fills": s.fills,
            "contracts_centi": s.contracts,
            "turnover_micros": s.turnover,
            "fees_micros": s.fees,
        },
        "pnl": {
            "bankroll_micros": s.bankroll,
            "realized_micros": s.realized,
            "net_realized_micros": s.net_realized,
            "cash_micros": s.cash,
            "open_markets": s.open_markets,
            "open_cost_micros": s.open_cost,
        },
        "closed_markets": {
            "markets": p.trades,
            "wins": p.wins,
            "losses": p.losses,
            "win_rate": p.win_rate,
            "net_pnl_micros": s.closed_pnl,
        },
        "equity": _equity_json(s),
    }


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)


def write_csv(path: Path, rows: Sequence[tuple[Any, ...]]) -> None:
    """The trade log with its header; ReportError if the file cannot be written."""
    try:
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(CSV_COLUMNS)
            writer.writerows([_csv_value(v) for v in row] for row in rows)
    except OSError as exc:
        raise ReportError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None


# --- the command -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Performance of the bot's trading, read from Postgres.",
        epilog="Without --paper, --live or --all: the configured mode's fills (KHV_MODE). "
        "Definitions of every figure: services/execution/report.py.",
    )
    parser.add_argument("--config", metavar="FILE", help="YAML settings file")
    parser.add_argument("--since", type=iso_time, metavar="ISO", help="from this time on")
    parser.add_argument("--until", type=iso_time, metavar="ISO", help="before this time")
    scope = parser.add_mutually_exclusive_group()
    for name in ("paper", "live", "all"):
        scope.add_argument(
            f"--{name}", dest="scope", action="store_const", const=name, help=f"{name} fills"
        )
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write the trade log as CSV")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _fail(message: str, code: int) -> int:
    print(f"report: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    pool_log = logging.getLogger("psycopg.pool")
    level = pool_log.level
    pool_log.setLevel(logging.CRITICAL)  # our error line says it once; restored after
    try:
        return _main(argv)
    finally:
        pool_log.setLevel(level)


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        return _fail(f"config error: {exc}", 2)
    window = Window(args.scope or settings.mode, args.since, args.until)
    if window.since is not None and window.until is not None and window.since >= window.until:
        return _fail("--since must be before --until", 2)
    try:
        records = asyncio.run(
            read_records(settings.database_url, window, with_log=args.csv is not None)
        )
        summary = summarize(records, window, settings.risk.bankroll)
        if args.csv is not None:
            write_csv(args.csv, records.trade_log or [])
    except ReportError as exc:
        return _fail(str(exc), 1)
    print(json.dumps(to_json(summary), indent=2) if args.json else render(summary))
    if args.csv is not None:
        note = f"trade log: {len(records.trade_log or []):,} fills written to {args.csv}"
        print(note, file=sys.stderr if args.json else sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
