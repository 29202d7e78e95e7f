"""The `Runner` contract, run against every runner: in-process (`InlineRunner`), and the
SAQ queue on the real Redis and on the real PostgreSQL (`SaqRunner` with an `SaqWorker`
in this process, each on its engine's queue and stop channel).

The job is a probe that counts its runs and, for ids starting with "hold", waits for
its stop event: no test sleeps hoping for timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from saq.job import Status

from gapless.jobs.base import Runner
from gapless.jobs.inline import InlineRunner
from gapless.jobs.saq import SaqRunner, SaqWorker
from tests.scale.cluster import claimed_redis

DEADLINE = 20.0


class Probe:
    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.ended: set[str] = set()
        self.abandoned: set[str] = set()  # ended by a cancel, not by its stop event
        self.changed = asyncio.Event()

    async def job(self, reply_id: str, stop: asyncio.Event) -> None:
        self.runs[reply_id] += 1
        self._wake()
        if reply_id.startswith("hold"):
            await stop.wait()
        self.ended.add(reply_id)
        self._wake()

    async def is_ended(self, reply_id: str) -> bool:
        return reply_id in self.ended

    async def abandon(self, reply_id: str) -> None:
        self.abandoned.add(reply_id)
        self.ended.add(reply_id)
        self._wake()

    def _wake(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    async def until(self, check: str, reply_id: str) -> None:
        """Wait until `reply_id` has started ("runs") or ended ("ended")."""
        async def reached() -> None:
            while not (self.runs[reply_id] if check == "runs" else reply_id in self.ended):
                await self.changed.wait()

        await asyncio.wait_for(reached(), DEADLINE)


@asynccontextmanager
async def saq_on(url: str, probe: Probe) -> AsyncIterator[SaqRunner]:
    """A runner and a worker (in this process) on the SAQ queue at `url`."""
    runner = SaqRunner(url, probe.is_ended)
    worker = SaqWorker(url, probe.job, probe.abandon, concurrency=4, grace=1)
    stopping = asyncio.Event()
    working = asyncio.create_task(worker.run(stopping))
    try:
        yield runner
    finally:
        stopping.set()
        await asyncio.wait_for(working, DEADLINE)
        await runner.close()


@pytest.fixture(params=["inline", "saq-redis", "saq-postgresql"])
async def engine(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Runner, Probe]]:
    probe = Probe()
    if request.param == "inline":
        inline = InlineRunner(probe.job)
        yield inline, probe
        await inline.close()
    elif request.param == "saq-redis":
        async with claimed_redis() as url, saq_on(url, probe) as runner:
            yield runner, probe
    else:
        async with saq_on(request.getfixturevalue("pg_url"), probe) as runner:
            yield runner, probe


async def test_submit_runs_the_job_once(engine: tuple[Runner, Probe]) -> None:
    runner, probe = engine
    await runner.submit("r1")
    await probe.until("ended", "r1")
    await runner.submit("after")  # a later job ending shows no second run was queued
    await probe.until("ended", "after")
    assert probe.runs["r1"] == 1


async def test_stop_stops_a_running_job_and_returns_after_it_ended(
    engine: tuple[Runner, Probe],
) -> None:
    runner, probe = engine
    await runner.submit("hold-1")
    await probe.until("runs", "hold-1")
    if isinstance(runner, SaqRunner):
        # On PostgreSQL a run may start before the dequeue that made its job active has
        # committed (`jobs/postgres.py`: a free slot takes the job it hands over): for those
        # milliseconds the job reads "queued", and a stop answers False as for a queued job
        # (its caller ends the reply itself; the run then finds it taken). Stop the run once
        # the queue shows it running, which is what this test is about.
        await until_running(runner, "hold-1")
    assert await runner.stop("hold-1") is True
    assert "hold-1" in probe.ended


async def until_running(runner: SaqRunner, reply_id: str) -> None:
    """Wait until the queue shows the job running (its commit is on another connection, so
    there is nothing to wait on but the queue itself)."""

    deadline = time.monotonic() + DEADLINE
    while not await runner.running(reply_id):
        assert time.monotonic() < deadline, reply_id
        await asyncio.sleep(0.005)  # polling the queue's record, as SaqRunner.stop does


async def test_stop_of_an_unknown_reply_returns_false_at_once(
    engine: tuple[Runner, Probe],
) -> None:
    runner, _ = engine
    asked = time.monotonic()
    assert await runner.stop("nobody") is False
    assert time.monotonic() - asked < 1.0


async def test_a_duplicate_submit_runs_the_job_once(engine: tuple[Runner, Probe]) -> None:
    runner, probe = engine
    await runner.submit("hold-2")
    await runner.submit("hold-2")
    await probe.until("runs", "hold-2")
    await runner.submit("hold-2")  # while it runs, too
    assert await runner.stop("hold-2") is True
    await runner.submit("after")
    await probe.until("ended", "after")
    assert probe.runs["hold-2"] == 1


@pytest.mark.parametrize("queue", ["redis", "postgresql"])
async def test_a_stop_asked_while_the_job_waited_in_the_queue_stops_its_run(
    queue: str, request: pytest.FixtureRequest
) -> None:
    """The worker was not listening when the stop was asked: its run finds the ask kept
    beside the queue and ends by its stop event, never waiting on."""
    async with contextlib.AsyncExitStack() as stack:
        if queue == "redis":
            url = await stack.enter_async_context(claimed_redis())
        else:
            url = request.getfixturevalue("pg_url")
        probe = Probe()
        runner = SaqRunner(url, probe.is_ended)
        stack.push_async_callback(runner.close)
        assert await runner.stop("hold-early") is False  # queued nowhere yet, running nowhere
        await runner.submit("hold-early")
        worker = SaqWorker(url, probe.job, probe.abandon, concurrency=2, grace=1)
        stopping = asyncio.Event()
        working = asyncio.create_task(worker.run(stopping))
        try:
            await probe.until("ended", "hold-early")
            assert "hold-early" not in probe.abandoned and probe.runs["hold-early"] == 1
        finally:
            stopping.set()
            await asyncio.wait_for(working, DEADLINE)


@pytest.mark.parametrize("queue", ["redis", "postgresql"])
async def test_a_finished_job_records_its_one_attempt_and_ends_complete(
    queue: str, request: pytest.FixtureRequest
) -> None:
    """The worker's writes of a job (active with its attempt, then complete) land in order,
    even when the run ends before the first is answered."""
    async with contextlib.AsyncExitStack() as stack:
        url = (
            await stack.enter_async_context(claimed_redis())
            if queue == "redis"
            else request.getfixturevalue("pg_url")
        )
        probe = Probe()
        runner = await stack.enter_async_context(saq_on(url, probe))
        await runner.submit("quick")
        await probe.until("ended", "quick")
        deadline = time.monotonic() + DEADLINE
        while (job := await runner.queue.job("quick")) is None or job.status != Status.COMPLETE:
            assert time.monotonic() < deadline, job
            await asyncio.sleep(0.01)  # polling SAQ's record until its worker has finished it
        assert job.attempts == 1 and probe.runs["quick"] == 1
