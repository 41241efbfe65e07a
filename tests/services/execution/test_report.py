"""The report command against a real Postgres holding hand-made fills, orders, signals,
settlements and portfolio snapshots; every figure checked is worked out by hand below.

Paper fills (bankroll $1,000):

=====  ===========  ======================  =========  ======  =============================
fill   time (UTC)   what                    notional   fee     market's fate
=====  ===========  ======================  =========  ======  =============================
f1     01-01 10:00  A buy YES 10 @ $0.40    $4.00      $0.17
f2     01-02 10:00  A sell YES 10 @ $0.35   $3.50      $0.17   closed: -$0.50 - $0.34 = -$0.84
f3     01-01 12:00  B buy NO 5 @ $0.30      $1.50      $0.08   settles NO on 01-03: +$3.50
                                                               - $0.08 = +$3.42
f4     01-02 12:00  C buy YES 2.5 @ $0.2345 $0.58625   $0.01   still held
f6     01-02 01:00  E buy YES 1 @ $0.50     $0.50      $0      closed at break-even: $0
f7     01-02 02:00  E sell YES 1 @ $0.50    $0.50      $0
=====  ===========  ======================  =========  ======  =============================

plus one live fill, f5: D buy YES 1 @ $0.50, fee $0.02, 01-02 00:00.

Paper, all time: 6 fills, 29.50 contracts, turnover $10.58625, fees $0.43,
realized $3.00 gross ($3.50 - $0.50), $2.57 net; cash $1,000 - $0.43 + $3.00 -
$0.58625 (C's cost) = $1,001.98375; closed markets A, B, E: one win in three
(33.3%), net P&L $2.58.

NAV snapshots: $1,000.00, $1,010.00 (peak), $959.50, $1,002.00 at midnight of
01-01 .. 01-04: the max drawdown is $50.50 = 5.00% of the peak, 01-02 to 01-03.
"""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from services.execution import report
from services.execution.report import main, money
from shared.money import dollars
from shared.store.migrations import migrate
from tests.conftest import database_url_for

DAY1, DAY2, DAY3, DAY4 = (f"2026-01-0{d}T00:00:00+00:00" for d in (1, 2, 3, 4))

# trade_id, client_order_id, market, side, action, price, count, fee, ts, paper
FILLS = [
    ("f1", "o1", "A", "yes", "buy", 400_000, 1000, 170_000, "2026-01-01T10:00Z", True),
    ("f2", "o2", "A", "yes", "sell", 350_000, 1000, 170_000, "2026-01-02T10:00Z", True),
    ("f3", "o3", "B", "no", "buy", 300_000, 500, 80_000, "2026-01-01T12:00Z", True),
    ("f4", "o4", "C", "yes", "buy", 234_500, 250, 10_000, "2026-01-02T12:00Z", True),
    ("f5", "o5", "D", "yes", "buy", 500_000, 100, 20_000, "2026-01-02T00:00Z", False),
    ("f6", "o6", "E", "yes", "buy", 500_000, 100, 0, "2026-01-02T01:00Z", True),
    ("f7", "o7", "E", "yes", "sell", 500_000, 100, 0, "2026-01-02T02:00Z", True),
]
# client_order_id, signal_id, market, side, action, price, count, kelly, ev, aroc (risk's)
ORDERS = [
    ("o1", "s1", "A", "yes", "buy", 400_000, 1000, 0.05, 300_000, 1.5),
    ("o2", "s1", "A", "yes", "sell", 350_000, 1000, 0.05, 300_000, 1.5),
    ("o3", "s2", "B", "no", "buy", 300_000, 500, None, None, None),
]
# signal_id, strategy, kind, event, edge, model_p, kelly, ev, aroc
SIGNALS = [
    ("s1", "weather", "model", "EV-A", 20_000, 0.6, 0.04, 250_000, 1.2),
    ("s2", "ladder", "arbitrage", "EV-B", 30_000, 0.7, 0.08, 120_000, 2.5),
]
NAVS = [(DAY1, 1_000_000_000), (DAY2, 1_010_000_000), (DAY3, 959_500_000), (DAY4, 1_002_000_000)]


async def _migrate(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await migrate(conn)


@pytest.fixture
def env(database_url, monkeypatch) -> str:
    """Settings pointing at this test's database, bankroll $1,000, paper mode."""
    for name in ("KHV_CONFIG", "KHV_MODE", "KHV_SECRETS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("KHV_RISK__BANKROLL", str(dollars(1000)))
    return database_url


@pytest.fixture
def empty(env) -> str:
    asyncio.run(_migrate(env))
    return env


@pytest.fixture
def db(empty) -> str:
    with psycopg.connect(empty) as conn:
        insert(conn)
    return empty


def insert(conn: psycopg.Connection[Any]) -> None:
    for f in FILLS:
        conn.execute(
            "INSERT INTO fills (trade_id, order_id, client_order_id, market, side, action,"
            " price_micros, count_centi, fee_micros, is_taker, ts, paper)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, true, %s, %s)",
            (f[0], f"x-{f[1]}", *f[1:]),
        )
    for o in ORDERS:
        conn.execute(
            "INSERT INTO orders (client_order_id, order_id, intent_id, signal_id, market, side,"
            " action, price_micros, count_centi, filled_centi, route, status, kelly_fraction,"
            " ev_micros, aroc) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'sniper',"
            " 'filled', %s, %s, %s)",
            (o[0], f"x-{o[0]}", f"i-{o[1]}", o[1], *o[2:7], o[6], *o[7:]),
        )
    for s in SIGNALS:
        conn.execute(
            "INSERT INTO signals (signal_id, ts, strategy, kind, event, legs, edge_micros,"
            " model_p, kelly_fraction, confidence, ev_micros, aroc, size_centi)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 0.9, %s, %s, 1000)",
            (s[0], DAY1, *s[1:4], Jsonb([]), *s[4:]),
        )
    conn.execute(
        "INSERT INTO settlements (market, result, settled_at, paper) VALUES ('B', 'no', %s, true)",
        (DAY3,),
    )
    for ts, nav in NAVS:
        conn.execute(
            "INSERT INTO portfolio_snapshots (ts, cash_micros, nav_micros, peak_nav_micros,"
            " daily_pnl_micros, drawdown_ppm, trading_state) VALUES (%s, %s, %s, %s, 0, 0,"
            " 'active')",
            (ts, nav, nav, nav),
        )


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def value_of(table: str, label: str) -> str:
    """The value column of the table line labelled ``label``."""
    start = 2 + report.LABEL_WIDTH
    for line in table.splitlines():
        if line.startswith(f"  {label}") and line[2:start].strip() == label:
            return line[start : start + report.VALUE_WIDTH].strip()
    raise AssertionError(f"no line {label!r} in:\n{table}")


def note_of(table: str, label: str) -> str:
    start = 2 + report.LABEL_WIDTH + report.VALUE_WIDTH
    line = next(x for x in table.splitlines() if x[2 : 2 + report.LABEL_WIDTH].strip() == label)
    return line[start:].strip()


# --- the figures ------------------------------------------------------------------------


def test_the_table_shows_the_paper_figures_worked_out_by_hand(db, capsys):
    code, out, err = run(capsys)
    assert (code, err) == (0, "")
    assert out.startswith("Performance report: paper fills, all time\n")
    assert value_of(out, "trades (fills)") == "6"
    assert value_of(out, "contracts") == "29.50"
    assert value_of(out, "turnover") == "$10.586250"
    assert value_of(out, "fees paid") == "$0.43"
    assert value_of(out, "realized, gross") == "$3.00"
    assert value_of(out, "realized, net of fees") == "$2.57"
    assert value_of(out, "cash at the end") == "$1,001.983750"
    assert value_of(out, "markets held at the end") == "1"
    assert note_of(out, "markets held at the end") == "cost $0.586250"
    assert value_of(out, "markets") == "3"
    assert value_of(out, "won / lost") == "1 / 1"
    assert value_of(out, "win rate") == "33.3%"
    assert value_of(out, "net P&L") == "$2.58"
    assert value_of(out, "snapshots") == "4"
    assert value_of(out, "latest NAV") == "$1,002.00"
    assert note_of(out, "latest NAV") == "2026-01-04 00:00:00 UTC"
    assert value_of(out, "NAV change") == "$2.00"
    assert note_of(out, "NAV change") == "total return 0.20%"
    assert value_of(out, "max drawdown") == "$50.50"
    assert note_of(out, "max drawdown") == (
        "5.00% from 2026-01-02 00:00:00 UTC to 2026-01-03 00:00:00 UTC"
    )
    assert "bankroll $1,000.00" in out


def test_json_has_every_figure_in_integer_micros(db, capsys):
    code, out, _ = run(capsys, "--json")
    assert code == 0
    figures = json.loads(out)
    assert set(figures) == {
        "scope",
        "since",
        "until",
        "no_trades",
        "trading",
        "pnl",
        "closed_markets",
        "equity",
    }
    assert (figures["scope"], figures["since"], figures["until"]) == ("paper", None, None)
    assert figures["no_trades"] is False
    assert figures["trading"] == {
        "fills": 6,
        "contracts_centi": 2950,
        "turnover_micros": 10_586_250,
        "fees_micros": 430_000,
    }
    assert figures["pnl"] == {
        "bankroll_micros": 1_000_000_000,
        "realized_micros": 3_000_000,
        "net_realized_micros": 2_570_000,
        "cash_micros": 1_001_983_750,
        "open_markets": 1,
        "open_cost_micros": 586_250,
    }
    closed = figures["closed_markets"]
    assert (closed["markets"], closed["wins"], closed["losses"]) == (3, 1, 1)
    assert closed["win_rate"] == pytest.approx(1 / 3)
    assert closed["net_pnl_micros"] == 2_580_000
    equity = figures["equity"]
    assert set(equity) == {
        "snapshots",
        "latest_nav_micros",
        "latest_nav_at",
        "start_nav_micros",
        "nav_change_micros",
        "total_return",
        "annualized_return",
        "sharpe",
        "sortino",
        "calmar",
        "periods",
        "max_drawdown_micros",
        "max_drawdown_ppm",
        "max_drawdown_peak_at",
        "max_drawdown_trough_at",
    }
    assert equity["latest_nav_micros"] == 1_002_000_000
    assert equity["latest_nav_at"] == DAY4
    assert equity["nav_change_micros"] == 2_000_000
    assert equity["max_drawdown_micros"] == 50_500_000
    assert equity["max_drawdown_ppm"] == 50_000
    assert (equity["max_drawdown_peak_at"], equity["max_drawdown_trough_at"]) == (DAY2, DAY3)
    assert equity["periods"] == 3
    assert isinstance(equity["sharpe"], float) and isinstance(equity["sortino"], float)


def test_live_and_all_scopes(db, capsys):
    _, out, _ = run(capsys, "--live", "--json")
    live = json.loads(out)
    assert live["scope"] == "live"
    assert live["trading"]["fills"] == 1 and live["trading"]["fees_micros"] == 20_000
    assert live["pnl"]["open_markets"] == 1 and live["closed_markets"]["markets"] == 0
    assert live["closed_markets"]["win_rate"] is None
    _, out, _ = run(capsys, "--all", "--json")
    both = json.loads(out)
    assert both["trading"]["fills"] == 7 and both["trading"]["fees_micros"] == 450_000
    assert both["pnl"]["open_markets"] == 2


def test_the_configured_mode_is_the_default_scope(db, capsys, monkeypatch):
    monkeypatch.setenv("KHV_MODE", "live")
    monkeypatch.setenv("KALSHI_KEY_ID", "k")
    key = Path(__file__)  # any existing file: live mode only checks that the key exists
    monkeypatch.setenv("KALSHI_PRIVATE_KEY_PATH", str(key))
    _, out, _ = run(capsys, "--json")
    assert json.loads(out)["scope"] == "live"


def test_a_window_counts_what_happened_in_it(db, capsys):
    # f2, f4, f6, f7 fall in it; B settles in it; A and B were bought before it
    code, out, _ = run(capsys, "--since", "2026-01-02", "--until", "2026-01-03T12:00", "--json")
    assert code == 0
    figures = json.loads(out)
    assert figures["since"] == DAY2
    assert figures["until"] == "2026-01-03T12:00:00+00:00"
    assert figures["trading"]["fills"] == 4
    assert figures["trading"]["fees_micros"] == 180_000
    assert figures["pnl"]["realized_micros"] == 3_000_000  # A's sale and B's settlement
    assert figures["pnl"]["net_realized_micros"] == 2_820_000
    assert figures["closed_markets"]["markets"] == 3
    assert figures["equity"]["snapshots"] == 2
    assert figures["equity"]["latest_nav_micros"] == 959_500_000
    assert figures["equity"]["max_drawdown_micros"] == 50_500_000


def test_a_window_before_a_market_closes_leaves_it_open(db, capsys):
    _, out, _ = run(capsys, "--until", "2026-01-02T05:00Z", "--json")
    figures = json.loads(out)
    assert figures["trading"]["fills"] == 4  # f1, f3, f6, f7
    assert figures["closed_markets"]["markets"] == 1  # only E: A and B are still held
    assert figures["pnl"]["open_markets"] == 2


# --- the trade log ----------------------------------------------------------------------

CSV_HEADER = [
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
]


def test_the_csv_is_the_trade_log_of_the_window(db, capsys, tmp_path):
    path = tmp_path / "trades.csv"
    code, out, _ = run(capsys, "--csv", str(path))
    assert code == 0
    assert f"trade log: 6 fills written to {path}" in out
    with path.open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert header == CSV_HEADER
    by_id = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert [row[0] for row in rows] == ["f1", "f3", "f6", "f7", "f2", "f4"]  # by time
    f1 = by_id["f1"]
    assert f1["ts"] == "2026-01-01T10:00:00+00:00"
    assert (f1["paper"], f1["is_taker"]) == ("true", "true")
    assert (f1["price_micros"], f1["count_centi"], f1["fee_micros"]) == ("400000", "1000", "170000")
    assert (f1["signal_id"], f1["strategy"], f1["kind"], f1["event"]) == (
        "s1",
        "weather",
        "model",
        "EV-A",
    )
    # risk's sizing (the order's) wins over the strategy's (the signal's) when both exist
    assert (f1["kelly_fraction"], f1["ev_micros"], f1["aroc"]) == ("0.05", "300000", "1.5")
    f3 = by_id["f3"]
    assert (f3["kelly_fraction"], f3["ev_micros"], f3["aroc"]) == ("0.08", "120000", "2.5")
    assert (f3["edge_micros"], f3["model_p"]) == ("30000", "0.7")
    f4 = by_id["f4"]  # its order is unknown: no signal columns
    assert f4["price_micros"] == "234500"
    assert f4["signal_id"] == f4["strategy"] == f4["kelly_fraction"] == ""


def test_the_csv_with_json_keeps_stdout_pure_json(db, capsys, tmp_path):
    path = tmp_path / "live.csv"
    code, out, err = run(capsys, "--live", "--json", "--csv", str(path))
    assert code == 0
    assert json.loads(out)["trading"]["fills"] == 1
    assert "1 fills written" in err
    assert len(path.read_text().splitlines()) == 2


def test_an_unwritable_csv_is_one_line_and_exit_1(db, capsys, tmp_path):
    code, out, err = run(capsys, "--csv", str(tmp_path / "no" / "such" / "dir.csv"))
    assert code == 1 and out == ""
    assert err.startswith("report: cannot write") and err.count("\n") == 1


# --- nothing to report, and failures ------------------------------------------------------


def test_an_empty_database_says_no_trades_yet(empty, capsys, tmp_path):
    code, out, err = run(capsys, "--csv", str(tmp_path / "t.csv"))
    assert (code, err) == (0, "")
    assert "No trades yet: no paper fills in this window." in out
    assert "no portfolio snapshots in this window" in out
    assert "Traceback" not in out
    assert (tmp_path / "t.csv").read_text().splitlines() == [",".join(CSV_HEADER)]
    code, out, _ = run(capsys, "--json")
    figures = json.loads(out)
    assert figures["no_trades"] is True
    assert figures["trading"]["fills"] == 0
    assert figures["closed_markets"]["win_rate"] is None
    assert figures["equity"]["latest_nav_micros"] is None


def test_a_database_without_tables_says_no_trades_yet(env, capsys):
    code, out, err = run(capsys)
    assert (code, err) == (0, "")
    assert "No trades yet: the database has no trading tables" in out


def test_snapshots_without_fills_still_show_the_equity(empty, capsys):
    with psycopg.connect(empty) as conn:
        conn.execute(
            "INSERT INTO portfolio_snapshots (ts, cash_micros, nav_micros, peak_nav_micros,"
            " daily_pnl_micros, drawdown_ppm, trading_state) VALUES (%s, 1, 5000000, 1, 0, 0,"
            " 'active')",
            (DAY1,),
        )
    _, out, _ = run(capsys)
    assert "No trades yet" in out
    assert value_of(out, "latest NAV") == "$5.00"


def test_an_unreachable_database_is_one_line_and_exit_1(env, capsys, monkeypatch):
    monkeypatch.setattr(report, "CONNECT_TIMEOUT_S", 1.0)
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    code, out, err = run(capsys)
    assert code == 1 and out == ""
    assert err.startswith("report: cannot connect to Postgres") and err.count("\n") == 1


def test_a_missing_database_is_one_line_and_exit_1(env, capsys, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url_for("no_such_db_here"))
    code, _, err = run(capsys)
    assert code == 1
    assert err.startswith("report: ") and err.count("\n") == 1 and "no_such_db_here" in err


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("KHV_CONFIG", "/no/such/settings.yaml", "config file"),
        ("KHV_BUS__SHARDS", "0", "bus.shards"),
        ("KHV_RISK__BANKROLL", "-5", "risk.bankroll"),
    ],
)
def test_a_bad_config_is_one_line_and_exit_2(env, capsys, monkeypatch, setting, value, message):
    monkeypatch.setenv(setting, value)
    code, out, err = run(capsys)
    assert code == 2 and out == ""
    assert err.startswith("report: config error:") and message in err
    assert err.count("\n") == 1


def test_bad_times_are_refused(env, capsys):
    assert run(capsys, "--since", "2026-01-03", "--until", "2026-01-02")[0] == 2
    with pytest.raises(SystemExit) as exit_:
        main(["--since", "yesterday"])
    assert exit_.value.code == 2


# --- formatting -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (0, "$0.00"),
        (1_234_560_000, "$1,234.56"),
        (-1_234_560_000, "-$1,234.56"),
        (1_000_000_000_000, "$1,000,000.00"),
        (586_250, "$0.586250"),
        (123_400, "$0.1234"),
        (-5, "-$0.000005"),
    ],
)
def test_money_is_formatted_exactly(micros, text):
    assert money(micros) == text
