"""The ingest service process (its capability arrives with issue #4)."""

from __future__ import annotations

import structlog

from shared.runtime import ServiceContext, service_main, wait_until_stopped

log = structlog.get_logger("ingest")

DESCRIPTION = "Ingest: trusted Kalshi order books and outside signals onto the bus."


async def run(ctx: ServiceContext) -> None:
    log.warning("scaffold only: heartbeats and role, no ingest logic yet (issue #4)")
    await wait_until_stopped(ctx)


def main(argv: list[str] | None = None) -> int:
    return service_main("ingest", DESCRIPTION, run, role="sharded", argv=argv)
