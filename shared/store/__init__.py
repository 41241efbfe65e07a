"""The storage layer: Postgres pool, schema migrations, batched writes.

See docs/storage.md for the tables, their units and the writer's guarantees.
"""

from shared.store.migrations import (
    TimescalePolicy,
    applied_migrations,
    migrate,
    timescale_available,
)
from shared.store.pool import Pool, StoreUnavailable, ensure_database, open_pool
from shared.store.writer import BatchWriter, BufferFull, WriterFailed, ts_from_ns

__all__ = [
    "BatchWriter",
    "BufferFull",
    "Pool",
    "StoreUnavailable",
    "TimescalePolicy",
    "WriterFailed",
    "applied_migrations",
    "ensure_database",
    "migrate",
    "open_pool",
    "timescale_available",
    "ts_from_ns",
]
