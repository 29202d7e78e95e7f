"""The Redis engine of the SAQ runner: SAQ's Redis queue, and a stop channel over pub/sub.

An ask is one MULTI: a key kept `KEEP` seconds and a PUBLISH on the channel
every worker subscribes to, so a run registering at any moment either hears it
or finds the key. The queue publishes no job status changes (`_RedisQueue`).
Imports `jobs.control`; `redis` and SAQ's Redis queue are imported only here (and
in `log/`).
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError
from saq import Job as SaqJob
from saq import Queue
from saq.queue.redis import RedisQueue

from gapless.jobs.control import KEEP, RETRY, Control, Ready, Stop

logger = logging.getLogger("gapless.jobs")


def engine(url: str, name: str, queue: Queue | None = None) -> tuple[Queue, Control]:
    """SAQ's Redis queue `name` on `url` (or `queue`, which tests gate), and its stop channel."""
    return queue or _RedisQueue.from_url(url, name=name), RedisControl(url, name)


class _RedisQueue(RedisQueue):
    """SAQ's Redis queue, without publishing every change of a job's status: only SAQ's
    `listen` (`apply`, `map`, `refresh(until_complete=...)`) hears those, and nothing
    here uses it (stop has its own channel, `SaqRunner.running` reads the record). A
    run started only after that PUBLISH's round trip, and finished before another."""

    async def notify(self, job: SaqJob) -> None:
        return None


class RedisControl:
    def __init__(self, url: str, name: str) -> None:
        self._redis: Redis = Redis.from_url(url)
        self._channel = f"gapless:{name}:stop"
        self._key = f"gapless:{name}:stop:"

    async def ask(self, reply_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key + reply_id, "1", ex=KEEP)
            pipe.publish(self._channel, reply_id)
            await pipe.execute()

    async def asked(self, reply_id: str) -> bool:
        return bool(await self._redis.exists(self._key + reply_id))

    async def listen(self, stop: Stop, ready: Ready) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    await ready()
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            data = message["data"]
                            stop(data.decode() if isinstance(data, bytes) else data)
            except (RedisError, OSError) as exc:
                logger.warning("stop channel lost (%s); reconnecting", exc)
                await asyncio.sleep(RETRY)

    async def close(self) -> None:
        await self._redis.aclose()
