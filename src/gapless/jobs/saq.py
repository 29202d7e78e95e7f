"""Generations as jobs of a SAQ queue in Redis: `SaqRunner` enqueues and stops, `SaqWorker` runs.

Why SAQ: asyncio-native, a Redis queue, keyed jobs, heartbeats and sweeps.
- **Submit** enqueues a `generate` job keyed by the reply id: while that job is
  unfinished, enqueueing it again is a no-op, and a second run of a reply
  (a retry after a sweep, a double delivery) finds it taken: its lease makes it
  a no-op.
- **Stop** is cooperative across processes: the reply id is published on a
  control channel every worker listens to, and kept a minute under a key for a
  run that registers just after. The worker running it sets that run's `stop`
  event (never a hard cancel: it could cut an append in half); the asking side
  waits, bounded, until the reply has ended, and answers False when no worker
  is running it (queued, or its worker died), so the caller ends it itself.
- **Lost jobs**: a running job heartbeats to SAQ, so a job dequeued by a worker
  that died before taking the reply's lease is swept and delivered again.
  A run that dies after taking it is ended by the lease reaper instead.
Imports `jobs.base`; `saq` and `redis` are imported only here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError
from saq import Job as SaqJob
from saq import Queue, Worker
from saq.job import Status
from saq.types import Context

from gapless.jobs.base import Job

logger = logging.getLogger("gapless.jobs")

NAME = "gapless"  # the SAQ queue name; its keys live under `saq:job:gapless:` etc.
FUNCTION = "generate"
HEARTBEAT = 15  # seconds without a job heartbeat after which SAQ sweeps and redelivers it
RETRIES = 3  # deliveries of one job; later ones are no-ops once the reply is taken
STOP_WAIT = 3.0  # longest a stop waits for the running worker to end the reply
POLL = 0.05
RETRY = 1.0  # seconds between reconnects of the control channel listener

Ended = Callable[[str], Awaitable[bool]]


def stop_channel(name: str) -> str:
    return f"gapless:{name}:stop"


def stop_key(name: str, reply_id: str) -> str:
    return f"gapless:{name}:stop:{reply_id}"


def queue_from_url(url: str, name: str = NAME) -> Queue:
    if not url.startswith(("redis://", "rediss://")):
        raise ValueError(f"the job queue must be redis://..., not {url!r}")
    return Queue.from_url(url, name=name)


class SaqRunner:
    """The API side: enqueue a reply's generation, and stop it wherever it runs.

    `ended(reply_id)` answers whether the reply has ended (its row is final or gone).
    """

    def __init__(self, url: str, ended: Ended, *, name: str = NAME, wait: float = STOP_WAIT):
        self.queue = queue_from_url(url, name)
        self._redis: Redis = Redis.from_url(url)
        self._name, self._ended, self._wait = name, ended, wait
        self._connected = False

    async def _connect(self) -> None:
        if not self._connected:
            await self.queue.connect()
            self._connected = True

    async def submit(self, reply_id: str) -> None:
        await self._connect()
        job = SaqJob(
            FUNCTION,
            kwargs={"reply_id": reply_id},
            key=reply_id,
            timeout=0,  # a generation may be long; stop and the lease bound it
            heartbeat=HEARTBEAT,
            retries=RETRIES,
        )
        await self.queue.enqueue(job)

    async def stop(self, reply_id: str) -> bool:
        """Ask the worker running `reply_id` to stop; True once the reply has ended."""
        await self._connect()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(stop_key(self._name, reply_id), "1", ex=60)
            pipe.publish(stop_channel(self._name), reply_id)
            await pipe.execute()
        deadline = time.monotonic() + self._wait
        while True:
            if await self._ended(reply_id):
                return True
            if time.monotonic() > deadline or not await self.running(reply_id):
                return False
            await asyncio.sleep(POLL)

    async def running(self, reply_id: str) -> bool:
        """Whether a worker took the job (it may have died since: then the wait is bounded)."""
        job = await self.queue.job(reply_id)
        return job is not None and job.status in (Status.ACTIVE, Status.ABORTING)

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.queue.disconnect()
        await self._redis.aclose()


class SaqWorker:
    """The worker side: runs `job(reply_id, stop)` for each dequeued reply, `concurrency` at once.

    `abandon(reply_id)` is awaited for a run that was cancelled (shutdown past
    its grace period, or an abort): it ends the reply with its partial text.
    """

    def __init__(
        self,
        url: str,
        job: Job,
        abandon: Callable[[str], Awaitable[None]],
        *,
        concurrency: int = 4,
        name: str = NAME,
        grace: float = 10.0,
    ) -> None:
        self.queue = queue_from_url(url, name)
        self._redis: Redis = Redis.from_url(url)
        self._name, self._job, self._abandon = name, job, abandon
        self.runs: dict[str, asyncio.Event] = {}
        self.worker = Worker(
            self.queue,
            functions=[(FUNCTION, self._generate)],
            concurrency=concurrency,
            dequeue_timeout=1.0,  # idle loops notice a shutdown within a second
            # A sweep that reads a job just dequeued (before SAQ marks it active) aborts it:
            # rare sweeps keep that race rare; lost jobs are rare too.
            timers={"schedule": 1, "worker_info": 5, "sweep": 10, "abort": 1},
            shutdown_grace_period_s=math.ceil(grace),
        )
        self.worker.SIGNALS = []  # the process installs its own handlers

    async def _generate(self, ctx: Context, *, reply_id: str) -> None:
        stop = self.runs.setdefault(reply_id, asyncio.Event())
        beat = asyncio.create_task(_heartbeat(ctx["job"]))
        try:
            if await self._redis.exists(stop_key(self._name, reply_id)):
                stop.set()  # stopped before this run listened
            await self._job(reply_id, stop)
        except asyncio.CancelledError:
            await asyncio.shield(self._abandon(reply_id))
            raise
        finally:
            beat.cancel()
            self.runs.pop(reply_id, None)

    async def listen(self) -> None:
        """Set the stop event of each run named on the control channel; reconnects forever."""
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(stop_channel(self._name))
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self._stop(message["data"])
            except (RedisError, OSError) as exc:
                logger.warning("stop channel lost (%s); reconnecting", exc)
                await asyncio.sleep(RETRY)

    def _stop(self, data: bytes | str) -> None:
        reply_id = data.decode() if isinstance(data, bytes) else data
        run = self.runs.get(reply_id)
        if run is not None:
            run.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Work until `stopping` is set, then let runs finish for `grace` seconds, then cancel."""
        await self.queue.connect()
        listener = asyncio.create_task(self.listen())
        working = asyncio.create_task(self.worker.start())
        asked = asyncio.create_task(stopping.wait())
        try:
            await asyncio.wait({working, asked}, return_when=asyncio.FIRST_COMPLETED)
            self.worker.event.set()  # no new dequeues; SAQ waits for runs, then cancels
            await working
        finally:
            for task in (listener, asked):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(RedisError, OSError):
                await self.queue.disconnect()
            await self._redis.aclose()


async def _heartbeat(job: SaqJob) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT / 3)
        try:
            await job.update()
        except (RedisError, OSError):
            logger.warning("job heartbeat of %s failed", job.key, exc_info=True)
