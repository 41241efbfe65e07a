"""The risk service process (its capability arrives with issue #6)."""

from __future__ import annotations

import structlog

from shared.runtime import ServiceContext, service_main, wait_until_stopped

log = structlog.get_logger("risk")

DESCRIPTION = (
    "Risk: the guardian between every signal and every order"
    " (one active instance, the others stand by)."
)


async def run(ctx: ServiceContext) -> None:
    log.warning("scaffold only: heartbeats and role, no risk logic yet (issue #6)")
    await wait_until_stopped(ctx)


def main(argv: list[str] | None = None) -> int:
    return service_main("risk", DESCRIPTION, run, role="singleton", argv=argv)
