"""The Redis engine for the contract suite: a real Redis, one key prefix per test, removed after.

Needs Redis at `GAPLESS_TEST_REDIS_URL` (default 127.0.0.1:6379/0); an unreachable
server fails the suite loudly, it is never skipped.
"""

from __future__ import annotations

import os
import uuid

from redis.asyncio import Redis

from gapless.log.base import EventLog
from gapless.log.redis import RedisLog

URL = os.environ.get("GAPLESS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def drop_prefix(prefix: str) -> None:
    """Delete every key under `prefix` (never FLUSHALL: the server may be shared)."""
    client = Redis.from_url(URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


class ScopedRedisLog(RedisLog):
    """A `RedisLog` under its own prefix that removes its keys when closed."""

    prefix: str

    async def close(self) -> None:
        await super().close()
        await drop_prefix(self.prefix)


def scoped(url: str = URL, prefix: str = "", **options: int) -> ScopedRedisLog:
    """A log under `prefix` (fresh by default); two logs on one prefix act as two processes."""
    prefix = prefix or f"gapless:test:{uuid.uuid4().hex}:"
    log = ScopedRedisLog.from_url(url, prefix=prefix, **options)
    assert isinstance(log, ScopedRedisLog)
    log.prefix = prefix
    return log


async def redis_log() -> EventLog:
    log = scoped()
    await log.head("chat:ping")  # fail loudly here when Redis is not reachable
    return log
