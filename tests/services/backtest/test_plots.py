"""The backtest's chart and page: byte-identical across runs, a real PNG of the
figure's size, a page with the figures in exact dollars, and the no-trades case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.image
import pytest

from services.backtest.plots import (
    DPI,
    FIGSIZE_IN,
    TradeMarker,
    duration,
    percent,
    usd,
    write_plots,
)
from shared.money import dollars
from shared.performance import EquityPoint

HOUR_NS = 3_600_000_000_000
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
BANKROLL = dollars(10_000)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURE_PIXELS = (round(FIGSIZE_IN[1] * DPI), round(FIGSIZE_IN[0] * DPI))  # rows, columns


def curve(*navs: int) -> list[EquityPoint]:
    return [EquityPoint(T0 + index * HOUR_NS, BANKROLL + nav) for index, nav in enumerate(navs)]


CURVES = {
    "total": curve(0, 5_000_000, -20_000_000, -50_000_000, 12_345_678, 30_000_000),
    "arbitrage": curve(0, 5_000_000, 3_000_000, 1_000_000, 20_000_000, 25_000_000),
    "weather": curve(0, 0, -23_000_000, -51_000_000, -7_654_322, 5_000_000),
}
MARKERS = [
    TradeMarker(T0 + HOUR_NS, "arbitrage", "buy", "KXA-1-T1"),
    TradeMarker(T0 + 2 * HOUR_NS, "weather", "buy", "KXB-1-T2"),
    TradeMarker(T0 + 4 * HOUR_NS + HOUR_NS // 2, "weather", "sell", "KXB-1-T2"),
]


def figures(pnl: int, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "pnl_micros": pnl,
        "fees_micros": 1_234_500,
        "turnover_micros": dollars(1_500),
        "trades": 3,
        "win_rate": 2 / 3,
        "sharpe": 1.23456,
        "sortino": None,
        "calmar": 3.1,
        "max_drawdown_micros": 55_000_000,
        "max_drawdown_ppm": 5_472,
        "max_drawdown_duration_ns": 4 * HOUR_NS,
        "fills": 3,
        "start_nav_micros": BANKROLL,
        "end_nav_micros": BANKROLL + pnl,
    }
    return base | overrides


REPORT = {
    "title": "sample",
    "span": {"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-01T05:00:00+00:00"},
    "total": figures(30_000_000),
    "strategies": {"weather": figures(5_000_000), "arbitrage": figures(25_000_000)},
}


def write(out: Path, **overrides: Any) -> list[Path]:
    args: dict[str, Any] = {"curves": CURVES, "markers": MARKERS, "report": REPORT}
    return write_plots(out, **(args | overrides), title="January 1st <replay>")


def test_the_same_inputs_give_byte_identical_files(tmp_path: Path):
    first = write(tmp_path / "one")
    second = write(tmp_path / "two")
    assert [p.name for p in first] == ["equity.png", "report.html"]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_the_png_is_a_png_of_the_figure_size(tmp_path: Path):
    png, _ = write(tmp_path)
    assert png.read_bytes().startswith(PNG_MAGIC)
    pixels = matplotlib.image.imread(png)
    assert pixels.shape[:2] == FIGURE_PIXELS
    assert pixels.std() > 0.01  # something is drawn


def test_the_page_shows_the_figures_exactly_in_dollars(tmp_path: Path):
    _, page = write(tmp_path)
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>")
    assert "<h1>January 1st &lt;replay&gt;</h1>" in text  # escaped
    assert "+$30.00" in text and "+$25.00" in text and "+$5.00" in text  # P&L per row
    assert "$10,030.00" in text and "$1.2345" in text and "$1,500.00" in text
    assert "0.54%" in text and "04:00:00" in text and "1.23" in text and "66.7%" in text
    assert text.index(">arbitrage<") < text.index(">weather<")
    assert "<svg" in text and "</svg>" in text and "<?xml" not in text
    assert 'href="trades.csv"' in text and 'href="signals.csv"' in text
    assert "no trades" not in text


def test_the_page_needs_nothing_from_outside(tmp_path: Path):
    _, page = write(tmp_path)
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text and "<link" not in text
    assert "http://" not in text.replace("http://www.w3.org/", "").replace(
        "http://purl.org/", ""
    ).replace("http://creativecommons.org/", "")
    assert "https://" not in text


@pytest.mark.parametrize(
    "curves",
    [{"total": curve(0), "arbitrage": curve(0)}, {"total": []}, {}],
    ids=["one point", "empty total", "no curves"],
)
def test_no_trades_still_gives_a_chart_and_a_page_saying_so(tmp_path: Path, curves):
    quiet = {"total": figures(0, trades=0, fills=0, win_rate=None, sharpe=None), "strategies": {}}
    png, page = write(tmp_path, curves=curves, markers=[], report=quiet)
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert matplotlib.image.imread(png).shape[:2] == FIGURE_PIXELS
    text = page.read_text(encoding="utf-8")
    assert "no trades" in text and "<svg" in text and "+$0.00" not in text
    assert ">$0.00<" in text  # the zero P&L, unsigned


def test_money_is_formatted_exactly():
    assert usd(0) == "$0.00"
    assert usd(1_234_567_890_000) == "$1,234,567.89"
    assert usd(455_000) == "$0.4550"
    assert usd(1) == "$0.000001"
    assert usd(-1_500_000) == "-$1.50"
    assert usd(1_500_000, signed=True) == "+$1.50"
    assert percent(52_345) == "5.23%" and percent(0) == "0.00%"
    assert duration(90 * 60 * 10**9) == "01:30:00"
    assert duration((2 * 86_400 + 3_661) * 10**9) == "2d 01:01:01"
