"""``python -m services.backtest`` as a user runs it: outputs, identical reruns, sweeps, errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.backtest.service import main

EVENT = "KXHIGHNY-27JAN15"
MARKETS = [f"{EVENT}-T40", f"{EVENT}-B40.5", f"{EVENT}-T41"]


def stamp(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"2027-01-15T{10 + hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def write_tob(path: Path, *, arb_at_s: int = 600, rows: int = 120) -> Path:
    """Top-of-book polls every 30 s; at ``arb_at_s`` every NO bid rises to 70 for a while."""
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["timestamp", "market_ticker", "best_yes_bid", "best_no_bid"])
        for n in range(rows):
            seconds = n * 30
            mispriced = arb_at_s <= seconds < arb_at_s + 300
            for index, market in enumerate(MARKETS):
                yes = 25 + (n + index) % 3
                no = 70 if mispriced else 62 + (n * 7 + index) % 3
                writer.writerow([stamp(seconds), market, yes, no])
    return path


def run_cli(*args: str, hash_seed: str = "0") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    return subprocess.run(
        [sys.executable, "-m", "services.backtest", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_a_run_writes_every_output_and_reruns_are_byte_identical(tmp_path: Path):
    data = write_tob(tmp_path / "day.csv")
    outs = []
    for run, hash_seed in (("a", "1"), ("b", "2")):  # other set orders, same results
        out = tmp_path / run
        done = run_cli("--input", str(data), "--format", "tob-csv", "--out", str(out),
                       "--depth", "1000", "--seed", "3", "--latency-ms", "2",
                       "--jitter-ms", "3", hash_seed=hash_seed)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "backtest:" in done.stdout and "x real time" in done.stdout
        outs.append(out)
    names = ["report.json", "trades.csv", "signals.csv", "equity.png", "report.html"]
    for name in names:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    report = json.loads((outs[0] / "report.json").read_text())
    assert report["signals"]["approved"] >= 1
    assert report["total"]["fills"] == 3
    assert report["total"]["pnl_micros"] > 0
    assert report["settings"]["latency_ns"] == 2_000_000
    with (outs[0] / "signals.csv").open() as f:
        first = next(csv.DictReader(f))
    assert first["kind"] == "atomic_yes" and first["event_ticker"] == EVENT
    assert first["ts"].startswith("2027-01-15T10:10:00")
    assert sorted(first["legs"].split(";")) == sorted(f"{m}:yes:30" for m in MARKETS)


def test_a_sweep_runs_every_combination_and_tabulates_them(tmp_path: Path, capsys):
    data = write_tob(tmp_path / "day.csv")
    out = tmp_path / "sweep"
    code = main(["--input", str(data), "--format", "tob-csv", "--out", str(out),
                 "--depth", "100000", "--kelly-fraction", "0.02,0.05", "--route", "sniper,maker",
                 "--no-plots", "--jobs", "2"])  # fmt: skip
    assert code == 0
    table = capsys.readouterr().out
    with (out / "sweep.csv").open() as f:
        rows = {row["variant"]: row for row in csv.DictReader(f)}
    assert set(rows) == {
        "kelly0.02-sniper",
        "kelly0.02-maker",
        "kelly0.05-sniper",
        "kelly0.05-maker",
    }
    assert all(row["error"] == "" for row in rows.values())
    for name in rows:
        assert (out / name / "report.json").is_file()
        assert name in table
    # a larger budget buys more sets (the book is deep; both stay under risk's order cap)
    small = json.loads((out / "kelly0.02-sniper" / "report.json").read_text())["total"]
    large = json.loads((out / "kelly0.05-sniper" / "report.json").read_text())["total"]
    assert large["contracts_centi"] > small["contracts_centi"] > 0


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--format", "tob-csv", "--input", "missing.csv"], 1, "missing.csv: no such file"),
        (["--input", "x.csv"], 2, "say what to replay"),
        (["--format", "tob-csv", "--input", "x.csv", "--kelly-fraction", "1.5"], 2, "bad trading"),
        (["--format", "tob-csv", "--input", "x.csv", "--route", "fast"], 2, "--route"),
        (["--from-db"], 1, "--from-db needs --since and --until"),
    ],
)
def test_bad_input_gets_a_clear_error(tmp_path: Path, capsys, monkeypatch, args, code, says):
    monkeypatch.chdir(tmp_path)  # restored afterwards: later tests run modules from the root
    (tmp_path / "x.csv").write_text("timestamp,market_ticker,best_yes_bid,best_no_bid\n")
    assert main([*args, "--out", str(tmp_path / "out")]) == code
    assert says in capsys.readouterr().err


def test_a_malformed_file_names_its_line(tmp_path: Path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text(
        "timestamp,market_ticker,best_yes_bid,best_no_bid\n2027-01-15T10:00:00,X-1-T4,abc,50\n"
    )
    assert main(["--format", "tob-csv", "--input", str(path), "--out", str(tmp_path / "o")]) == 1
    assert f"{path}:2" in capsys.readouterr().err
