"""The pictures of a backtest run: ``equity.png`` and a self-contained ``report.html``.

The chart's top panel is NAV in dollars over time (UTC): the total bold, each
strategy's own curve thin, the total's trades marked (▲ buy, ▼ sell, in the
strategy's colour); the bottom panel is the total's drawdown below its running
peak, with the deepest one (:func:`shared.performance.max_drawdown`) marked.
The page embeds the same chart as inline SVG next to a table of the report's
headline figures; it needs no network and no JavaScript.

Money in the tables is formatted from integer micro-dollars exactly; floats
appear only on the chart's axes. The same inputs give byte-identical files:
the SVG ids are salted with a constant, the run's date and the software
version are left out of the metadata, and the figure's size is fixed.
"""

from __future__ import annotations

import bisect
import html
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from shared.kelly import NS_PER_DAY
from shared.money import MICROS_PER_DOLLAR, Micros, format_usd
from shared.performance import PPM, EquityPoint, max_drawdown

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

EQUITY_PNG: Final = "equity.png"
REPORT_HTML: Final = "report.html"
TOTAL: Final = "total"
NO_TRADES: Final = "no trades"

FIGSIZE_IN: Final = (12.0, 7.0)
DPI: Final = 100
RC: Final[dict[RcKeyType, Any]] = {
    "svg.hashsalt": "khv-backtest",  # else every SVG id is random
    "date.epoch": "1970-01-01T00:00:00",  # x values are days since the Unix epoch
    "date.converter": "concise",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same glyphs everywhere
    "font.size": 9,
}
PNG_METADATA: Final[dict[str, str | None]] = {"Software": None}
SVG_METADATA: Final[dict[str, str | None]] = {"Date": None, "Creator": None}
TOTAL_COLOR: Final = "#1f2328"
DRAWDOWN_COLOR: Final = "#cf222e"
PALETTE: Final = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
    "#d62728",
)
MARKER_OF: Final = {"buy": "^", "sell": "v"}
ARTIFACT_LINKS: Final = ("trades.csv", "signals.csv", EQUITY_PNG)


@dataclass(frozen=True, slots=True)
class TradeMarker:
    """One fill to mark on the total curve."""

    ts_ns: int
    strategy: str
    action: str  # "buy" or "sell"
    market: str


def write_plots(
    out: Path,
    curves: Mapping[str, Sequence[EquityPoint]],
    markers: Sequence[TradeMarker],
    report: Mapping[str, Any],
    *,
    title: str,
) -> list[Path]:
    """Write ``equity.png`` and ``report.html`` into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    png, page = out / EQUITY_PNG, out / REPORT_HTML
    with rc_context(RC):
        figure = equity_figure(curves, markers, title)
        figure.savefig(png, format="png", dpi=DPI, metadata=PNG_METADATA)
        svg = io.StringIO()
        figure.savefig(svg, format="svg", dpi=DPI, metadata=SVG_METADATA)
    page.write_text(
        report_page(title, report, inline_svg(svg.getvalue()), bool(markers)), encoding="utf-8"
    )
    return [png, page]


# ---------------------------------------------------------------------------
# the chart


def equity_figure(
    curves: Mapping[str, Sequence[EquityPoint]], markers: Sequence[TradeMarker], title: str
) -> Figure:
    figure = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained")
    nav_axes, dd_axes = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    figure.suptitle(title)
    colors = strategy_colors(curves, markers)
    total = curves.get(TOTAL, ())
    draw_navs(nav_axes, curves, colors)
    draw_markers(nav_axes, total, markers, colors)
    draw_drawdown(dd_axes, total)
    style_nav(nav_axes, has_markers=bool(markers))
    style_drawdown(dd_axes, total)
    style_time(nav_axes, dd_axes, total)
    return figure


def strategy_colors(
    curves: Mapping[str, Sequence[EquityPoint]], markers: Sequence[TradeMarker]
) -> dict[str, str]:
    """A colour per strategy, assigned in name order so it never depends on input order."""
    names = sorted((set(curves) | {m.strategy for m in markers}) - {TOTAL})
    return {name: PALETTE[index % len(PALETTE)] for index, name in enumerate(names)}


def day(ts_ns: int) -> float:
    """A time as matplotlib's date number: days since the epoch (RC pins it to 1970)."""
    return ts_ns / NS_PER_DAY


def days(points: Sequence[EquityPoint]) -> list[float]:
    return [day(point.ts_ns) for point in points]


def nav_dollars(points: Sequence[EquityPoint]) -> list[float]:
    return [point.nav / MICROS_PER_DOLLAR for point in points]


def draw_navs(
    axes: Axes, curves: Mapping[str, Sequence[EquityPoint]], colors: Mapping[str, str]
) -> None:
    for name, color in colors.items():
        points = curves.get(name, ())
        if points:
            axes.plot(
                days(points),
                nav_dollars(points),
                drawstyle="steps-post",
                color=color,
                linewidth=1.0,
                label=name,
            )
    total = curves.get(TOTAL, ())
    if total:
        axes.plot(
            days(total),
            nav_dollars(total),
            drawstyle="steps-post",
            color=TOTAL_COLOR,
            linewidth=2.2,
            marker="o" if len(total) == 1 else None,  # one point draws no line
            label=TOTAL,
            zorder=3,
        )


def nav_at(points: Sequence[EquityPoint], stamps: Sequence[int], ts_ns: int) -> Micros:
    """The NAV holding at ``ts_ns``: the last point at or before it (the first one before
    the curve starts); ``stamps`` are the points' times."""
    index = bisect.bisect_right(stamps, ts_ns)
    return points[max(index - 1, 0)].nav


def draw_markers(
    axes: Axes,
    total: Sequence[EquityPoint],
    markers: Sequence[TradeMarker],
    colors: Mapping[str, str],
) -> None:
    if not total:
        return
    stamps = [point.ts_ns for point in total]
    for (strategy, action), group in grouped(markers):
        axes.scatter(
            [day(m.ts_ns) for m in group],
            [nav_at(total, stamps, m.ts_ns) / MICROS_PER_DOLLAR for m in group],
            marker=MARKER_OF.get(action, "o"),
            color=colors[strategy],
            s=36,
            edgecolors=TOTAL_COLOR,
            linewidths=0.4,
            zorder=4,
        )


def grouped(
    markers: Sequence[TradeMarker],
) -> Iterator[tuple[tuple[str, str], list[TradeMarker]]]:
    groups: dict[tuple[str, str], list[TradeMarker]] = {}
    for marker in markers:
        groups.setdefault((marker.strategy, marker.action), []).append(marker)
    for key in sorted(groups):
        yield key, groups[key]


def drawdown_percent(points: Sequence[EquityPoint]) -> list[float]:
    """Per point, how far (in percent, as a negative number) NAV is below its running peak."""
    peak = 0
    depths: list[float] = []
    for point in points:
        peak = max(peak, point.nav)
        depths.append(-(peak - point.nav) * 100 / peak if peak > 0 else 0.0)
    return depths


def draw_drawdown(axes: Axes, total: Sequence[EquityPoint]) -> None:
    if not total:
        return
    depths = drawdown_percent(total)
    axes.fill_between(
        days(total), depths, 0, step="post", color=DRAWDOWN_COLOR, alpha=0.35, linewidth=0
    )
    axes.plot(days(total), depths, drawstyle="steps-post", color=DRAWDOWN_COLOR, linewidth=0.8)
    deepest = max_drawdown(total)
    if deepest.depth_ppm == 0:
        return
    trough, depth = day(deepest.trough_ts_ns), -deepest.depth_ppm * 100 / PPM
    axes.axvspan(day(deepest.peak_ts_ns), trough, color=DRAWDOWN_COLOR, alpha=0.08)
    axes.plot([trough], [depth], marker="o", color=DRAWDOWN_COLOR, linestyle="none")
    label = f"max DD {percent(deepest.depth_ppm)} ({usd(deepest.depth)})"
    axes.annotate(
        label, (trough, depth), xytext=(6, 3), textcoords="offset points", color=DRAWDOWN_COLOR
    )


def style_nav(axes: Axes, *, has_markers: bool) -> None:
    axes.set_ylabel("NAV ($)")
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"${value:,.2f}"))
    axes.grid(True, alpha=0.3)
    if not has_markers:
        axes.text(0.5, 0.5, NO_TRADES, transform=axes.transAxes, ha="center", va="center")
    handles, _ = axes.get_legend_handles_labels()
    if has_markers:
        handles += [marker_handle("buy"), marker_handle("sell")]
    if handles:
        axes.legend(handles=handles, loc="upper left", fontsize=8, ncols=2)


def marker_handle(action: str) -> Line2D:
    return Line2D([], [], marker=MARKER_OF[action], color="#888888", linestyle="none", label=action)


def style_drawdown(axes: Axes, total: Sequence[EquityPoint]) -> None:
    """Zero at the top; the deepest drawdown a quarter above the bottom (1% when flat)."""
    axes.set_ylabel("drawdown (%)")
    axes.grid(True, alpha=0.3)
    deepest = min(drawdown_percent(total), default=0.0)
    axes.set_ylim(deepest * 1.25 if deepest < 0 else -1.0, 0)


def style_time(nav_axes: Axes, dd_axes: Axes, total: Sequence[EquityPoint]) -> None:
    """UTC dates along x; a lone point gets an hour either side, no points no ticks."""
    dd_axes.set_xlabel("time (UTC)")
    if not total:
        for axes in (nav_axes, dd_axes):
            axes.set_xticks([])
        nav_axes.set_yticks([])
        return
    for axes in (nav_axes, dd_axes):
        axes.xaxis_date(UTC)
    first, last = day(total[0].ts_ns), day(total[-1].ts_ns)
    if first == last:
        dd_axes.set_xlim(first - 1 / 24, last + 1 / 24)


def inline_svg(document: str) -> str:
    """The ``<svg>`` element of a whole SVG document, for embedding in HTML."""
    return document[document.index("<svg") :].strip()


# ---------------------------------------------------------------------------
# exact formatting for the tables


def usd(micros: Micros, *, signed: bool = False) -> str:
    """Micro-dollars as ``$1,234.56`` (four or six decimals when needed), exact;
    ``-$1.50`` below zero, ``+$1.50`` above it when ``signed``."""
    whole, _, decimals = format_usd(abs(micros)).partition(".")
    sign = "-" if micros < 0 else ("+" if signed and micros > 0 else "")
    return f"{sign}${int(whole):,}.{decimals}"


def percent(ppm: int) -> str:
    """Parts per million as a percentage to two decimals, truncated: 52_345 -> ``5.23%``."""
    hundredths = abs(ppm) // 100
    return f"{'-' if ppm < 0 else ''}{hundredths // 100}.{hundredths % 100:02d}%"


def duration(ns: int) -> str:
    seconds = ns // 1_000_000_000
    days, rest = divmod(seconds, 86_400)
    clock = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}d {clock}" if days else clock


def ratio(value: Any, digits: int = 2) -> str:
    """A statistic (a float, not money) to fixed decimals; ``—`` when undefined."""
    return "—" if value is None else f"{float(value):.{digits}f}"


def share(value: Any) -> str:
    return "—" if value is None else f"{float(value) * 100:.1f}%"


# ---------------------------------------------------------------------------
# the page

COLUMNS: Final = (
    "start NAV",
    "end NAV",
    "P&L",
    "fees",
    "turnover",
    "fills",
    "trades",
    "win rate",
    "Sharpe",
    "Sortino",
    "Calmar",
    "max DD",
    "max DD %",
    "max DD duration",
)
CSS: Final = """
body { margin: 24px; font: 14px/1.4 system-ui, sans-serif; color: #1f2328; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
.span, .note { color: #59636e; }
.none { font-weight: 600; color: #9a6700; }
table { border-collapse: collapse; margin: 16px 0; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid #d1d9e0; white-space: nowrap; }
th { text-align: left; background: #f6f8fa; }
td.num { text-align: right; }
tr.total td { font-weight: 600; }
.pos { color: #1a7f37; }
.neg { color: #cf222e; }
figure { margin: 0; }
figure svg { max-width: 100%; height: auto; }
""".strip()


def figures_row(name: str, figures: Mapping[str, Any]) -> list[str]:
    """One table row's cells: the name, then the columns of COLUMNS."""
    return [
        name,
        usd(figures["start_nav_micros"]),
        usd(figures["end_nav_micros"]),
        usd(figures["pnl_micros"], signed=True),
        usd(figures["fees_micros"]),
        usd(figures["turnover_micros"]),
        f"{figures['fills']:,}",
        f"{figures['trades']:,}",
        share(figures["win_rate"]),
        ratio(figures["sharpe"]),
        ratio(figures["sortino"]),
        ratio(figures["calmar"]),
        usd(figures["max_drawdown_micros"]),
        percent(figures["max_drawdown_ppm"]),
        duration(figures["max_drawdown_duration_ns"]),
    ]


def pnl_class(micros: Micros) -> str:
    return "pos" if micros > 0 else ("neg" if micros < 0 else "")


def table_row(name: str, figures: Mapping[str, Any], row_class: str) -> str:
    cells = figures_row(name, figures)
    pnl_cell = COLUMNS.index("P&L") + 1
    parts = [f"<td>{html.escape(cells[0])}</td>"]
    for index, text in enumerate(cells[1:], start=1):
        extra = f" {pnl_class(figures['pnl_micros'])}" if index == pnl_cell else ""
        parts.append(f'<td class="num{extra}">{html.escape(text)}</td>')
    return f'<tr class="{row_class}">{"".join(parts)}</tr>'


def figures_table(report: Mapping[str, Any]) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in ("", *COLUMNS))
    rows = [table_row(TOTAL, report["total"], "total")]
    strategies: Mapping[str, Any] = report.get("strategies", {})
    rows += [table_row(name, strategies[name], "strategy") for name in sorted(strategies)]
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def span_line(report: Mapping[str, Any]) -> str:
    span = report.get("span") or {}
    start, end = html.escape(str(span.get("start", "?"))), html.escape(str(span.get("end", "?")))
    return f'<p class="span">{start} — {end} (UTC)</p>'


def links() -> str:
    items = "".join(f'<li><a href="{name}">{name}</a></li>' for name in ARTIFACT_LINKS)
    return f"<ul>{items}</ul>"


def report_page(title: str, report: Mapping[str, Any], svg: str, has_trades: bool) -> str:
    note = "" if has_trades else f'<p class="none">{NO_TRADES}</p>'
    parts = (
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        span_line(report),
        note,
        figures_table(report),
        f'<figure aria-label="NAV and drawdown">{svg}</figure>',
        links(),
        "</body></html>\n",
    )
    return "\n".join(part for part in parts if part)
