"""The gateway's backtest routes over a directory of runs: the list (by name, broken
runs flagged, a missing directory empty), one run's report, its files, and nothing
else: no other file name, no hidden run, nothing outside the directory."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from fastapi.testclient import TestClient

from services.dashboard import backtests
from services.dashboard.app import create_app
from shared.config import Settings, load_settings
from tests.conftest import redis_url
from tests.services.dashboard.test_gateway import wait_for

PNG = b"\x89PNG\r\n\x1a\n-not-really-"


def report(title: str, pnl: int, sharpe: float | None = 1.5) -> dict[str, Any]:
    total = {
        "pnl_micros": pnl,
        "fees_micros": 10_000,
        "turnover_micros": 2_000_000,
        "trades": 4,
        "win_rate": 0.5,
        "sharpe": sharpe,
        "sortino": None,
        "calmar": None,
        "max_drawdown_micros": 1_000_000,
        "max_drawdown_ppm": 1_234,
        "max_drawdown_duration_ns": 60_000_000_000,
        "fills": 6,
        "start_nav_micros": 1_000_000_000,
        "end_nav_micros": 1_000_000_000 + pnl,
    }
    return {
        "title": title,
        "span": {"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-02T00:00:00+00:00"},
        "total": total,
        "strategies": {"arbitrage": total},
    }


def write_run(root: Path, name: str, body: dict[str, Any] | str, files: bool = True) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "report.json").write_text(body if isinstance(body, str) else json.dumps(body))
    if files:
        (run / "report.html").write_text("<!doctype html><h1>a run</h1>")
        (run / "equity.png").write_bytes(PNG)
        (run / "trades.csv").write_text("ts,market\n")
        (run / "signals.csv").write_text("ts,signal\n")
    return run


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "backtests"
    write_run(root, "2026-01-02-b", report("day two", -2_500_000, sharpe=None), files=False)
    write_run(root, "2026-01-01-a", report("day one", 12_340_000))
    write_run(root, "broken", "{not json")
    write_run(root, "half", {"title": "no figures", "span": {"start": "", "end": ""}})
    (root / "in-progress").mkdir()
    write_run(root, ".hidden", report("hidden", 1))
    (root / "secret.txt").write_text("outside any run")
    return root


def settings_for(key_prefix: str, database_url: str, backtests_dir: Path) -> Settings:
    return load_settings(
        redis_url=redis_url(),
        database_url=database_url,
        key_prefix=key_prefix,
        bus={"shards": 1},
        dashboard={"backtests_dir": str(backtests_dir)},
    )


@contextlib.contextmanager
def gateway(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, aioredis.Redis.from_url(redis_url()))) as client:
        # the backtest routes need no Postgres, but a gateway stopped while it is still
        # migrating the schema can hang on shutdown: start it the way test_gateway does
        wait_for(lambda: client.get("/api/orders").status_code == 200)
        yield client


@pytest.fixture
def client(root: Path, key_prefix: str, database_url: str) -> Iterator[TestClient]:
    with gateway(settings_for(key_prefix, database_url, root)) as client:
        yield client


def test_the_list_is_by_name_with_headline_figures_and_broken_runs_flagged(client: TestClient):
    response = client.get("/api/backtests")
    assert response.status_code == 200
    runs = response.json()["backtests"]
    assert [run["name"] for run in runs] == [
        "2026-01-01-a",
        "2026-01-02-b",
        "broken",
        "half",
        "in-progress",
    ]
    assert runs[0] == {
        "name": "2026-01-01-a",
        "title": "day one",
        "span": {"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-02T00:00:00+00:00"},
        "pnl_micros": 12_340_000,
        "trades": 4,
        "sharpe": 1.5,
        "max_drawdown_ppm": 1_234,
        "files": ["report.html", "equity.png", "trades.csv", "signals.csv"],
    }
    assert runs[1]["pnl_micros"] == -2_500_000 and runs[1]["sharpe"] is None
    assert runs[1]["files"] == []
    assert "not valid JSON" in runs[2]["error"] or "Expecting" in runs[2]["error"]
    assert "total" in runs[3]["error"] and "title" not in runs[3]
    assert "no report.json" in runs[4]["error"]


def test_one_report_is_served_as_written(client: TestClient, root: Path):
    response = client.get("/api/backtests/2026-01-01-a")
    assert response.status_code == 200
    assert response.json() == json.loads((root / "2026-01-01-a" / "report.json").read_text())


def test_a_broken_report_is_a_clear_error_for_that_run_only(client: TestClient):
    broken = client.get("/api/backtests/broken")
    assert broken.status_code == 500
    assert broken.json()["detail"].startswith("backtest 'broken': report.json is broken")
    half = client.get("/api/backtests/half")
    assert half.status_code == 500 and "total: Field required" in half.json()["detail"]
    assert client.get("/api/backtests/in-progress").status_code == 404
    assert client.get("/api/backtests/nope").status_code == 404
    assert client.get("/api/backtests/2026-01-01-a").status_code == 200


def test_a_run_s_files_are_served_with_their_types(client: TestClient):
    page = client.get("/backtests/2026-01-01-a/report.html")
    assert page.status_code == 200 and page.text == "<!doctype html><h1>a run</h1>"
    assert page.headers["content-type"].startswith("text/html")
    assert "sandbox" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    png = client.get("/backtests/2026-01-01-a/equity.png")
    assert png.status_code == 200 and png.content == PNG
    assert png.headers["content-type"] == "image/png"
    trades = client.get("/backtests/2026-01-01-a/trades.csv")
    assert trades.status_code == 200 and trades.headers["content-type"].startswith("text/csv")
    assert client.get("/backtests/2026-01-01-a/signals.csv").text == "ts,signal\n"
    assert client.get("/backtests/2026-01-02-b/report.html").status_code == 404  # not written


@pytest.mark.parametrize(
    "path",
    [
        "/backtests/2026-01-01-a/report.json",  # not an artifact
        "/backtests/2026-01-01-a/secret.txt",
        "/backtests/.hidden/report.html",
        "/backtests/%2E%2E/report.html",  # .. as the run
        "/backtests/./secret.txt",
        "/backtests/2026-01-01-a/%2E%2E",
        "/backtests/2026-01-01-a/..%2Fsecret.txt",
        "/backtests/..%2F..%2Fetc/passwd",
        "/backtests/2026-01-01-a%2F..%2F..%2Fetc/passwd",
        "/backtests/..%5Csecret.txt/report.html",  # a backslash
        "/api/backtests/%2E%2E",
        "/api/backtests/..%2Fsecret.txt",
        "/api/backtests/.hidden",
    ],
)
def test_nothing_but_a_run_s_artifacts_is_served(client: TestClient, path: str):
    response = client.get(path)
    assert response.status_code == 404, response.text
    assert "outside any run" not in response.text and "a run" not in response.text


def test_symlinks_out_of_the_directory_are_refused(client: TestClient, root: Path, tmp_path: Path):
    outside = write_run(tmp_path / "elsewhere", "run", report("outside", 1))
    (root / "linked-run").symlink_to(outside, target_is_directory=True)
    (root / "2026-01-01-a" / "signals.csv").unlink()
    (root / "2026-01-01-a" / "signals.csv").symlink_to(root / "secret.txt")
    (root / "2026-01-01-a" / "trades.csv").unlink()
    (root / "2026-01-01-a" / "trades.csv").symlink_to(outside / "trades.csv")
    assert client.get("/backtests/linked-run/report.html").status_code == 404
    assert client.get("/api/backtests/linked-run").status_code == 404
    listed = {run["name"]: run for run in client.get("/api/backtests").json()["backtests"]}
    assert "error" in listed["linked-run"]
    # a link that stays inside the directory is fine; one that leaves it is not
    assert client.get("/backtests/2026-01-01-a/signals.csv").text == "outside any run"
    assert client.get("/backtests/2026-01-01-a/trades.csv").status_code == 404
    assert listed["2026-01-01-a"]["files"] == ["report.html", "equity.png", "signals.csv"]


def test_a_missing_directory_is_an_empty_list(tmp_path: Path, key_prefix: str, database_url: str):
    with gateway(settings_for(key_prefix, database_url, tmp_path / "never-made")) as client:
        assert client.get("/api/backtests").json() == {"backtests": []}
        assert client.get("/api/backtests/anything").status_code == 404
        assert client.get("/backtests/anything/report.html").status_code == 404


def test_the_default_directory_is_backtests():
    assert Settings().dashboard.backtests_dir == Path("backtests")


@pytest.mark.parametrize("name", ["", ".", "..", "../backtests", "a/b", "a\\b", ".hidden", "x\0"])
def test_only_plain_names_are_runs_whatever_the_router_lets_through(root: Path, name: str):
    with pytest.raises(backtests.BacktestError) as refused:
        backtests.artifact(root, name, "report.html")
    assert refused.value.status == 404
    with pytest.raises(backtests.BacktestError):
        backtests.read_report(root, name)
    with pytest.raises(backtests.BacktestError):
        backtests.artifact(root, "2026-01-01-a", f"{name}/report.html" if name else "")
