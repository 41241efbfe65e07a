"""The execution service process (its capability arrives with issue #7)."""

from __future__ import annotations

import structlog

from shared.runtime import ServiceContext, service_main, wait_until_stopped

log = structlog.get_logger("execution")

DESCRIPTION = (
    "Execution: maker and sniper routing, live and paper, and the ledger"
    " (one active instance, the others stand by)."
)


async def run(ctx: ServiceContext) -> None:
    log.warning("scaffold only: heartbeats and role, no execution logic yet (issue #7)")
    await wait_until_stopped(ctx)


def main(argv: list[str] | None = None) -> int:
    return service_main("execution", DESCRIPTION, run, role="singleton", argv=argv)
