"""What follows a reply's end: an experiment's item takes its result, and live evaluators
score a sample of traces.

Called by the job after the reply's final event is published (so it costs a
streaming reply nothing), and by every process's janitor (`sweep`), which picks
up what a killed worker left: the job's call is the fast path, the sweep the
guarantee. Both are idempotent; the runtime runs a sweep in a task of its own (one at a
time per process), so the janitor's other work never waits on it. Imports `generation`, `jobs.base`,
`evals.runs`, `evals.live`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from gapless.evals import live, runs
from gapless.generation import Context
from gapless.jobs.base import Runner

logger = logging.getLogger("gapless.evals")


async def reply_ended(
    ctx: Context, runner: Runner, reply_id: str, chat: Mapping[str, Any] | None = None
) -> None:
    """The reply `reply_id` has ended (or paused): never raises, a failure is logged. `chat`,
    the reply's chat when the job read it, spares an ordinary chat's reply the look-up of an
    experiment item (None: look)."""
    try:
        if chat is None or chat.get("experiment_id"):
            await runs.reply_ended(ctx, runner, reply_id)
    except Exception:
        logger.exception("experiment after reply %s failed", reply_id)
    try:
        await live.reply_ended(ctx, reply_id)
    except Exception:
        logger.exception("live evaluators after reply %s failed", reply_id)


async def sweep(ctx: Context, runner: Runner) -> None:
    """Move every running experiment on (items whose reply ended without their result, a
    worker died; free places under each concurrency limit): never raises, a failure is
    logged and the janitor's next round tries again."""
    try:
        await runs.sweep(ctx, runner)
    except Exception:  # the database is away
        logger.exception("sweeping experiments failed")
