"""What the input readers share: timestamps, merging files by time, grouping into ticks.

Every reader stamps what it reads with the data's own clock (ns since the
epoch), merges several files by that clock (stable: at equal times the file
given first goes first), and makes one :class:`~services.backtest.recording.Tick`
of everything stamped with the same instant.
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Final, TypeAlias, TypeVar

from services.backtest.recording import RecordingError, Tick
from shared.messages import MarketData, MarketSettled

NS_PER_SECOND: Final = 1_000_000_000
NS_PER_MS: Final = 1_000_000
DAY_NS: Final = 86_400 * NS_PER_SECOND

Stamped: TypeAlias = tuple[int, list[MarketData], list[MarketSettled]]
"""What one input record turned into, at its instant."""

T = TypeVar("T")

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NUMBER: Final = re.compile(r"^\d+(?:\.\d+)?$")
_SECONDS_FRACTION: Final = re.compile(r"(?<=:\d\d)[.,](\d+)")
_EPOCH_UNITS: Final = ((10**11, NS_PER_SECOND), (10**14, NS_PER_MS), (10**17, 1_000))
"""Epoch numbers below each bound are in that unit (s, ms, us), above the last in ns.

10**11 seconds is the year 5138 and 10**11 milliseconds March 1973: a
recording's numbers fall clearly on one side of every bound.
"""


def parse_timestamp(text: str) -> int:
    """ISO 8601 (UTC without an offset) or epoch s/ms/us/ns, to ns; ValueError if neither."""
    text = text.strip()
    if _NUMBER.match(text):
        return _epoch_number(text)
    return _iso_8601(text)


def _epoch_number(text: str) -> int:
    value = Decimal(text)
    for bound, ns_per_unit in _EPOCH_UNITS:
        if value < bound:
            return int(value * ns_per_unit)
    return int(value)


def _iso_8601(text: str) -> int:
    # datetime keeps microseconds only: the fraction of a second is read apart, to the ns.
    fraction_ns, whole = 0, text
    match = _SECONDS_FRACTION.search(text)
    if match is not None:
        digits = match.group(1)
        if len(digits) > 9:
            raise ValueError(f"timestamp {text!r} is finer than a nanosecond")
        fraction_ns = int(digits.ljust(9, "0"))
        whole = text[: match.start()] + text[match.end() :]
    try:
        moment = datetime.fromisoformat(whole)
    except ValueError:
        raise ValueError(f"timestamp {text!r} is neither ISO 8601 nor epoch time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(seconds=1) * NS_PER_SECOND + fraction_ns


def merge_by_time(streams: Iterable[Iterator[T]], time_of: Callable[[T], int]) -> Iterator[T]:
    """Time-ordered streams as one; at equal times the earlier stream's items first."""
    return heapq.merge(*streams, key=time_of)


def count_instants(times: Iterable[int]) -> int:
    """How many runs of equal times: the ticks a time-ordered stream makes at most."""
    return sum(1 for _ in itertools.groupby(times))


def group_ticks(stamped: Iterable[Stamped]) -> Iterator[Tick]:
    """Consecutive outputs of one instant as one tick; an instant with no output is none."""
    for ts_ns, group in itertools.groupby(stamped, key=lambda output: output[0]):
        items: list[MarketData] = []
        settled: list[MarketSettled] = []
        for _, more_items, more_settled in group:
            items += more_items
            settled += more_settled
        if items or settled:
            yield Tick(ts_ns, items, settled)


def recording_name(paths: Sequence[Path]) -> str:
    """The files' stems, joined: what the replay report calls this input."""
    if not paths:
        raise RecordingError("no input files")
    return "+".join(path.stem for path in paths)
