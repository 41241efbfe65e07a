"""Load: the whole trading stack against the simulator at 1,000 and 5,000 book changes a second.

The simulator runs as its own process, making ``--flow-rate`` book changes a second
and injecting ``--mispricing-rate`` mispricings; ingest, strategy, risk and
execution (paper) run as their own processes, as ``make run`` starts them, on a key
prefix and a Postgres database of their own (dropped afterwards). The stack first
idles (simulator at flow 0) for each service's footprint at rest; then, for each
rate, the simulator restarts at that rate, ingest reconnects, and after a warm-up a
window (``KHV_BENCH_LOAD_S`` seconds, default 60) is watched:

* achieved rate: deltas ingest received (the ``deltas`` count in its heartbeat);
* tick to order: ``execution.send`` minus ``ingest.rx`` of every order whose tick
  arrived in the window (the ``orders`` stream), p50/p99/p99.9, and each hop's median;
* consumer lag (XINFO GROUPS ``lag``) of every group on every stream, start and end;
* RSS (VmRSS) and CPU (utime+stime) of each process, from /proc;
* ERROR lines in each service's JSON log (bench/out/load/<service>.log), dead letters.

``KHV_BENCH_SOAK_S=600`` adds a soak at 1,000/s that long and reports the RSS growth.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Final

import numpy as np
import psycopg
import redis
from psycopg import sql

from bench import pipeline
from bench.figures import Figure
from services.simulator.keygen import ensure_key_pair
from shared.bus.codec import Codec
from shared.messages import Heartbeat, OrderEvent, OrderStatus
from shared.streams import DEAD_LETTERS, HEARTBEATS, ORDERS, stream_key

RATES: Final = {"1k": 1_000.0, "5k": 5_000.0}
SOAK_RATE: Final = 1_000.0
MISPRICINGS_PER_S: Final = 2.0
SERVICES: Final = ("ingest", "strategy", "risk", "execution")
SIMULATOR: Final = "simulator"
PROCESSES: Final = (*SERVICES, SIMULATOR)
REST_S: Final = 10.0
WARMUP_S: Final = 5.0
SAMPLE_EVERY_S: Final = 5.0
READY_TIMEOUT_S: Final = 90.0
GRACE_S: Final = 1.0
"""Orders of ticks late in a window reach the venue just after it."""
LAG_GROWTH_TOLERANCE: Final = 10
"""Entries a group may fall further behind over a window before that counts as growing
(market data is published in batches: ten md entries are ten of ingest's flushes)."""
LOG_DIR: Final = Path("bench/out/load")
ERROR_LEVELS: Final = frozenset({"error", "critical"})
TICKS_PER_S: Final = os.sysconf("SC_CLK_TCK")
RECEIVED_HOP: Final = "ingest.rx"
SEND_HOP: Final = "execution.send"
GOAL: Final = "goal p50 < 1.5 ms, p99 < 5 ms"


def _seconds(variable: str, default: float) -> float:
    return float(os.environ.get(variable) or default)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- processes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """A process's resident memory and the CPU time it has used so far."""

    rss_mb: float
    cpu_s: float


def usage_of(pid: int) -> Usage:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # fields from the third (state) on
    utime, stime = int(fields[11]), int(fields[12])
    return Usage(rss_kb / 1024, (utime + stime) / TICKS_PER_S)


def machine_busy_s() -> float:
    """CPU time all cores spent busy since boot (``/proc/stat``)."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / TICKS_PER_S


class Stack:
    """The simulator and the four trading services as processes, logging to LOG_DIR."""

    def __init__(self, keys: Path, prefix: str, database_url: str) -> None:
        private, self.public_key = ensure_key_pair(keys, "bench")
        self.port = _free_port()
        base = f"http://127.0.0.1:{self.port}"
        self.health_url = f"{base}/sim/health"
        self.env = (
            pipeline._env(prefix, database_url)
            | {
                "KHV_MODE": "paper",
                "KHV_LOG_FORMAT": "json",
                "KHV_STRATEGY__COOLDOWN_S": "1.0",  # the default: the same legs once a second
                "KHV_FEEDS__NWS__ENABLED": "false",
                "KALSHI_KEY_ID": "bench",
                "KALSHI_PRIVATE_KEY_PATH": str(private),
                "KHV_KALSHI__REST_URL": f"{base}/trade-api/v2",
                "KHV_KALSHI__WS_URL": f"ws://127.0.0.1:{self.port}/trade-api/ws/v2",
            }
            | {k: v for k, v in os.environ.items() if k.startswith("KHV_TRACEMALLOC")}
        )
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def _start(self, name: str, argv: list[str]) -> None:
        with (LOG_DIR / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, *argv], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def start_services(self) -> None:
        for name in SERVICES:
            self._start(name, ["-m", f"services.{name}", "--instance", "bench"])

    def start_simulator(self, flow_rate: float, mispricings_per_s: float) -> None:
        self._start(
            SIMULATOR,
            [
                *("-m", "services.simulator", "--port", str(self.port), "--tier", "none"),
                *("--flow-rate", str(flow_rate), "--mispricing-rate", str(mispricings_per_s)),
                *("--account", f"bench={self.public_key}"),
            ],
        )
        self._wait_for_simulator()

    def _wait_for_simulator(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            self.check_alive()
            if self._simulator_up():
                return
            time.sleep(0.2)
        raise RuntimeError(f"simulator not up after {READY_TIMEOUT_S:.0f} s")

    def _simulator_up(self) -> bool:
        try:
            with urllib.request.urlopen(self.health_url, timeout=1) as answer:
                return bool(json.load(answer).get("ok"))
        except (urllib.error.URLError, ConnectionError):
            return False

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None:
            return
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop_all(self) -> None:
        for name in reversed(list(self.processes)):
            self.stop(name)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {process.returncode}; see {LOG_DIR / name}.log"
                )

    def usage(self) -> dict[str, Usage]:
        return {name: usage_of(process.pid) for name, process in self.processes.items()}


# --- the bus, seen from outside -------------------------------------------------------


@dataclass(frozen=True)
class Lag:
    """A consumer group on a stream: entries not yet delivered, delivered but not acked."""

    lag: int | None
    pending: int


class Bus:
    """What the bench reads from Redis: heartbeats, group lag, orders, dead letters."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client: Any = client  # redis-py's stubs reject bytes-keyed stream fields
        self.prefix = prefix
        self.beat_codec = Codec(HEARTBEATS)
        self.order_codec = Codec(ORDERS)

    def beats(self) -> dict[str, Heartbeat]:
        """The newest heartbeat of each service."""
        newest: dict[str, Heartbeat] = {}
        for _, fields in self.client.xrevrange(stream_key(self.prefix, HEARTBEATS), count=50):
            beat = self.beat_codec.decode_entry(fields)
            if isinstance(beat, Heartbeat):
                newest.setdefault(beat.service, beat)
        return newest

    def lags(self) -> dict[str, Lag]:
        """Every consumer group on every stream of the prefix, as ``stream/group``."""
        found: dict[str, Lag] = {}
        for key in self.client.scan_iter(match=f"{self.prefix}*", _type="stream"):
            stream = key.decode().removeprefix(self.prefix)
            for group in self.client.xinfo_groups(key):
                name = f"{stream}/{group['name'].decode()}"
                found[name] = Lag(group.get("lag"), int(group["pending"]))
        return found

    def dead_letters(self) -> int:
        count: int = self.client.xlen(stream_key(self.prefix, DEAD_LETTERS))
        return count

    def order_events(self, since_ns: int) -> list[OrderEvent]:
        """Every order event published since ``since_ns`` (or a little before)."""
        key = stream_key(self.prefix, ORDERS)
        entries = self.client.xrange(key, min=f"{since_ns // 1_000_000}-0")
        events = (self.order_codec.decode_entry(fields) for _, fields in entries)
        return [event for event in events if isinstance(event, OrderEvent)]


@dataclass(frozen=True)
class Orders:
    """The orders of one window."""

    measured: list[OrderEvent]
    """Sent, for a tick ingest received in the window: they carry both hops."""
    unmeasured: int
    """Sent in the window without an ``ingest.rx`` hop (signals of deferred scans)."""
    rejected: Counter[str]
    """Refused by execution in the window, by reason (up to its first colon)."""


def orders_of(events: list[OrderEvent], since_ns: int, until_ns: int) -> Orders:
    measured: list[OrderEvent] = []
    unmeasured = 0
    rejected: Counter[str] = Counter()
    for event in events:
        hops = {hop.name: hop.ts_ns for hop in event.hops}
        received, sent = hops.get(RECEIVED_HOP), hops.get(SEND_HOP)
        if sent is None:
            if event.status is OrderStatus.REJECTED and since_ns <= event.ts_ns < until_ns:
                rejected[event.reason.split(":")[0]] += 1
        elif received is None:
            if since_ns <= sent < until_ns:
                unmeasured += 1
        elif since_ns <= received < until_ns:
            measured.append(event)
    return Orders(measured, unmeasured, rejected)


def tick_to_order(orders: list[OrderEvent]) -> tuple[list[int], dict[str, list[int]]]:
    """Each order's send minus receive (ns), and each hop's durations by ``a->b``."""
    totals: list[int] = []
    legs: dict[str, list[int]] = {}
    for order in orders:
        hops = {hop.name: hop.ts_ns for hop in order.hops}
        totals.append(hops[SEND_HOP] - hops[RECEIVED_HOP])
        for before, after in pairwise(order.hops):
            legs.setdefault(f"{before.name}->{after.name}", []).append(after.ts_ns - before.ts_ns)
    return totals, legs


# --- observing the stack --------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The stack at one moment."""

    wall_ns: int
    usage: dict[str, Usage]
    machine_busy_s: float
    lags: dict[str, Lag]
    deltas: int
    """Book changes ingest has received (its newest heartbeat) ..."""
    deltas_ns: int
    """... as of that heartbeat."""
    log_sizes: dict[str, int]
    blocks: dict[str, int]
    """Each service's live Python objects (``py_blocks`` of its newest heartbeat)."""


def py_blocks(beats: dict[str, Heartbeat]) -> dict[str, int]:
    return {name: int(beat.info.get("py_blocks", "0")) for name, beat in beats.items()}


def snapshot(stack: Stack, bus: Bus) -> Snapshot:
    beats = bus.beats()
    beat = beats["ingest"]
    return Snapshot(
        wall_ns=time.time_ns(),
        usage=stack.usage(),
        machine_busy_s=machine_busy_s(),
        lags=bus.lags(),
        deltas=int(beat.info.get("deltas", "0")),
        deltas_ns=beat.ts_ns,
        log_sizes={name: _log(name).stat().st_size for name in PROCESSES},
        blocks=py_blocks(beats),
    )


def _log(name: str) -> Path:
    return LOG_DIR / f"{name}.log"


def worst_lag(lags: dict[str, Lag]) -> tuple[int, str]:
    """The largest lag of any group, and whose it is."""
    known = [(lag.lag, name) for name, lag in lags.items() if lag.lag is not None]
    return max(known, default=(0, "none"))


def errors_between(name: str, start: int, end: int) -> int:
    """ERROR (and CRITICAL) JSON lines a process logged between two file offsets."""
    with _log(name).open("rb") as log:
        log.seek(start)
        lines = log.read(end - start).splitlines()
    return sum(_is_error(line) for line in lines)


def _is_error(line: bytes) -> bool:
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and record.get("level") in ERROR_LEVELS


@dataclass(frozen=True)
class Window:
    """One measured stretch at one flow rate."""

    label: str
    asked: float
    start: Snapshot
    end: Snapshot
    peak_lag: int
    rss_trail: list[dict[str, float]]
    """Each process's RSS (MB) every SAMPLE_EVERY_S through the window."""
    blocks_trail: list[dict[str, int]]
    """Each service's live Python objects, sampled with the RSS."""
    latencies_ns: list[int]
    legs: dict[str, list[int]]
    orders: Orders
    errors: dict[str, int]
    load_average: float
    """The machine's one-minute load average at the end of the window."""

    @property
    def seconds(self) -> float:
        return (self.end.wall_ns - self.start.wall_ns) / 1e9

    @property
    def achieved(self) -> float:
        span_s = (self.end.deltas_ns - self.start.deltas_ns) / 1e9
        return (self.end.deltas - self.start.deltas) / span_s if span_s > 0 else 0.0

    def cpu_pct(self, name: str) -> float:
        used = self.end.usage[name].cpu_s - self.start.usage[name].cpu_s
        return 100 * used / self.seconds

    def rss_growth_mb(self, name: str) -> float:
        return self.end.usage[name].rss_mb - self.start.usage[name].rss_mb

    def late_rss_growth_mb(self, name: str) -> float:
        """RSS growth over the second half of the window (past any warm-up)."""
        middle = self.rss_trail[len(self.rss_trail) // 2]
        return self.end.usage[name].rss_mb - middle[name]

    def blocks_growth_pct(self, name: str, *, late: bool = False) -> float:
        """Growth of live Python objects over the window (or its second half), in %."""
        first = self.blocks_trail[len(self.blocks_trail) // 2 if late else 0].get(name, 0)
        last = self.end.blocks.get(name, 0)
        return 100 * (last - first) / first if first else 0.0

    def outside_cpu_pct(self) -> float:
        """CPU the machine spent outside the bench's processes (Redis, Postgres, others)."""
        busy = self.end.machine_busy_s - self.start.machine_busy_s
        ours = sum(self.cpu_pct(name) for name in PROCESSES) * self.seconds / 100
        return 100 * (busy - ours) / self.seconds


def measure(stack: Stack, bus: Bus, label: str, asked: float, seconds: float) -> Window:
    print(f"bench: load {label}: measuring {seconds:.0f} s", file=sys.stderr, flush=True)
    start = snapshot(stack, bus)
    peak_lag = worst_lag(start.lags)[0]
    rss_trail = [_rss(start.usage)]
    blocks_trail = [start.blocks]
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(SAMPLE_EVERY_S, left))
        stack.check_alive()
        peak_lag = max(peak_lag, worst_lag(bus.lags())[0])
        rss_trail.append(_rss(stack.usage()))
        blocks_trail.append(py_blocks(bus.beats()))
    end = snapshot(stack, bus)
    time.sleep(GRACE_S)
    orders = orders_of(bus.order_events(start.wall_ns), start.wall_ns, end.wall_ns)
    latencies, legs = tick_to_order(orders.measured)
    errors = {
        name: errors_between(name, start.log_sizes[name], end.log_sizes[name]) for name in SERVICES
    }
    load_average = os.getloadavg()[0]
    return Window(
        label,
        asked,
        start,
        end,
        peak_lag,
        rss_trail,
        blocks_trail,
        latencies,
        legs,
        orders,
        errors,
        load_average,
    )


def _rss(usage: dict[str, Usage]) -> dict[str, float]:
    return {name: use.rss_mb for name, use in usage.items()}


def wait_until_flowing(bus: Bus, since_ns: int, flowing: bool) -> None:
    """Until two heartbeats of ingest after ``since_ns`` show every book valid on a fresh
    feed (and, when ``flowing``, more deltas), and risk and execution are active."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    previous: Heartbeat | None = None
    while time.monotonic() < deadline:
        beats = bus.beats()
        ingest = beats.get("ingest")
        if ingest is not None and ingest.ts_ns > since_ns and _ready(beats):
            if previous is not None and _moved_on(previous, ingest, flowing):
                return
            previous = previous or ingest
        time.sleep(0.5)
    raise RuntimeError(f"stack not ready after {READY_TIMEOUT_S:.0f} s; logs in {LOG_DIR}")


def _moved_on(before: Heartbeat, after: Heartbeat, flowing: bool) -> bool:
    """A later heartbeat, with more deltas when the simulator is making them."""
    return after.ts_ns > before.ts_ns and (not flowing or _deltas(after) > _deltas(before))


def _deltas(beat: Heartbeat) -> int:
    return int(beat.info.get("deltas", "0"))


def _ready(beats: dict[str, Heartbeat]) -> bool:
    info = beats["ingest"].info
    markets = int(info.get("markets", "0"))
    books_ready = markets > 0 and info.get("books_valid") == str(markets)
    roles = all(beats.get(name) and beats[name].role == "active" for name in ("risk", "execution"))
    return books_ready and info.get("kalshi_feed") == "fresh" and roles


# --- the run --------------------------------------------------------------------------


def settle_and_measure(stack: Stack, bus: Bus, label: str, rate: float, seconds: float) -> Window:
    """Once the stack follows the simulator (up now) and has warmed up, measure."""
    wait_until_flowing(bus, time.time_ns(), flowing=rate > 0)
    time.sleep(WARMUP_S)
    return measure(stack, bus, label, rate, seconds)


def at_rate(stack: Stack, bus: Bus, label: str, rate: float, seconds: float) -> Window:
    """Restart the simulator at ``rate``, then measure."""
    stack.stop(SIMULATOR)
    stack.start_simulator(rate, MISPRICINGS_PER_S)
    return settle_and_measure(stack, bus, label, rate, seconds)


def phases(stack: Stack, bus: Bus, window_s: float, soak_s: float) -> list[Window]:
    """At rest (simulator at flow 0), then each rate, then (if asked) the soak."""
    stack.start_simulator(0.0, 0.0)
    stack.start_services()
    windows = [settle_and_measure(stack, bus, "rest", 0.0, REST_S)]
    windows += [at_rate(stack, bus, label, rate, window_s) for label, rate in RATES.items()]
    if soak_s > 0:
        windows.append(at_rate(stack, bus, "soak", SOAK_RATE, soak_s))
    return windows


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A database of its own, dropped afterwards: yields its URL."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pipeline._admin_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield pipeline._database(name)
    finally:
        with psycopg.connect(pipeline._admin_url(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def run() -> list[Figure]:
    window_s = _seconds("KHV_BENCH_LOAD_S", 60.0)
    soak_s = _seconds("KHV_BENCH_SOAK_S", 0.0)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    for name in PROCESSES:
        _log(name).write_bytes(b"")
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    with (
        redis.Redis.from_url(pipeline._redis_url()) as client,
        fresh_database() as database_url,
        tempfile.TemporaryDirectory() as keys,
    ):
        bus = Bus(client, prefix)
        stack = Stack(Path(keys), prefix, database_url)
        try:
            windows = phases(stack, bus, window_s, soak_s)
            dead = bus.dead_letters()
        finally:
            stack.stop_all()
            asyncio.run(pipeline._forget(prefix))
    whole_run = {name: errors_between(name, 0, _log(name).stat().st_size) for name in SERVICES}
    return figures(windows, dead, whole_run)


# --- figures --------------------------------------------------------------------------


def figures(windows: list[Window], dead_letters: int, whole_run: dict[str, int]) -> list[Figure]:
    by_label = {window.label: window for window in windows}
    rest = by_label["rest"]
    loaded = [by_label[label] for label in RATES]
    result = [*resources(rest, "rest")]
    for window in loaded:
        result += rate_figures(window)
        result += resources(window, window.label)
    result += ceilings(loaded[-1])
    result += totals(loaded, dead_letters, whole_run)
    if "soak" in by_label:
        result += soak_figures(by_label["soak"])
    return result


def rate_figures(window: Window) -> list[Figure]:
    label = window.label
    return [
        Figure(
            f"load_{label}_achieved_changes_per_s",
            window.achieved,
            "changes/s",
            achieved_note(window),
        ),
        *latency_figures(f"load_{label}", window),
        Figure(
            f"load_{label}_consumer_lag_end",
            worst_lag(window.end.lags)[0],
            "entries",
            lag_note(window),
        ),
    ]


def achieved_note(window: Window) -> str:
    short = window.achieved < 0.9 * window.asked
    reached = f"simulator reached {window.achieved / window.asked:.0%} of it" if short else ""
    sim_cpu = window.cpu_pct(SIMULATOR)
    return "; ".join(
        part
        for part in (
            f"asked {window.asked:,.0f}/s",
            reached,
            f"{window.seconds:.0f} s window",
            f"CPU: simulator {sim_cpu:.0f}%, everything outside the bench's processes"
            f" (Redis, Postgres, other jobs) {window.outside_cpu_pct():.0f}% of one core"
            f" ({os.cpu_count()} cores, load average {window.load_average:.1f})",
        )
        if part
    )


def latency_figures(prefix: str, window: Window) -> list[Figure]:
    if window.latencies_ns:
        p50, p99, p999 = np.percentile(window.latencies_ns, [50, 99, 99.9]) / 1e6
    else:
        p50 = p99 = p999 = float("nan")
    note = f"{len(window.latencies_ns)} orders, ingest.rx -> execution.send; {GOAL}; " + (
        orders_note(window.orders)
    )
    return [
        Figure(f"{prefix}_tick_to_order_p50_ms", float(p50), "ms", note),
        Figure(f"{prefix}_tick_to_order_p99_ms", float(p99), "ms", ""),
        Figure(f"{prefix}_tick_to_order_p999_ms", float(p999), "ms", ""),
        *(hop_figure(prefix, name, values) for name, values in window.legs.items()),
    ]


def orders_note(orders: Orders) -> str:
    rejected = sum(orders.rejected.values())
    reasons = ", ".join(f"{count} {why}" for why, count in orders.rejected.most_common(2))
    return (
        f"{orders.unmeasured} more orders sent without an ingest.rx hop (no book change behind"
        f" them) are not in these figures; {rejected} refused by execution"
        + (f" ({reasons})" if reasons else "")
    )


def hop_figure(prefix: str, hop: str, durations_ns: list[int]) -> Figure:
    p50, p99 = np.percentile(durations_ns, [50, 99]) / 1e6
    after_send = hop.startswith(SEND_HOP)
    what = "after the send (paper fill, ledger, report): not in tick to order" if after_send else ""
    return Figure(
        f"{prefix}_hop_{hop.replace('->', '_to_').replace('.', '_')}_p50_ms",
        float(p50),
        "ms",
        f"median of this hop, p99 {p99:.1f} ms" + (f"; {what}" if what else ""),
    )


def lag_note(window: Window) -> str:
    start, _ = worst_lag(window.start.lags)
    end, whose = worst_lag(window.end.lags)
    grew = "grew" if end - start > LAG_GROWTH_TOLERANCE else "flat"
    pending = max((lag.pending for lag in window.end.lags.values()), default=0)
    unknown = sum(lag.lag is None for lag in window.end.lags.values())
    behind = ", ".join(f"{name} {lag.lag}" for name, lag in window.end.lags.items() if lag.lag)
    return (
        f"worst group lag: start {start}, peak {window.peak_lag}, end {end} ({whose}): {grew}; "
        f"behind at the end: {behind or 'none'}; max pending {pending}"
        + (f"; lag unknown for {unknown} groups" if unknown else "")
    )


def resources(window: Window, label: str) -> list[Figure]:
    result: list[Figure] = []
    for name in PROCESSES:
        rss = window.end.usage[name].rss_mb
        note = f"{window.rss_growth_mb(name):+.1f} MB over the window"
        result.append(Figure(f"load_{name}_rss_mb_{label}", rss, "MB", note))
        result.append(
            Figure(f"load_{name}_cpu_pct_{label}", window.cpu_pct(name), "%", "of one core")
        )
    return result


def ceilings(window: Window) -> list[Figure]:
    """Rate at which each service would fill one core, from its CPU at the highest rate."""
    note = f"estimate: {window.achieved:,.0f} changes/s / CPU share at {window.label}, linear"
    return [
        Figure(
            f"load_{name}_ceiling_changes_per_s",
            window.achieved / (window.cpu_pct(name) / 100) if window.cpu_pct(name) else 0.0,
            "changes/s",
            note,
        )
        for name in SERVICES
    ]


def totals(windows: list[Window], dead_letters: int, whole_run: dict[str, int]) -> list[Figure]:
    lag = max((worst_lag(w.end.lags)[0] for w in windows), default=0)
    errors = {name: sum(w.errors[name] for w in windows) for name in SERVICES}
    note = (
        f"ERROR log lines in the load windows: {_by_service(errors)}; whole run, simulator"
        f" restarts included: {_by_service(whole_run)}; logs in {LOG_DIR}"
    )
    return [
        Figure("load_max_consumer_lag", lag, "entries", "worst group at the end of any window"),
        Figure("load_errors", sum(errors.values()), "lines", note),
        Figure(
            "load_dead_letters", dead_letters, "entries", "dead-letter stream length, whole run"
        ),
    ]


def _by_service(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items())


def soak_figures(window: Window) -> list[Figure]:
    growth = {name: window.rss_growth_mb(name) for name in SERVICES}
    worst = max(growth, key=lambda name: growth[name])
    breakdown = ", ".join(
        f"{name} {mb:+.1f} ({window.late_rss_growth_mb(name):+.1f} in the second half)"
        for name, mb in growth.items()
    )
    objects = {name: window.blocks_growth_pct(name) for name in SERVICES}
    most = max(objects, key=lambda name: objects[name])
    objects_note = ", ".join(
        f"{name} {pct:+.1f}% ({window.blocks_growth_pct(name, late=True):+.1f}% in the second half)"
        for name, pct in objects.items()
    )
    return [
        Figure("soak_rss_growth_mb", growth[worst], "MB", f"worst {worst}; {breakdown}"),
        Figure(
            "soak_py_objects_growth_pct",
            objects[most],
            "%",
            f"live Python objects (allocated blocks), worst {most}; {objects_note}",
        ),
        Figure("soak_achieved_changes_per_s", window.achieved, "changes/s", achieved_note(window)),
        *latency_figures("soak", window),
        Figure("soak_consumer_lag_end", worst_lag(window.end.lags)[0], "entries", lag_note(window)),
        Figure("soak_errors", sum(window.errors.values()), "lines", "ERROR log lines"),
    ]


if __name__ == "__main__":
    from bench.figures import print_table

    print_table(run())
