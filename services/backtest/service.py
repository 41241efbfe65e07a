"""``python -m services.backtest``: replay recorded market data, write a report.

    python -m services.backtest --input FILE [FILE ...] --format {kalshi-ws,tob-csv} --out DIR
    python -m services.backtest --from-db --since ISO --until ISO --out DIR

The trading settings are the services' own (``--config FILE``, ``KHV_*``),
with ``--kelly-fraction``, ``--min-edge`` and ``--route`` on top. Giving any of
those three a comma-separated list makes a sweep: every combination is
replayed in its own process, into ``DIR/<variant>/``, and ``DIR/sweep.csv``
holds the table of results (see :mod:`services.backtest.sweep`).

Exit status: 0 done, 1 the input cannot be replayed, 2 bad settings or arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Final

from pydantic import ValidationError

from services.backtest import sweep
from services.backtest.clock import NS_PER_S
from services.backtest.recording import RecordingError
from services.backtest.replay import ReplayConfig
from services.backtest.runner import Format, Options, run, summary_lines, trading_settings
from services.execution.report import iso_time
from shared.config import ConfigError, load_settings
from shared.logs import configure_logging

PROG: Final = "python -m services.backtest"
DESCRIPTION: Final = (
    "Replay recorded market data through the live strategy, risk and paper-execution code "
    "on a simulated clock; write report.json, trades.csv, signals.csv and plots."
)
NS_PER_MS: Final = 1_000_000


def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    data = parser.add_argument_group("input")
    data.add_argument("--input", nargs="+", type=Path, default=[], metavar="FILE")
    data.add_argument("--format", choices=["kalshi-ws", "tob-csv", "db"], help="input format")
    data.add_argument(
        "--from-db", action="store_true", help="the recorder's Postgres tables (= --format db)"
    )
    data.add_argument("--since", type=iso_time, metavar="ISO", help="db: from this time on")
    data.add_argument("--until", type=iso_time, metavar="ISO", help="db: before this time")
    data.add_argument("--database-url", help="db: Postgres URL (default: DATABASE_URL)")
    data.add_argument("--metadata", type=Path, metavar="FILE", help="markets as Kalshi's REST JSON")
    data.add_argument(
        "--no-price",
        choices=["no", "yes"],
        default="no",
        help="kalshi-ws: NO levels in NO-leg prices (Kalshi's default) or on the YES scale",
    )
    data.add_argument(
        "--depth", type=non_negative, default=100.0, help="tob-csv: contracts at each best bid"
    )
    data.add_argument("--lenient", action="store_true", help="kalshi-ws: skip undecodable lines")
    trading = parser.add_argument_group("trading (a comma-separated list makes a sweep)")
    trading.add_argument("--config", metavar="FILE", help="YAML settings file")
    trading.add_argument("--kelly-fraction", metavar="F[,F...]", help="fraction of full Kelly")
    trading.add_argument("--min-edge", metavar="E[,E...]", help="least edge, share of $1")
    trading.add_argument("--route", metavar="R[,R...]", help="config, sniper or maker")
    trading.add_argument("--jobs", type=int, default=0, help="sweep processes (default: CPUs)")
    run_group = parser.add_argument_group("the run")
    run_group.add_argument("--out", type=Path, required=True, metavar="DIR")
    run_group.add_argument("--seed", type=int, default=0, help="seed of the latency jitter")
    run_group.add_argument("--latency-ms", type=non_negative, default=0.0)
    run_group.add_argument("--jitter-ms", type=non_negative, default=0.0)
    run_group.add_argument(
        "--speed", type=non_negative, default=0.0, help="real time x N (0: as fast as possible)"
    )
    run_group.add_argument("--equity-interval-s", type=non_negative, default=60.0)
    run_group.add_argument("--title", default="", help="the report's title")
    run_group.add_argument("--no-plots", action="store_true")
    run_group.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar (default: when stderr is a terminal)",
    )
    run_group.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING"])
    return parser


def options_from(args: argparse.Namespace, database_url: str) -> Options:
    fmt: Format | None = "db" if args.from_db else args.format
    if fmt is None:
        raise ValueError("say what to replay: --format FORMAT --input FILE..., or --from-db")
    if args.equity_interval_s <= 0:
        raise ValueError("--equity-interval-s must be positive")
    return Options(
        out=args.out,
        format=fmt,
        inputs=tuple(args.input),
        since=args.since,
        until=args.until,
        database_url=args.database_url or database_url,
        metadata=args.metadata,
        no_price=args.no_price,
        depth_centi=round(args.depth * 100),
        strict=not args.lenient,
        replay=ReplayConfig(
            seed=args.seed,
            latency_ns=round(args.latency_ms * NS_PER_MS),
            jitter_ns=round(args.jitter_ms * NS_PER_MS),
            speed=args.speed,
            equity_interval_ns=round(args.equity_interval_s * NS_PER_S),
        ),
        plots=not args.no_plots,
        progress=sys.stderr.isatty() if args.progress is None else args.progress,
        title=args.title,
    )


def _fail(message: str, code: int) -> int:
    print(f"backtest: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging("backtest", args.log_level, "console" if sys.stderr.isatty() else "json")
    try:
        settings = load_settings(args.config)
        base = options_from(args, settings.database_url)
        variants = sweep.variants(base, args.kelly_fraction, args.min_edge, args.route)
        for variant in variants:
            trading_settings(settings, variant.options)
    except ValidationError as exc:
        return _fail(f"bad trading settings: {exc.errors()[0]['msg']}", 2)
    except (ConfigError, ValueError) as exc:
        return _fail(str(exc), 2)
    try:
        if len(variants) > 1:
            table = sweep.run_all(args.config, variants, base.out, args.jobs)
            print(table)
            return 0
        outcome = asyncio.run(run(settings, variants[0].options))
    except RecordingError as exc:
        return _fail(str(exc), 1)
    except OSError as exc:
        return _fail(f"cannot write {args.out}: {exc.strerror or exc}", 1)
    print("\n".join(summary_lines(outcome)))
    return 0
