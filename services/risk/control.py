"""``python -m services.risk.control COMMAND``: the operator's kill switch from a shell.

Publishes a ControlCommand on the ``control`` stream, the same one the
dashboard's buttons publish: risk applies it (and persists a kill or halt
across restarts), execution cancels every resting order on ``kill``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
import uuid

from shared.bus.connection import connect_redis
from shared.bus.publisher import Publisher
from shared.config import ConfigError, load_settings
from shared.messages import Command, ControlCommand
from shared.streams import CONTROL

COMMANDS = [c.value for c in Command if c is not Command.SET_MODE]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.risk.control", description=__doc__)
    parser.add_argument("command", choices=COMMANDS, help="kill, halt, reduce or resume")
    parser.add_argument("--market", default="", help="one market only (halt, reduce, resume)")
    parser.add_argument("--reason", default="", help="why: kept in the audit trail")
    parser.add_argument("--actor", default=f"cli:{getpass.getuser()}", help="who (audit trail)")
    parser.add_argument("--config", metavar="FILE", help="YAML settings file")
    return parser


async def send(command: ControlCommand, redis_url: str, prefix: str) -> str:
    redis = connect_redis(redis_url)
    try:
        return await Publisher(redis, prefix, shards=1, hop="control").publish(CONTROL, command)
    finally:
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"control: config error: {exc}", file=sys.stderr)
        return 2
    if args.command == Command.KILL and args.market:
        print("control: kill stops everything; use halt --market for one market", file=sys.stderr)
        return 2
    command = ControlCommand(
        command_id=uuid.uuid4().hex,
        command=Command(args.command),
        actor=args.actor,
        reason=args.reason,
        market=args.market,
        ts_ns=time.time_ns(),
    )
    entry = asyncio.run(send(command, settings.redis_url, settings.key_prefix))
    print(f"{command.command.value} sent ({entry}) by {command.actor}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
