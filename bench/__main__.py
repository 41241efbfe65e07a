"""``python -m bench [NAME ...]``: run the benchmarks, print a table and one line per figure."""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from bench.figures import Figure, print_table

SUITES = [
    "codec",
    "bus",
    "ingest",
    "bench_simulator",
    "scan",
    "strategy",
    "risk",
    "pipeline",
    "load",
    "replay",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("suites", nargs="*", default=SUITES, help=f"any of {SUITES}")
    args = parser.parse_args(argv)
    figures: list[Figure] = []
    for name in args.suites:
        try:
            suite = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError:
            print(f"bench: suite {name!r} not present, skipped", file=sys.stderr)
            continue
        started = time.monotonic()
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        for figure in suite.run():
            figures.append(figure if isinstance(figure, Figure) else Figure(*figure))
        print(f"bench: {name} done in {time.monotonic() - started:.1f} s", file=sys.stderr)
    print_table(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
