"""A consumer process for the exactly-once test: records each fill's effect in Postgres.

Idempotent the way every real handler is: the effect and an inbox row keyed by
the business id (trade_id) are written in one transaction, so a message that is
redelivered after a crash changes nothing.

    python -m tests.shared.bus.ledger_worker REDIS_URL PREFIX DATABASE_URL NAME [HANG_AFTER]

With HANG_AFTER, the worker stops forever after committing that many batches and
before acking the last one: the moment a crash hurts most.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import psycopg

from shared.bus.connection import connect_redis
from shared.bus.consumer import Consumer, Delivery
from shared.messages import Fill
from shared.streams import FILLS

RECORD = """
WITH new AS (
    INSERT INTO inbox (trade_id) SELECT unnest(%(ids)s::text[])
    ON CONFLICT DO NOTHING RETURNING trade_id
)
INSERT INTO effects (trade_id, worker) SELECT trade_id, %(worker)s FROM new
"""


async def main(
    redis_url: str, prefix: str, database_url: str, name: str, hang_after: int = 0
) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    conn = await psycopg.AsyncConnection.connect(database_url)
    batches = 0

    async def record(batch: list[Delivery]) -> None:
        ids = [d.message.trade_id for d in batch if isinstance(d.message, Fill)]
        nonlocal batches
        async with conn.transaction():
            await conn.execute(RECORD, {"ids": ids, "worker": name})
        batches += 1
        if batches == hang_after:
            print("hanging", flush=True)
            await asyncio.Event().wait()
        # the window between a durable effect and its ack, widened on purpose
        await asyncio.sleep(0.01)

    consumer = Consumer(
        connect_redis(redis_url),
        prefix,
        FILLS,
        group="ledger",
        name=name,
        handler=record,
        batch=500,
        block_ms=200,
        claim_idle_ms=1000,
        claim_every_ms=300,
    )
    print("ready", flush=True)
    await consumer.run(stop)
    await conn.close()


if __name__ == "__main__":
    hang = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    asyncio.run(main(*sys.argv[1:5], hang_after=hang))
