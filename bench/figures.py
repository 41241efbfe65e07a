"""Collecting and printing benchmark figures."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    note: str = ""


def percentiles_us(samples_ns: list[int], *points: float) -> list[float]:
    """Percentiles of nanosecond samples, in microseconds."""
    data = np.asarray(samples_ns, dtype=np.int64)
    return [float(np.percentile(data, p)) / 1000 for p in points]


def print_table(figures: list[Figure]) -> None:
    width = max(len(f.name) for f in figures)
    print()
    print(f"{'figure':<{width}}  {'value':>14}  unit      note")
    print("-" * (width + 40))
    for f in figures:
        print(f"{f.name:<{width}}  {f.value:>14,.3f}  {f.unit:<8}  {f.note}")
    print()
    for f in figures:
        print(f"{f.name}: {f.value:.3f} {f.unit}")
