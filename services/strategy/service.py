"""The strategy service process (its capability arrives with issue #5)."""

from __future__ import annotations

import structlog

from shared.runtime import ServiceContext, service_main, wait_until_stopped

log = structlog.get_logger("strategy")

DESCRIPTION = "Strategy: fair values, fee-adjusted Kelly and arbitrage scans into signals."


async def run(ctx: ServiceContext) -> None:
    log.warning("scaffold only: heartbeats and role, no strategy logic yet (issue #5)")
    await wait_until_stopped(ctx)


def main(argv: list[str] | None = None) -> int:
    return service_main("strategy", DESCRIPTION, run, role="sharded", argv=argv)
