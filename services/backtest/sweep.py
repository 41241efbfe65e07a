"""Parameter sweeps: every combination of Kelly fraction, edge threshold and route, in parallel.

Each variant is a whole backtest in its own process (``spawn``: nothing shared
but the input files), written to ``DIR/<variant>/`` with its own report and
plots. When all are done, ``DIR/sweep.csv`` holds one row per variant and the
same table is printed, best P&L first.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import itertools
import multiprocessing
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

from services.backtest.recording import RecordingError
from services.backtest.runner import Options, Route, run
from services.execution.report import money
from shared.config import load_settings

ROUTES: Final = ("config", "sniper", "maker")
COLUMNS: Final = (
    "variant",
    "kelly_fraction",
    "min_edge",
    "route",
    "pnl_micros",
    "fees_micros",
    "fills",
    "signals",
    "win_rate",
    "sharpe",
    "max_drawdown_ppm",
    "error",
)


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    options: Options


def _numbers(text: str | None, what: str) -> list[float | None]:
    if text is None:
        return [None]
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--{what}: not a comma-separated list of numbers: {text!r}") from None


def _routes(text: str | None, default: Route) -> list[Route]:
    if text is None:
        return [default]
    routes = [part.strip() for part in text.split(",")]
    for route in routes:
        if route not in ROUTES:
            raise ValueError(f"--route: {route!r} is none of {', '.join(ROUTES)}")
    return [cast(Route, route) for route in routes]


def _name(kelly: float | None, edge: float | None, route: Route, swept: Sequence[bool]) -> str:
    parts = [("kelly", kelly), ("edge", edge), ("", route)]
    return "-".join(
        f"{label}{value:g}" if isinstance(value, float) else f"{label}{value}"
        for (label, value), varies in zip(parts, swept, strict=True)
        if varies
    )


def variants(
    base: Options, kelly: str | None, min_edge: str | None, route: str | None
) -> list[Variant]:
    """One variant per combination; a single one (into ``base.out``) when nothing varies."""
    kellys, edges = _numbers(kelly, "kelly-fraction"), _numbers(min_edge, "min-edge")
    routes = _routes(route, base.route)
    swept = (len(kellys) > 1, len(edges) > 1, len(routes) > 1)
    combos = list(itertools.product(kellys, edges, routes))
    if len(combos) == 1:
        k, e, r = combos[0]
        return [Variant("", dataclasses.replace(base, kelly_fraction=k, min_edge=e, route=r))]
    out: list[Variant] = []
    for k, e, r in combos:
        name = _name(k, e, r, swept)
        title = f"{base.title or 'Backtest'}: {name}"
        options = dataclasses.replace(
            base,
            kelly_fraction=k,
            min_edge=e,
            route=r,
            out=base.out / name,
            progress=False,
            title=title,
        )
        out.append(Variant(name, options))
    return out


def run_one(config: str | None, variant: Variant) -> dict[str, Any]:
    """One variant, in a worker process: its row of the table."""
    row: dict[str, Any] = {
        "variant": variant.name,
        "kelly_fraction": variant.options.kelly_fraction,
        "min_edge": variant.options.min_edge,
        "route": variant.options.route,
    }
    try:
        outcome = asyncio.run(run(load_settings(config), variant.options))
    except (RecordingError, OSError, ValueError) as exc:
        return {**row, "error": str(exc)}
    settings, total = outcome.report["settings"], outcome.report["total"]
    return {
        **row,
        "kelly_fraction": settings["kelly_fraction"],
        "min_edge": settings["min_edge"],
        "pnl_micros": total["pnl_micros"],
        "fees_micros": total["fees_micros"],
        "fills": total["fills"],
        "signals": outcome.report["signals"]["total"],
        "win_rate": total["win_rate"],
        "sharpe": total["sharpe"],
        "max_drawdown_ppm": total["max_drawdown_ppm"],
        "error": "",
    }


def run_all(config: str | None, todo: Sequence[Variant], out: Path, jobs: int) -> str:
    """Every variant across processes; writes sweep.csv and returns the printed table."""
    workers = min(len(todo), jobs if jobs > 0 else os.cpu_count() or 1)
    rows: dict[str, dict[str, Any]] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(run_one, config, v): v for v in todo}
        for done, future in enumerate(as_completed(futures), start=1):
            row = future.result()
            rows[row["variant"]] = row
            outcome = row["error"] or f"P&L {money(row['pnl_micros'])}, {row['fills']} fills"
            print(f"[{done}/{len(todo)}] {row['variant']}: {outcome}", file=sys.stderr)
    ordered = [rows[v.name] for v in todo]
    write_table(out / "sweep.csv", ordered)
    return render(ordered)


def write_table(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: "" if row.get(c) is None else row.get(c, "") for c in COLUMNS})


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def render(rows: Sequence[dict[str, Any]]) -> str:
    """The sweep as a text table, best P&L first (failed variants last)."""
    ranked = sorted(rows, key=lambda r: (bool(r["error"]), -(r.get("pnl_micros") or 0)))
    header = (
        f"{'variant':<32}{'P&L':>16}{'fees':>12}{'fills':>8}{'win':>8}{'Sharpe':>8}{'max DD':>9}"
    )
    lines = [header, "-" * len(header)]
    for r in ranked:
        if r["error"]:
            lines.append(f"{r['variant']:<32}  failed: {r['error']}")
            continue
        win = "n/a" if r["win_rate"] is None else f"{r['win_rate'] * 100:.0f}%"
        drawdown = f"{r['max_drawdown_ppm'] / 10_000:.2f}%"
        lines.append(
            f"{r['variant']:<32}{money(r['pnl_micros']):>16}{money(r['fees_micros']):>12}"
            f"{r['fills']:>8}{win:>8}{_ratio(r['sharpe']):>8}{drawdown:>9}"
        )
    return "\n".join(lines)
