"""The PostgreSQL queue's writes of a job land in order, though a run no longer waits for the
first of them (`jobs/postgres.py`: the worker's ACTIVE write goes on beside the run).

A gate holds that write until the run has ended, so the job's final write is due first: it
must wait, or the late ACTIVE write would leave a finished job looking active.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from saq import Job as SaqJob
from saq.job import Status

from gapless.jobs import postgres
from gapless.jobs.saq import NAME, POOL, SaqWorker
from tests.contract.test_runner_contract import DEADLINE, Probe


class HeldActive(postgres._PostgresQueue):
    """The worker's queue: its ACTIVE write waits for `release`."""

    release: asyncio.Event
    holding: asyncio.Event
    written: asyncio.Event

    async def _activate(self, job: SaqJob, kwargs: dict[str, Any]) -> None:
        self.holding.set()
        await self.release.wait()
        await super()._activate(job, kwargs)
        self.written.set()


async def test_a_job_whose_run_ended_before_its_active_write_still_ends_complete(
    pg_url: str,
) -> None:
    probe = Probe()
    queue = postgres.new_queue(pg_url, NAME, POOL, HeldActive)
    assert isinstance(queue, HeldActive)
    queue.release, queue.holding, queue.written = asyncio.Event(), asyncio.Event(), asyncio.Event()
    worker = SaqWorker(pg_url, probe.job, probe.abandon, concurrency=2, grace=1, queue=queue)
    stopping = asyncio.Event()
    working = asyncio.create_task(worker.run(stopping))
    try:
        await queue.connect()  # idempotent: the worker connects it too
        await queue.enqueue(SaqJob("generate", kwargs={"reply_id": "quick"}, key="quick"))
        await probe.until("ended", "quick")  # the run went on while its ACTIVE write is held
        assert queue.holding.is_set()
        queue.release.set()
        await asyncio.wait_for(queue.written.wait(), DEADLINE)  # the held write has landed
        deadline = time.monotonic() + DEADLINE
        while (job := await queue.job("quick")) is None or job.status != Status.COMPLETE:
            assert time.monotonic() < deadline, job
            await asyncio.sleep(0.01)  # polling SAQ's record until its worker has finished it
        assert job.attempts == 1  # the ACTIVE write's, kept: it came first after all
    finally:
        queue.release.set()
        stopping.set()
        await asyncio.wait_for(working, DEADLINE)
