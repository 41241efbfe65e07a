"""Running the simulator: in this process (for tests) or as ``python -m services.simulator``."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn

with warnings.catch_warnings():
    # the legacy implementation is the one whose keep-alive ping payload can be set
    warnings.filterwarnings("ignore", message="The `websockets` implementation is deprecated")
    warnings.filterwarnings("ignore", message="websockets.legacy is deprecated")
    from uvicorn.protocols.websockets.websockets_impl import WebSocketProtocol

from services.simulator.agents import Agents, lifecycle_step, run_agents, run_ticks
from services.simulator.app import BackgroundTask, create_app
from services.simulator.faults import FaultInjector
from services.simulator.replay import replay_task
from services.simulator.scenarios import build_scenario
from services.simulator.state import SimSettings, SimState

PING_INTERVAL_S = 10.0


class HeartbeatProtocol(WebSocketProtocol):
    """Kalshi pings every 10 s with the payload ``heartbeat``; a feed stall silences it."""

    faults: FaultInjector | None = None

    async def ping(self, data: Any = None) -> Awaitable[float]:
        if self.faults is not None and self.faults.stalled():
            self.faults.record("feed_stall", "ws:ping", "heartbeat ping not sent")
            skipped: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            skipped.set_result(0.0)
            return skipped
        return await super().ping(b"heartbeat" if data is None else data)

    async def pong(self, data: Any = b"") -> None:
        if self.faults is not None and self.faults.stalled():
            self.faults.record("feed_stall", "ws:pong", "pong to a client ping not sent")
            return
        await super().pong(data)


def heartbeat_protocol(faults: FaultInjector) -> type[HeartbeatProtocol]:
    """The protocol class for one simulator (uvicorn builds one instance per connection)."""
    return type("SimHeartbeatProtocol", (HeartbeatProtocol,), {"faults": faults})


def build_state(settings: SimSettings) -> tuple[SimState, list[BackgroundTask]]:
    state = SimState(settings)
    start_ms = settings.start_ms or state.clock_ms()
    tasks: list[BackgroundTask] = []
    if settings.scenario == "replay":
        if not settings.replay_file:
            raise ValueError("the replay scenario needs --replay-file")
        tasks.append(replay_task(settings.replay_file, settings.replay_speed))
        return state, tasks
    scenario = build_scenario(settings.scenario, settings.seed, state.exchange, start_ms)
    state.scenario = scenario
    if settings.agents:
        agents = Agents(
            state, scenario, settings.flow_rate, settings.mispricing_rate, settings.seed
        )
        state.agents = agents

        async def agents_task(_: SimState) -> None:
            await run_agents(agents)

        tasks.append(agents_task)
    else:
        step = lifecycle_step(state, scenario)

        async def lifecycle_task(_: SimState) -> None:
            await run_ticks(step)

        tasks.append(lifecycle_task)
    return state, tasks


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def uvicorn_config(
    settings: SimSettings, state: SimState, tasks: list[BackgroundTask]
) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(state, tasks),
        host=settings.host,
        port=settings.port,
        ws=heartbeat_protocol(state.faults),
        ws_ping_interval=settings.ping_interval_s,
        ws_ping_timeout=settings.ping_interval_s * 2,
        log_level="warning",
        lifespan="on",
    )


@dataclass
class SimulatorServer:
    """The simulator on a free port in a background thread; use as a context manager."""

    settings: SimSettings = field(default_factory=SimSettings)
    state: SimState = field(init=False)
    _server: uvicorn.Server = field(init=False)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        if self.settings.port == 0:
            self.settings.port = free_port(self.settings.host)
        self.state, tasks = build_state(self.settings)
        self._server = uvicorn.Server(uvicorn_config(self.settings, self.state, tasks))

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    @property
    def rest_url(self) -> str:
        return f"{self.base_url}/trade-api/v2"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.settings.host}:{self.settings.port}/trade-api/ws/v2"

    def start(self, timeout_s: float = 10.0) -> SimulatorServer:
        self._thread = threading.Thread(target=self._server.run, name="simulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("simulator did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's event loop (where the engine lives) and return its result."""
        loop = self._loop()
        return asyncio.run_coroutine_threadsafe(_call(fn), loop).result(timeout=10)

    def _loop(self) -> asyncio.AbstractEventLoop:
        for server in self._server.servers:
            return server.get_loop()
        raise RuntimeError("simulator is not running")

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


async def _call(fn: Callable[[], Any]) -> Any:
    return fn()


def serve_forever(settings: SimSettings) -> None:
    state, tasks = build_state(settings)
    server = uvicorn.Server(uvicorn_config(settings, state, tasks))
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
