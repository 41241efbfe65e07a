"""What every service process shares: command line, settings, logs, Redis,
heartbeats, clean shutdown, and the active/standby or shard-owner role.

A service is an async ``body(ctx)`` run by :func:`service_main`:

* ``role="singleton"`` (risk, execution): one active instance holds a Redis
  lease and runs the body; any other instance stands by and takes over when the
  lease lapses.
* ``role="sharded"`` (ingest, strategy): every replica runs the body; it reads
  ``ctx.owned_shards`` (kept current from shard leases) to know which events
  are its own.
* ``role="free"`` (dashboard, simulator): just runs.

Every service also serves its Prometheus metrics (``shared/metrics.py``) on
``metrics.base_port`` + its offset, unless ``metrics.enabled`` is false.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

import redis.asyncio as aioredis
import structlog

from shared import metrics
from shared.bus.connection import TRANSIENT_ERRORS, connect_redis, raise_if_cancelling
from shared.bus.consumer import Consumer, Handler
from shared.bus.lease import Lease, run_as_leader
from shared.bus.publisher import Publisher
from shared.bus.shards import ShardOwnership
from shared.config import ConfigError, Settings, load_settings
from shared.logs import configure_logging, register_secret
from shared.memory_trace import trace_growth
from shared.messages import Heartbeat
from shared.streams import HEARTBEATS, StreamSpec

log = structlog.get_logger("runtime")

Role = Literal["singleton", "sharded", "free"]


class ServiceError(Exception):
    """A service cannot run as configured; the message says why, in one line."""


HEARTBEAT_INTERVAL_S = 1.0


def package_version() -> str:
    try:
        return version("kalshi-hv-bot")
    except PackageNotFoundError:
        return "0+unknown"


@dataclass
class ServiceContext:
    """Handed to a service body: its settings, bus and shutdown signal."""

    name: str
    instance: str
    settings: Settings
    redis: aioredis.Redis
    publisher: Publisher
    stop: asyncio.Event
    args: argparse.Namespace
    role: str = "starting"
    owned_shards: set[int] = field(default_factory=set)
    info: dict[str, str] = field(default_factory=dict)
    """Extra facts the heartbeat carries (e.g. feed freshness)."""


Body = Callable[[ServiceContext], Coroutine[Any, Any, None]]
AddArguments = Callable[[argparse.ArgumentParser], None]


def build_parser(
    name: str, description: str, add_arguments: AddArguments | None
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m services.{name}",
        description=description,
        epilog="Settings come from the environment and an optional YAML file; "
        "see config/settings.example.yaml for every key.",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="YAML settings file (default: $KHV_CONFIG)"
    )
    parser.add_argument(
        "--instance",
        default=f"{socket.gethostname()}-{os.getpid()}",
        help="this instance's name on the bus (default: host-pid)",
    )
    if add_arguments:
        add_arguments(parser)
    return parser


def service_main(
    name: str,
    description: str,
    body: Body,
    *,
    role: Role = "free",
    add_arguments: AddArguments | None = None,
    argv: list[str] | None = None,
) -> int:
    """Parse the command line, load settings, run the body until SIGINT/SIGTERM."""
    args = build_parser(name, description, add_arguments).parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"{name}: config error: {exc}", file=sys.stderr)
        return 2
    configure_logging(name, settings.log_level, settings.log_format)
    for secret in (settings.kalshi_key_id, settings.dashboard_token):
        register_secret(secret.get_secret_value() if secret else None)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run(name, args, settings, body, role))
    except ServiceError as exc:
        log.error("cannot run", reason=str(exc))
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    return 0


async def _run(
    name: str, args: argparse.Namespace, settings: Settings, body: Body, role: Role
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    redis = connect_redis(settings.redis_url)
    ctx = ServiceContext(
        name=name,
        instance=args.instance,
        settings=settings,
        redis=redis,
        publisher=Publisher(redis, settings.key_prefix, shards=settings.bus.shards, hop=name),
        stop=stop,
        args=args,
    )
    log.info(
        "starting", instance=ctx.instance, role=role, mode=settings.mode, version=package_version()
    )
    metrics.serve(settings.metrics, name)
    metrics.SERVICE_INFO.labels(name, ctx.instance, package_version()).set(1)
    heartbeat = asyncio.create_task(send_heartbeats(ctx), name="heartbeats")
    tracer = asyncio.create_task(trace_growth(name, ctx.instance, stop), name="memory trace")
    try:
        await _run_role(ctx, body, role)
    finally:
        stop.set()
        heartbeat.cancel()
        await asyncio.gather(heartbeat, tracer, return_exceptions=True)
        await redis.aclose()
        log.info("stopped", instance=ctx.instance)


async def _run_role(ctx: ServiceContext, body: Body, role: Role) -> None:
    if role == "singleton":
        lease = Lease(
            ctx.redis,
            f"{ctx.settings.key_prefix}lease:{ctx.name}",
            ctx.instance,
            ctx.settings.bus.lease_ttl_ms,
        )

        def on_role(new: str) -> None:
            ctx.role = new

        await run_as_leader(lease, ctx.stop, lambda: body(ctx), on_role)
        return
    if role == "sharded":
        ctx.role = "active"
        keeper = asyncio.create_task(_keep_shards(ctx), name="shards")
        try:
            await body(ctx)
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
        return
    ctx.role = "active"
    await body(ctx)


async def _keep_shards(ctx: ServiceContext) -> None:
    ownership = ShardOwnership(
        ctx.redis,
        ctx.settings.key_prefix,
        service=ctx.name,
        member=ctx.instance,
        shards=ctx.settings.bus.shards,
        ttl_ms=ctx.settings.bus.lease_ttl_ms,
    )
    try:
        while True:
            try:
                owned = await ownership.refresh()
            except TRANSIENT_ERRORS as exc:
                log.warning("shard refresh failed", error=str(exc))
                owned = ownership.owned()
            if owned != ctx.owned_shards:
                log.info("shards", owned=sorted(owned))
                ctx.owned_shards = owned
            await asyncio.sleep(ctx.settings.bus.lease_ttl_ms / 3000)
    finally:
        with contextlib.suppress(*TRANSIENT_ERRORS):
            await ownership.leave()


async def send_heartbeats(ctx: ServiceContext) -> None:
    """Tell the bus every second that this instance lives, and in which role."""
    started = time.time()
    while True:
        for role in metrics.ROLES:
            metrics.SERVICE_ROLE.labels(ctx.name, role).set(1 if ctx.role == role else 0)
        # a replica that gains shards needs their books (ingest republishes on a change)
        shards = (
            {"shards": ",".join(map(str, sorted(ctx.owned_shards)))} if ctx.owned_shards else {}
        )
        beat = Heartbeat(
            service=ctx.name,
            instance=ctx.instance,
            version=package_version(),
            role=ctx.role,
            ts_ns=time.time_ns(),
            info={
                "uptime_s": str(int(time.time() - started)),
                # live Python objects: flat while RSS climbs means the allocator, not a leak
                "py_blocks": str(sys.getallocatedblocks()),
                **shards,
                **ctx.info,
            },
        )
        try:
            async with asyncio.timeout(HEARTBEAT_INTERVAL_S * 2):
                await ctx.publisher.publish(HEARTBEATS, beat)
        except (TimeoutError, *TRANSIENT_ERRORS):
            # the publisher already logs outages; a missed beat is the signal. redis-py can
            # turn our own cancellation into a connection error: that one must end the loop
            raise_if_cancelling()
        await asyncio.sleep(HEARTBEAT_INTERVAL_S)


TRADING_BLOCK_MS = 100
"""Consumers on the trading path wake at least this often (stop, shard changes)."""


def consumer(
    ctx: ServiceContext,
    spec: StreamSpec,
    group: str,
    handler: Handler,
    shards: Iterable[int] | None = None,
) -> Consumer:
    """A consumer of ``spec`` for this service instance, tuned by the ``bus`` settings."""
    bus = ctx.settings.bus
    return Consumer(
        ctx.redis,
        ctx.settings.key_prefix,
        spec,
        group=group,
        name=ctx.instance,
        handler=handler,
        shards=shards,
        batch=bus.batch,
        block_ms=min(bus.block_ms, TRADING_BLOCK_MS),
        claim_idle_ms=bus.claim_idle_ms,
        claim_every_ms=bus.claim_every_ms,
        max_failures=bus.max_failures,
    )


async def wait_until_stopped(ctx: ServiceContext) -> None:
    await ctx.stop.wait()


async def run_until_stopped(stop: asyncio.Event, *jobs: Coroutine[Any, Any, None]) -> None:
    """Run jobs as tasks until ``stop`` is set or one of them fails; then cancel the rest."""
    tasks = [asyncio.create_task(job) for job in jobs]
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopper and not task.cancelled():
                task.result()  # re-raise a job's crash
    finally:
        for task in [*tasks, stopper]:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, stopper, return_exceptions=True)
