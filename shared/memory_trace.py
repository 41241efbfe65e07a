"""Opt-in allocation tracing: where a service's memory grows after warm-up.

Set ``KHV_TRACEMALLOC_DIR`` and every service traces its Python allocations
(``tracemalloc``, a few times slower), takes a baseline once
``KHV_TRACEMALLOC_WARMUP_S`` (default 60) have passed, and every
``KHV_TRACEMALLOC_EVERY_S`` (default 60) rewrites ``<dir>/<service>-<instance>.txt``:
the allocation sites that grew most since the baseline, with their call stacks.
Taking a snapshot stops the service for a moment (seconds, on a big heap), long
enough for risk to see a stale feed: use it to find a leak, not in production.
``KHV_TRACEMALLOC_SERVICES`` (comma-separated names) traces only those.
Memory that grows there under a steady load is the leak; memory that grows
while that file stays flat is the allocator's (fragmentation), not ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import linecache
import os
import tracemalloc
from pathlib import Path

import structlog

log = structlog.get_logger("memory_trace")

DIR_ENV = "KHV_TRACEMALLOC_DIR"
SERVICES_ENV = "KHV_TRACEMALLOC_SERVICES"
"""Comma-separated service names to trace; empty: every service."""
FRAMES = 8
TOP = 25


def _seconds(variable: str, default: float) -> float:
    try:
        return float(os.environ.get(variable) or default)
    except ValueError:
        log.warning("not a number of seconds; using the default", variable=variable)
        return default


def growth_report(baseline: tracemalloc.Snapshot, now: tracemalloc.Snapshot) -> str:
    """The allocation sites that grew most between two snapshots, largest first."""
    stats = now.compare_to(baseline, "traceback")
    grown = sorted(stats, key=lambda s: s.size_diff, reverse=True)[:TOP]
    total = sum(s.size_diff for s in stats)
    lines = [f"net growth since baseline: {total / 1e6:+.2f} MB over {len(stats)} sites", ""]
    for stat in grown:
        grew, size = stat.size_diff / 1e6, stat.size / 1e6
        lines.append(f"{grew:+.3f} MB ({stat.count_diff:+d} blocks), now {size:.3f} MB")
        lines.extend(f"    {line}" for line in stat.traceback.format(most_recent_first=True))
        lines.append("")
    return "\n".join(lines)


async def trace_growth(name: str, instance: str, stop: asyncio.Event) -> None:
    """Run until ``stop``: baseline after warm-up, then a report every interval and at the end."""
    directory = os.environ.get(DIR_ENV)
    only = {n.strip() for n in os.environ.get(SERVICES_ENV, "").split(",") if n.strip()}
    if not directory or (only and name not in only):
        return
    out = Path(directory) / f"{name}-{instance}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    warmup = _seconds("KHV_TRACEMALLOC_WARMUP_S", 60.0)
    every = _seconds("KHV_TRACEMALLOC_EVERY_S", 60.0)
    tracemalloc.start(FRAMES)
    log.info("tracing allocations", out=str(out), warmup_s=warmup)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), warmup)
        baseline = _snapshot()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            _write(out, growth_report(baseline, _snapshot()))
    finally:
        tracemalloc.stop()


def _snapshot() -> tracemalloc.Snapshot:
    return tracemalloc.take_snapshot().filter_traces(  # the tracer's own: not the service's
        [
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, linecache.__file__),
        ]
    )


def _write(path: Path, text: str) -> None:
    partial = path.with_suffix(".part")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
