"""Splitting event shards among the live replicas of a scaled service.

Each replica announces itself in a sorted set (score = expiry, Redis clock);
the live replicas, sorted by name, take shards round-robin. A replica only acts
on a shard while it holds that shard's lease, so during a rebalance two
replicas never act on one event at once.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
import structlog

from shared.bus.lease import Lease

log = structlog.get_logger("shards")


def assign(shards: int, members: list[str], member: str) -> set[int]:
    """The shards ``member`` should own among ``members`` (deterministic round-robin)."""
    ordered = sorted(set(members))
    if member not in ordered:
        return set()
    index = ordered.index(member)
    return {shard for shard in range(shards) if shard % len(ordered) == index}


class ShardOwnership:
    """Which shards of ``service`` this replica owns right now."""

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        *,
        service: str,
        member: str,
        shards: int,
        ttl_ms: int,
    ) -> None:
        self.redis: Any = redis  # redis-py's stubs reject bytes-keyed dicts
        self.member = member
        self.shards = shards
        self.ttl_ms = ttl_ms
        self._members_key = f"{prefix}members:{service}"
        self._leases = {
            shard: Lease(redis, f"{prefix}lease:{service}:shard:{shard}", member, ttl_ms)
            for shard in range(shards)
        }

    async def live_members(self) -> list[str]:
        seconds, micros = await self.redis.time()
        now_ms = seconds * 1000 + micros // 1000
        pipe = self.redis.pipeline(transaction=True)
        pipe.zadd(self._members_key, {self.member: now_ms + self.ttl_ms})
        pipe.zremrangebyscore(self._members_key, "-inf", now_ms)
        pipe.zrange(self._members_key, 0, -1)
        *_, members = await pipe.execute()
        return [name.decode() for name in members]

    async def refresh(self) -> set[int]:
        """Announce, rebalance, renew; returns the shards held now. Call every ttl/3."""
        wanted = assign(self.shards, await self.live_members(), self.member)
        for shard, lease in self._leases.items():
            if shard in wanted:
                await lease.try_acquire()
            elif lease.held:
                await lease.release()
                log.info("shard released", shard=shard, member=self.member)
        return self.owned()

    def owned(self) -> set[int]:
        return {shard for shard, lease in self._leases.items() if lease.held}

    async def leave(self) -> None:
        await self.redis.zrem(self._members_key, self.member)
        for lease in self._leases.values():
            if lease.held:
                await lease.release()
