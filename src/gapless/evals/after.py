"""What follows a reply's end: an experiment's item takes its result, and live evaluators
score a sample of traces.

Called by the job after the reply's final event is published (so it costs a
streaming reply nothing), and by every process's janitor (`sweep`), which picks
up what a killed worker left: the job's call is the fast path, the sweep the
guarantee. Both are idempotent. Imports `generation`, `jobs.base`,
`evals.experiments`, `evals.live`.
"""

from __future__ import annotations

import logging

from gapless.evals import experiments, live
from gapless.generation import Context
from gapless.jobs.base import Runner

logger = logging.getLogger("gapless.evals")


async def reply_ended(ctx: Context, runner: Runner, reply_id: str) -> None:
    """The reply `reply_id` has ended (or paused): never raises, a failure is logged."""
    try:
        await experiments.reply_ended(ctx, runner, reply_id)
    except Exception:
        logger.exception("experiment after reply %s failed", reply_id)
    try:
        await live.reply_ended(ctx, reply_id)
    except Exception:
        logger.exception("live evaluators after reply %s failed", reply_id)


async def sweep(ctx: Context, runner: Runner) -> None:
    """Move every running experiment on: items whose reply ended without their result
    (a worker died), and free places under each concurrency limit."""
    await experiments.sweep(ctx, runner)
