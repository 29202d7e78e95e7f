"""A SAQ sweep racing a fresh dequeue never cancels a healthy run (tobymao/saq#277).

SAQ's Redis queue takes a job in two steps: BLMOVE into the active list, then
`job.update(status=ACTIVE)` in `Worker.process`. A sweep reading the job between
them finds it "queued" in the active list and aborts it. When the worker's ACTIVE
write lands between the sweep's read and its abort, the record ends up "aborting",
and SAQ's worker cancels the task of a run that is alive and well. Gates on the
real queues (a worker's, and another process's that sweeps) force exactly that
order on the real Redis; nothing waits on a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis
from saq import Job as SaqJob
from saq.job import Status
from saq.queue.redis import RedisQueue

from gapless.jobs.saq import NAME, SaqRunner, SaqWorker
from tests.contract.test_runner_contract import DEADLINE, Probe
from tests.scale.cluster import claimed_redis

TARGET = "hold-race"  # a probe job that runs until it is stopped


class Gates:
    def __init__(self) -> None:
        self.dequeued = asyncio.Event()  # the worker moved the job to the active list
        self.read = asyncio.Event()  # the sweep read it there, still "queued"
        self.release = asyncio.Event()  # let the worker go on and mark it active
        self.active = asyncio.Event()  # the worker's ACTIVE write landed
        self.judged = 0  # the worker's abort checks that found it "aborting"
        self.changed = asyncio.Event()

    def judge(self) -> None:
        self.judged += 1
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class WorkerQueue(RedisQueue):
    """The worker's queue: holds the dequeued job until the sweep has read it."""

    gates: Gates

    async def dequeue(
        self,
        timeout: float = 0.0,  # noqa: ASYNC109 (SAQ's signature)
        poll_interval: float = 0.0,
    ) -> SaqJob | None:
        job = await super().dequeue(timeout, poll_interval)
        if job is not None and job.key == TARGET and not self.gates.dequeued.is_set():
            self.gates.dequeued.set()
            await self.gates.release.wait()
        return job

    async def _update(self, job: SaqJob, status: Status | None = None, **kwargs: Any) -> None:
        await super()._update(job, status, **kwargs)
        if job.key == TARGET and status == Status.ACTIVE:
            self.gates.active.set()

    async def jobs(self, job_keys: Iterable[str]) -> list[SaqJob | None]:
        found = await super().jobs(job_keys)
        if any(j is not None and j.key == TARGET and j.status == Status.ABORTING for j in found):
            self.gates.judge()
        return found


class SweepingQueue(RedisQueue):
    """Another process's queue, sweeping: aborts only after the worker's ACTIVE write."""

    gates: Gates

    async def abort(self, job: SaqJob, error: str, ttl: float = 5) -> None:
        if job.key == TARGET:
            self.gates.read.set()
            await self.gates.active.wait()
        await super().abort(job, error, ttl)


async def test_a_sweep_racing_a_fresh_dequeue_never_cancels_the_healthy_run() -> None:
    async with claimed_redis() as url:
        gates, probe = Gates(), Probe()
        mine = WorkerQueue.from_url(url, name=NAME)
        sweeper = SweepingQueue.from_url(url, name=NAME)
        mine.gates = sweeper.gates = gates
        runner = SaqRunner(url, probe.is_ended)
        worker = SaqWorker(url, probe.job, probe.abandon, concurrency=2, grace=1, queue=mine)
        stopping = asyncio.Event()
        working = asyncio.create_task(worker.run(stopping))
        redis = Redis.from_url(url)
        sweeping: asyncio.Task[list[str]] | None = None
        try:
            await runner.submit(TARGET)
            await asyncio.wait_for(gates.dequeued.wait(), DEADLINE)
            await redis.delete(f"saq:{NAME}:sweep")  # the worker's first sweep holds the lock
            await sweeper.connect()
            sweeping = asyncio.create_task(sweeper.sweep())
            await asyncio.wait_for(gates.read.wait(), DEADLINE)
            gates.release.set()  # ACTIVE is written, then the sweep's ABORTING over it

            async def judged_twice_or_cancelled() -> None:
                while gates.judged < 2 and TARGET not in probe.abandoned:
                    either = [asyncio.create_task(e.wait()) for e in (gates.changed, probe.changed)]
                    _, pending = await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                    for task in pending:
                        task.cancel()

            # The worker's abort check saw "aborting", and came back once more: without the
            # fix, SAQ had cancelled the run during the first one.
            await asyncio.wait_for(judged_twice_or_cancelled(), DEADLINE)
            assert TARGET not in probe.abandoned, "the sweep cancelled a healthy run"
            assert TARGET not in probe.ended and probe.runs[TARGET] == 1
            await runner.stop(TARGET)  # it still hears its stop, and ends by itself
            await probe.until("ended", TARGET)
            assert TARGET not in probe.abandoned
        finally:
            if sweeping is not None:
                await asyncio.wait_for(sweeping, DEADLINE)  # its redelivery is stopped at once
            stopping.set()
            await asyncio.wait_for(working, DEADLINE)
            await runner.close()
            await sweeper.disconnect()
            await redis.aclose()
