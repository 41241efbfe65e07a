"""One backtest: read the input, replay it, write the outputs.

:class:`Options` is everything a run depends on; :func:`run` does the run and
returns an :class:`Outcome` (the report, and how fast it went, which is not in
the report: the report must not depend on the machine).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm

from services.backtest import report as reports
from services.backtest.clock import NS_PER_S
from services.backtest.kalshi_ws import read_kalshi_ws
from services.backtest.plots import TradeMarker, write_plots
from services.backtest.recorded import read_recorded
from services.backtest.recording import Recording, RecordingError
from services.backtest.replay import Replay, ReplayConfig, Results
from services.backtest.tickers import load_metadata
from services.backtest.tob_csv import read_tob_csv
from services.execution.report import money
from services.strategy.signals import ARBITRAGE
from shared.config import Settings
from shared.messages import MarketInfo
from shared.strategy_config import StrategySettings

Format = Literal["kalshi-ws", "tob-csv", "db"]
Route = Literal["config", "sniper", "maker"]


@dataclass(frozen=True, slots=True)
class Options:
    """What a backtest reads, how it trades, how it runs, where it writes."""

    out: Path
    format: Format
    inputs: tuple[Path, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    database_url: str = ""
    metadata: Path | None = None
    no_price: Literal["no", "yes"] = "no"
    depth_centi: int = 10_000
    strict: bool = True
    kelly_fraction: float | None = None
    min_edge: float | None = None
    route: Route = "config"
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    plots: bool = True
    progress: bool = False
    title: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    out: Path
    report: dict[str, Any]
    wall_s: float
    sim_s: float
    ticks: int
    items: int
    results: Results

    @property
    def speed_x(self) -> float:
        return self.sim_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def items_per_s(self) -> float:
        return self.items / self.wall_s if self.wall_s > 0 else 0.0


# --- settings ----------------------------------------------------------------------------


def trading_settings(settings: Settings, options: Options) -> Settings:
    """The settings with the run's overrides (validated like any settings)."""
    strategy = settings.strategy.model_dump()
    if options.kelly_fraction is not None:
        strategy["kelly_fraction"] = options.kelly_fraction
    if options.min_edge is not None:
        strategy["min_edge"] = options.min_edge
    risk = settings.risk.model_dump()
    if options.route == "sniper":
        risk["maker_strategies"] = []
    elif options.route == "maker":
        risk["maker_strategies"] = [ARBITRAGE, *settings.strategy.models]
    return settings.model_copy(
        update={
            "strategy": StrategySettings.model_validate(strategy),
            "risk": type(settings.risk).model_validate(risk),
        }
    )


def describe(settings: Settings, options: Options) -> dict[str, Any]:
    """What went in, for report.json (paths as given: the same run, the same bytes)."""
    strategy, risk = settings.strategy, settings.risk
    return {
        "title": options.title or "Backtest",
        "input": {
            "format": options.format,
            "files": [str(p) for p in options.inputs],
            "since": options.since.isoformat() if options.since else None,
            "until": options.until.isoformat() if options.until else None,
        },
        "seed": options.replay.seed,
        "settings": {
            "bankroll_micros": risk.bankroll,
            "kelly_fraction": strategy.kelly_fraction,
            "min_edge": strategy.min_edge,
            "route": options.route,
            "maker_strategies": list(risk.maker_strategies),
            "arbitrage": strategy.arbitrage,
            "models": list(strategy.models),
            "scan_hz": strategy.scan_hz,
            "signal_ttl_s": strategy.signal_ttl_s,
            "latency_ns": options.replay.latency_ns,
            "jitter_ns": options.replay.jitter_ns,
            "equity_interval_ns": options.replay.equity_interval_ns,
        },
    }


# --- input -------------------------------------------------------------------------------


def _metadata(options: Options) -> list[MarketInfo] | None:
    return None if options.metadata is None else load_metadata(options.metadata)


async def open_recording(options: Options) -> Recording:
    """The input as a Recording; RecordingError when it cannot be read."""
    if options.format == "db":
        if options.since is None or options.until is None:
            raise RecordingError("--from-db needs --since and --until")
        return await read_recorded(options.database_url, options.since, options.until)
    if not options.inputs:
        raise RecordingError(f"--format {options.format} needs --input FILE [FILE ...]")
    for path in options.inputs:
        if not path.is_file():
            raise RecordingError(f"{path}: no such file")
    if options.format == "tob-csv":
        return read_tob_csv(
            list(options.inputs), depth=options.depth_centi, metadata=_metadata(options)
        )
    return read_kalshi_ws(
        list(options.inputs),
        no_price=options.no_price,
        metadata=_metadata(options),
        strict=options.strict,
    )


# --- the run -----------------------------------------------------------------------------


def _bar(recording: Recording, options: Options) -> tqdm[Any] | None:
    if not options.progress:
        return None
    return tqdm(
        total=recording.size,
        unit="tick",
        unit_scale=True,
        desc="replay",
        file=sys.stderr,
        mininterval=0.5,
        dynamic_ncols=True,
    )


async def replay(settings: Settings, options: Options) -> tuple[Results, Recording, float]:
    recording = await open_recording(options)
    engine = Replay(settings, recording.markets, options.replay)
    bar = _bar(recording, options)
    started = time.perf_counter()
    try:
        results = await engine.run(recording, None if bar is None else bar.update)
    finally:
        if bar is not None:
            bar.close()
    return results, recording, time.perf_counter() - started


def write_outputs(options: Options, results: Results, report: dict[str, Any]) -> list[Path]:
    paths = reports.write(options.out, results, report)
    if options.plots:
        markers = [
            TradeMarker(r.fill.ts_ns, r.strategy, r.fill.action.value, r.fill.market)
            for r in results.fills
        ]
        paths += write_plots(
            options.out, results.curves, markers, report, title=str(report["title"])
        )
    return paths


async def run(settings: Settings, options: Options) -> Outcome:
    """Replay ``options``' input under ``settings`` and write every output."""
    settings = trading_settings(settings, options)
    results, recording, wall_s = await replay(settings, options)
    if results.ticks == 0:
        raise RecordingError(f"{recording.name}: no market data to replay")
    meta = describe(settings, options)
    meta["input"]["name"] = recording.name
    meta["input"]["markets"] = len(recording.markets)
    report = reports.build(results, meta)
    write_outputs(options, results, report)
    return Outcome(
        out=options.out,
        report=report,
        wall_s=wall_s,
        sim_s=(results.end_ns - results.start_ns) / NS_PER_S,
        ticks=results.ticks,
        items=results.items,
        results=results,
    )


def summary_lines(outcome: Outcome) -> Sequence[str]:
    total = outcome.report["total"]
    signals = outcome.report["signals"]
    return [
        f"backtest: {outcome.ticks:,} ticks ({outcome.items:,} messages) over "
        f"{outcome.sim_s:,.0f} s of data in {outcome.wall_s:.2f} s: "
        f"{outcome.items_per_s:,.0f} messages/s, {outcome.speed_x:,.0f}x real time",
        f"  signals {signals['total']:,} (approved {signals['approved']:,}), "
        f"fills {total['fills']:,}, P&L {money(total['pnl_micros'])} "
        f"(fees {money(total['fees_micros'])})",
        f"  written to {outcome.out}/: report.json, trades.csv, signals.csv"
        + (", equity.png, report.html" if (outcome.out / "equity.png").exists() else ""),
    ]
