"""The `gapless worker` process: runs generations taken from the job queue.

It builds the runtime from settings and starts it (migrations, and the lease
reaper, so a run whose worker died is ended by whichever process notices
first), then runs a SAQ worker with `concurrency` runs at once, whose job is
`steps.generate`. It also re-submits replies left `pending` without a job
(their API process died between the commit and the enqueue, or Redis lost the
queue): submitting is idempotent, so this is safe from every worker.

SIGTERM or SIGINT: no new job is taken; runs in flight get `grace` seconds to
finish, then are cancelled and ended `failed`/`interrupted` with their partial
text, so no reply is left to the reaper's timeout. A second signal does not
shorten the grace. Imports `runtime`, `generation`, `jobs.saq`, `config`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import UTC, datetime, timedelta

from gapless import generation, steps
from gapless.config import Settings
from gapless.db import replies as db_replies
from gapless.jobs.saq import SaqWorker
from gapless.runtime import INTERRUPTED, Runtime, build, settle

logger = logging.getLogger("gapless.worker")
ORPHAN_AFTER = 10.0  # seconds a reply may stay pending before it is submitted again
ORPHAN_EVERY = 5.0


async def run(settings: Settings, concurrency: int, grace: float = 10.0) -> None:
    if settings.queue_url.startswith("memory://"):
        raise ValueError(
            "a worker needs a shared queue: set GAPLESS_QUEUE_URL=redis://... or postgresql://..."
        )
    if settings.events_url.startswith("memory://"):
        raise ValueError("a worker needs a shared event log: set GAPLESS_EVENTS_URL=redis://...")
    runtime = build(settings)
    created = await runtime.start()
    if created is not None:  # a fresh database met a worker first: say how to sign in
        print(f"email: {created.email}\npassword: {created.password}\ntoken: {created.token}")
    context = runtime.context

    async def job(reply_id: str, stop: asyncio.Event) -> None:
        await steps.generate(context, reply_id, stop)

    async def abandon(reply_id: str) -> None:
        await generation.end_unstarted(context, reply_id, "failed", INTERRUPTED)

    worker = SaqWorker(settings.queue_url, job, abandon, concurrency=concurrency, grace=grace)
    settle()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    resubmitting = asyncio.create_task(_resubmit(runtime))
    print(f"worker ready: concurrency {concurrency}", flush=True)
    try:
        await worker.run(stopping)
    finally:
        resubmitting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await resubmitting
        await runtime.close()


async def _resubmit(runtime: Runtime) -> None:
    """Submit again every reply pending for longer than `ORPHAN_AFTER` (idempotent)."""
    while True:
        await asyncio.sleep(ORPHAN_EVERY)
        try:
            before = datetime.now(UTC) - timedelta(seconds=ORPHAN_AFTER)
            for message in await db_replies.unfinished(runtime.engine):
                if message["status"] == "pending" and _older(message["updated_at"], before):
                    await runtime.runner.submit(message["id"])
        except Exception:
            logger.exception("re-submitting pending replies failed")


def _older(stamp: str | datetime, before: datetime) -> bool:
    when = stamp if isinstance(stamp, datetime) else datetime.fromisoformat(stamp)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when < before
