"""Generations as jobs of a SAQ queue: `SaqRunner` enqueues and stops, `SaqWorker` runs.

Why SAQ: asyncio-native, a Redis or a PostgreSQL queue (`jobs/redis.py`,
`jobs/postgres.py`, chosen by the URL's scheme), keyed jobs, heartbeats, sweeps.
- **Submit** enqueues a `generate` job keyed by the reply id: while that job is
  unfinished, enqueueing it again is a no-op, and a second run of a reply
  (a retry after a sweep, a double delivery) finds it taken: its lease makes it
  a no-op.
- **Stop** is cooperative across processes: the reply id goes out on the queue
  engine's control channel (`jobs/control.py`), which every worker listens to.
  The worker running it sets that run's `stop` event (never a hard cancel: it
  could cut an append in half); the asking side waits, bounded, until the reply
  has ended, and answers False when no worker is running it (queued, or its
  worker died), so the caller ends it itself.
- **Lost jobs**: a running job heartbeats to SAQ, so a job dequeued by a worker
  that died before taking the reply's lease is swept and delivered again.
  A run that dies after taking it is ended by the lease reaper instead.
- **Sweeps never cancel a run.** SAQ's Redis queue moves a job to its active list
  (BLMOVE) and marks it active in a second step (`Worker.process` ->
  `job.update(status=ACTIVE)`); a sweep reading the job in between finds it
  "queued" while active and aborts it (tobymao/saq#277). When the worker's write
  lands between the sweep's read and its abort, the record says `aborting` and
  SAQ's worker cancels the task of a healthy run. Here `_Worker.abort` never
  cancels: the only aborts are sweeps, which can misjudge a live run, and a run's
  life is decided by its lease and the stop channel. The sweep's redelivery of a
  run that goes on is a no-op (the reply is taken).
Imports `jobs.base`, `jobs.control`, and an engine module; `saq` is imported only in `jobs/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from saq import Job as SaqJob
from saq import Queue, Worker
from saq.job import Status
from saq.types import Context
from saq.utils import millis

from gapless.jobs.base import Job
from gapless.jobs.control import Control
from gapless.observe import carrier

logger = logging.getLogger("gapless.jobs")

NAME = "gapless"  # the SAQ queue name; its Redis keys live under `saq:gapless:` etc.
FUNCTION = "generate"
HEARTBEAT = 15  # seconds without a job heartbeat after which SAQ sweeps and redelivers it
RETRIES = 3  # deliveries of one job; later ones are no-ops once the reply is taken
STOP_WAIT = 3.0  # longest a stop waits for the running worker to end the reply
POLL = 0.05
POOL = 12  # a worker's pooled connections to a PostgreSQL queue, besides its listeners
SCHEMES = ("redis://", "rediss://", "postgresql://", "postgres://", "postgresql+")

Ended = Callable[[str], Awaitable[bool]]


def engine(
    url: str, name: str = NAME, queue: Queue | None = None, connections: int = 4
) -> tuple[Queue, Control]:
    """The SAQ queue at `url` and its stop channel (`queue`: a prepared one, for tests)."""
    if url.startswith(("redis://", "rediss://")):
        from gapless.jobs import redis

        return redis.engine(url, name, queue)
    if url.startswith(SCHEMES):
        from gapless.jobs import postgres  # lazy: psycopg is only needed when chosen

        return postgres.engine(url, name, queue, connections)
    raise ValueError(f"the job queue must be redis://... or postgresql://..., not {url!r}")


def queue_from_url(url: str, name: str = NAME) -> Queue:
    """The bare SAQ queue at `url` (tests enqueue and dequeue on it as a foreign process)."""
    return engine(url, name)[0]


class SaqRunner:
    """The API side: enqueue a reply's generation, and stop it wherever it runs.

    `ended(reply_id)` answers whether the reply has ended (its row is final or gone).
    """

    def __init__(
        self,
        url: str,
        ended: Ended,
        *,
        held: Ended | None = None,
        name: str = NAME,
        wait: float = STOP_WAIT,
    ):
        self.queue, self.control = engine(url, name)
        self._ended, self._held, self._wait = ended, held, wait
        self._connected = False

    async def _connect(self) -> None:
        if not self._connected:
            await self.queue.connect()
            self._connected = True

    async def submit(self, reply_id: str, *, key: str | None = None) -> None:
        await self._connect()
        job = SaqJob(
            FUNCTION,
            kwargs={"reply_id": reply_id, **carrier.kwargs()},
            key=key or reply_id,
            timeout=0,  # a generation may be long; stop and the lease bound it
            heartbeat=HEARTBEAT,
            retries=RETRIES,
        )
        await self.queue.enqueue(job)

    async def stop(self, reply_id: str) -> bool:
        """Ask the worker running `reply_id` to stop; True once the reply has ended."""
        await self._connect()
        await self.control.ask(reply_id)
        deadline = time.monotonic() + self._wait
        while True:
            if await self._ended(reply_id):
                return True
            if time.monotonic() > deadline or not await self.running(reply_id):
                return False
            await asyncio.sleep(POLL)

    async def running(self, reply_id: str) -> bool:
        """Whether a worker took the job (it may have died since: then the wait is bounded),
        or a run holds the reply (`held`: its lease): a reply going on after an approval
        runs as a job of another key, which only the reply's lease names."""
        job = await self.queue.job(reply_id)
        if job is not None and job.status in (Status.ACTIVE, Status.ABORTING):
            return True
        return self._held is not None and await self._held(reply_id)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.control.close()
        with contextlib.suppress(Exception):
            await self.queue.disconnect()


class _Worker(Worker):  # type: ignore[type-arg]
    """SAQ's worker, except that an abort never cancels a run (see the module's docstring),
    and a shutdown ends the upkeep loops' sleep."""

    async def upkeep(self) -> list[asyncio.Task[None]]:
        """SAQ's upkeep loops, but SAQ's sleep their whole period (the sweep's 10 s) before
        they see a shutdown, so an idle worker took that long to exit; these wake with it."""

        async def every(work: Callable[[int], Awaitable[object]], seconds: int) -> None:
            while not self.event.is_set():
                try:
                    await work(seconds)
                except Exception:
                    logger.exception("upkeep %s failed", getattr(work, "__name__", work))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.event.wait(), seconds)

        timers = self.timers
        return [
            asyncio.create_task(every(self.abort, timers["abort"])),
            asyncio.create_task(every(self.schedule, timers["schedule"])),
            asyncio.create_task(every(self.queue.sweep, timers["sweep"])),
            asyncio.create_task(
                every(lambda _: self.worker_info(timers["worker_info"] + 1), timers["worker_info"])
            ),
        ]

    async def abort(self, abort_threshold: float) -> None:
        # SAQ's selection, so a swept run is noticed (and logged) when SAQ would cancel it.
        running = [
            job
            for job in self.job_task_contexts
            if (job.duration("running") or 0) >= millis(abort_threshold)
        ]
        if not running:
            return
        for job in await self.queue.jobs(job.key for job in running):
            if job is not None and job.status in (Status.ABORTING, Status.ABORTED):
                logger.warning("SAQ swept %s while it runs here: the run goes on", job.key)


class SaqWorker:
    """The worker side: runs `job(reply_id, stop)` for each dequeued reply, `concurrency` at once.

    `abandon(reply_id)` is awaited for a run that was cancelled (shutdown past
    its grace period): it ends the reply with its partial text. `queue`: a
    prepared SAQ queue for `url` (tests gate its methods to force interleavings).
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
        queue: Queue | None = None,
    ) -> None:
        # Pooled connections (PostgreSQL): each run holds one only for a moment (a heartbeat,
        # its final update), so a few serve many runs; the server's limit (100 by default)
        # is shared with every process's own database pool.
        self.queue, self.control = engine(url, name, queue, connections=POOL)
        self._job, self._abandon = job, abandon
        self.runs: dict[str, asyncio.Event] = {}
        self._holders: Counter[str] = Counter()  # runs of each reply here (a redelivery)
        self.worker = _Worker(
            self.queue,
            functions=[(FUNCTION, self._generate)],
            concurrency=concurrency,
            dequeue_timeout=1.0,  # idle loops notice a shutdown within a second
            timers={"schedule": 1, "worker_info": 5, "sweep": 10, "abort": 1},
            shutdown_grace_period_s=math.ceil(grace),
        )
        self.worker.SIGNALS = []  # the process installs its own handlers
        setattr(self.queue, "dequeue", self._in_turn(self.queue.dequeue))  # noqa: B010

    def _in_turn(self, dequeue: Callable[[float, float], Awaitable[SaqJob | None]]) -> Any:
        """SAQ runs one dequeue loop per free slot, each blocked in the engine: with 256
        slots, 256 Redis connections in BLMOVE (or 256 waits on the PostgreSQL queue's
        listener) timing out together every second, a burst of CPU that a reply starting
        just then waited behind. Here one free slot at a time asks the engine; the others
        wait their turn in this process, and after a shutdown began they ask nothing.
        A queue may let a few slots in at once (`turns`): see the PostgreSQL one's."""
        queue = self.queue
        turn = asyncio.Semaphore(getattr(queue, "turns", 1))

        async def dequeue_in_turn(
            timeout: float = 0.0,  # noqa: ASYNC109 (SAQ's signature)
            poll_interval: float = 0.0,
        ) -> SaqJob | None:
            if hasattr(queue, "behind"):  # the PostgreSQL queue takes as many as wait
                queue.behind += 1
            try:
                await turn.acquire()
            finally:
                if hasattr(queue, "behind"):
                    queue.behind -= 1
            try:
                if self.worker.event.is_set():
                    return None
                return await dequeue(timeout, poll_interval)
            finally:
                turn.release()

        return dequeue_in_turn

    async def _generate(self, ctx: Context, *, reply_id: str, trace: str | None = None) -> None:
        stop = self.runs.setdefault(reply_id, asyncio.Event())
        self._holders[reply_id] += 1
        beat = asyncio.create_task(_heartbeat(ctx["job"]))
        # Asked to stop before this run listened? Looked up beside the run's start (a round
        # trip less before its first token): the run reads and takes its reply before
        # asking the model for a chunk, and checks `stop` before every one.
        asked = asyncio.create_task(self._asked(reply_id, stop))
        try:
            with carrier.carrying(trace):  # the submitter's trace context, when exporting
                await self._job(reply_id, stop)
        except asyncio.CancelledError:
            await asyncio.shield(self._abandon(reply_id))
            raise
        finally:
            beat.cancel()
            asked.cancel()
            self._holders[reply_id] -= 1
            if not self._holders[reply_id]:
                del self._holders[reply_id], self.runs[reply_id]

    async def _asked(self, reply_id: str, stop: asyncio.Event) -> None:
        try:
            if await self.control.asked(reply_id):
                stop.set()
        except Exception:  # the engine away: only a stop asked before this run is missed
            logger.warning("looking up a stop of %s failed", reply_id, exc_info=True)

    def _stop(self, reply_id: str) -> None:
        run = self.runs.get(reply_id)
        if run is not None:
            run.set()

    async def _recheck(self) -> None:
        """After the channel (re)subscribed: stop the runs asked while it was not listening."""
        for reply_id in list(self.runs):
            if await self.control.asked(reply_id):
                self._stop(reply_id)

    async def run(self, stopping: asyncio.Event) -> None:
        """Work until `stopping` is set, then let runs finish for `grace` seconds, then cancel."""
        await self.queue.connect()
        listener = asyncio.create_task(self.control.listen(self._stop, self._recheck))
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
            with contextlib.suppress(Exception):
                await self.control.close()
            with contextlib.suppress(Exception):
                await self.queue.disconnect()


async def _heartbeat(job: SaqJob) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT / 3)
        try:
            await job.update()
        except Exception:  # the queue's engine is away for a moment: the next beat may pass
            logger.warning("job heartbeat of %s failed", job.key, exc_info=True)
