"""Backtest runs on disk, for the gateway: the list, one run's report, its files.

A run is a subdirectory of ``dashboard.backtests_dir`` (what ``python -m
services.backtest --out DIR`` wrote). Run and file names come from URLs, so a
run must be a plain child of that directory, only the known artifacts are
served, and every path is resolved (symlinks included) and checked to stay
inside the directory before anything is read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError

REPORT_JSON: Final = "report.json"
ARTIFACTS: Final = ("report.html", "equity.png", "trades.csv", "signals.csv")
"""The only files of a run the gateway serves, in the order the UI lists them."""


class BacktestError(Exception):
    """A run, or a file of one, that cannot be shown; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Span(BaseModel):
    start: str
    end: str


class _Total(BaseModel):
    model_config = ConfigDict(strict=True)

    pnl_micros: int
    trades: int
    sharpe: float | None
    max_drawdown_ppm: int


class _Report(BaseModel):
    """The part of report.json the list shows; a report without it is broken."""

    title: str
    span: _Span
    total: _Total


def is_plain_name(name: str) -> bool:
    """A single visible path component: no separators, no ``.``/``..``, no hidden names."""
    return bool(name) and not name.startswith(".") and not any(c in name for c in "/\\\0")


def _inside(root: Path, path: Path) -> Path:
    """``path`` resolved, if it is under ``root`` (resolved); else a 404."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise BacktestError(404, f"{path.name!r} is outside the backtests directory")
    return resolved


def run_dir(root: Path, name: str) -> Path:
    """The directory of run ``name`` under ``root``; a 404 for anything else."""
    if not is_plain_name(name):
        raise BacktestError(404, f"no backtest named {name!r}")
    path = _inside(root, root / name)
    if not path.is_dir():
        raise BacktestError(404, f"no backtest named {name!r}")
    return path


def _broken(name: str, exc: Exception) -> BacktestError:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the document"
        why = f"{where}: {first['msg']}"
    else:
        why = str(exc)
    return BacktestError(500, f"backtest {name!r}: report.json is broken ({why})")


def read_report(root: Path, name: str) -> dict[str, Any]:
    """Run ``name``'s report.json as written; a 404 without one, a 500 when it is broken."""
    path = _inside(root, run_dir(root, name) / REPORT_JSON)
    if not path.is_file():
        raise BacktestError(404, f"backtest {name!r} has no {REPORT_JSON}")
    try:
        report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        _Report.model_validate(report)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValidationError) as exc:
        raise _broken(name, exc) from exc
    return report


def artifact(root: Path, name: str, file: str) -> Path:
    """One of run ``name``'s servable files; a 404 for any other name or a missing file."""
    if file not in ARTIFACTS:
        raise BacktestError(404, f"{file!r} is not a backtest artifact ({', '.join(ARTIFACTS)})")
    path = _inside(root, run_dir(root, name) / file)
    if not path.is_file():
        raise BacktestError(404, f"backtest {name!r} has no {file}")
    return path


def summary(root: Path, name: str) -> dict[str, Any]:
    """One row of the list: the headline figures, or the reason the run cannot be read."""
    try:
        report = read_report(root, name)
    except BacktestError as exc:
        return {"name": name, "error": exc.message}
    total = report["total"]
    return {
        "name": name,
        "title": report["title"],
        "span": {"start": report["span"]["start"], "end": report["span"]["end"]},
        "pnl_micros": total["pnl_micros"],
        "trades": total["trades"],
        "sharpe": total["sharpe"],
        "max_drawdown_ppm": total["max_drawdown_ppm"],
        "files": [file for file in ARTIFACTS if _servable(root, name, file)],
    }


def _servable(root: Path, name: str, file: str) -> bool:
    try:
        artifact(root, name, file)
    except BacktestError:
        return False
    return True


def list_runs(root: Path) -> list[dict[str, Any]]:
    """Every run under ``root``, by name; none when the directory does not exist."""
    if not root.is_dir():
        return []
    names = sorted(entry.name for entry in root.iterdir() if entry.is_dir())
    return [summary(root, name) for name in names if is_plain_name(name)]
