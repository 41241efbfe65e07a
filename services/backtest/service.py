"""The backtest command (its capability arrives with issue #9)."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = "Replay recorded market data through strategy, risk and paper execution."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.backtest", description=DESCRIPTION)
    parser.add_argument("--input", nargs="+", metavar="FILE", help="recorded data files")
    parser.add_argument("--format", choices=["kalshi-ws", "tob-csv", "db"], help="input format")
    parser.add_argument("--out", metavar="DIR", help="where report.json, trades.csv go")
    parser.parse_args(argv)
    print("backtest: not built yet (issue #9)", file=sys.stderr)
    return 2
