"""The web UI in headless Chromium against a running stack (simulator, ingest, strategy,
risk, execution on paper, the gateway): the page loads, its numbers change as the
bot trades, the Backtests panel lists a run on disk, the kill switch needs the token
and, with it, halts trading and clears the resting orders. A screenshot is kept in
tests/artifacts/.

Debian's Chromium drives it (``make test`` installs it where it can); Playwright's
own browser download does not work here. Without Chromium the test skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn

from services.backtest.plots import write_plots
from services.dashboard.app import create_app
from services.execution import service as execution_service
from services.ingest.service import Ingest, connect_store, load_signer
from services.risk import service as risk_service
from services.strategy.service import Strategy
from shared.performance import EquityPoint
from tests.services.simulator.kit import start_server
from tests.services.stack import beating, context, stack_settings, start, stop_all, wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
TOKEN = "browser-test-token-123"

playwright_api = pytest.importorskip("playwright.async_api")
if not Path(CHROMIUM).exists():
    pytest.skip(
        "Debian's chromium is not installed (make test installs it)", allow_module_level=True
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def sim():
    server = start_server(flow_rate=100, agents=True, mispricing_rate=0.5)
    yield server
    server.stop()


@contextlib.asynccontextmanager
async def stack(sim, aredis, key_prefix, database_url, tmp_path) -> AsyncIterator[str]:
    """Every service in this process; yields the gateway's URL."""
    port = free_port()
    settings = stack_settings(
        sim,
        key_prefix,
        database_url,
        tmp_path,
        metrics={"enabled": False},
        dashboard_token=TOKEN,
        dashboard={"port": port, "backtests_dir": str(tmp_path / "backtests")},
        risk={"maker_strategies": ["weather"]},
        feeds={  # the simulator's NWS: the weather model prices, its one-leg signals rest
            "nws": {
                "enabled": True,
                "base_url": f"{sim.base_url}/nws",
                "forecast": False,
                "stations": ["KNYC", "KMDW", "KMIA", "KAUS", "KLAX", "KPHL", "KDEN", "KATL"],
            }
        },
    )
    names = ("ingest", "strategy", "risk", "execution")
    contexts = {name: context(name, settings, aredis) for name in names}
    pool = await connect_store(contexts["ingest"])
    ingest = Ingest(contexts["ingest"], load_signer(contexts["ingest"]), pool)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, aredis), host="127.0.0.1", port=port, log_config=None)
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    tasks = [
        start(ingest.run(), "ingest"),
        start(Strategy(contexts["strategy"]).run(), "strategy"),
        start(risk_service.run(contexts["risk"]), "risk"),
        start(execution_service.run(contexts["execution"]), "execution"),
    ]
    beats = beating(contexts["ingest"])
    serving = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started, 15, "the gateway listening")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        beats.cancel()
        await stop_all(list(contexts.values()), tasks)
        await pool.close()


def write_backtest(root: Path) -> None:
    """One finished run for the Backtests panel: report.json and the real plots."""
    start = 1_767_225_600_000_000_000
    figures = {
        "pnl_micros": 12_340_000,
        "fees_micros": 0,
        "turnover_micros": 0,
        "trades": 3,
        "win_rate": None,
        "sharpe": 1.5,
        "sortino": None,
        "calmar": None,
        "max_drawdown_micros": 0,
        "max_drawdown_ppm": 1_234,
        "max_drawdown_duration_ns": 0,
        "fills": 3,
        "start_nav_micros": 1_000_000_000,
        "end_nav_micros": 1_012_340_000,
    }
    report = {
        "title": "browser run",
        "span": {"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-02T00:00:00+00:00"},
        "total": figures,
        "strategies": {},
    }
    run = root / "browser-run"
    run.mkdir(parents=True)
    (run / "report.json").write_text(json.dumps(report))
    curve = [EquityPoint(start, 1_000_000_000), EquityPoint(start + 10**12, 1_012_340_000)]
    write_plots(run, {"total": curve}, [], report, title="browser run")


async def text_of(page, selector: str) -> str:
    return (await page.locator(selector).inner_text()).strip()


async def wait_text(page, selector: str, predicate, within_s: float, what: str) -> str:
    async with asyncio.timeout(within_s):
        while True:
            text = await text_of(page, selector)
            if predicate(text):
                return text
            await asyncio.sleep(0.2)
    raise AssertionError(what)


async def test_the_page_trades_live_and_the_kill_switch_needs_and_obeys_the_token(
    sim, aredis, key_prefix, database_url, tmp_path
):
    ARTIFACTS.mkdir(exist_ok=True)
    write_backtest(tmp_path / "backtests")
    async with (
        stack(sim, aredis, key_prefix, database_url, tmp_path) as url,
        playwright_api.async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = await browser.new_page(viewport={"width": 1600, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(url)

        state = await wait_text(page, "#trading-state", lambda t: t == "ACTIVE", 30, "ACTIVE")
        assert state == "ACTIVE"
        await wait_text(page, "#nav", lambda t: "$" in t, 20, "the NAV shown")
        await wait_text(page, "#fills-count", lambda t: t not in ("", "0"), 60, "a fill")
        async with asyncio.timeout(60):  # a maker order resting, for the kill to clear
            while await page.locator("#open-orders tr").count() == 0:
                await asyncio.sleep(0.2)
        await page.screenshot(path=str(ARTIFACTS / "dashboard-trading.png"), full_page=True)

        # the Backtests panel lists the run on disk and links its page
        row = await wait_text(page, "#backtests", lambda t: "browser-run" in t, 10, "the run")
        assert "+$12.34" in row and "1.50" in row and "0.12%" in row
        link = page.locator('#backtests a:text("report")')
        assert await link.get_attribute("href") == "/backtests/browser-run/report.html"
        report_page = await page.request.get(f"{url}/backtests/browser-run/report.html")
        assert report_page.ok and "<svg" in await report_page.text()

        # no token: the kill switch is refused and nothing changes
        await page.click("#kill-button")
        await page.click("#kill-confirm")
        await wait_text(page, "#control-message", bool, 10, "a refusal")
        assert "token" in (await text_of(page, "#control-message")).lower()
        assert await text_of(page, "#trading-state") == "ACTIVE"

        # with the token: HALTED, and the resting orders are gone
        await page.fill("#token-input", TOKEN)
        await page.click("#token-save")
        await page.click("#kill-button")
        await page.click("#kill-confirm")
        await wait_text(page, "#trading-state", lambda t: t == "HALTED", 15, "HALTED")
        async with asyncio.timeout(15):
            while await page.locator("#open-orders tr").count() > 0:
                await asyncio.sleep(0.2)
        await page.screenshot(path=str(ARTIFACTS / "dashboard-halted.png"), full_page=True)
        await browser.close()
        assert errors == [], errors
