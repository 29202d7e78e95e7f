"""What follows a reply's end: an experiment's item takes its result, and live evaluators
score a sample of traces.

Called by the job after the reply's final event is published (so it costs a
streaming reply nothing), and by every process's janitor (`sweep`), which picks
up what a killed worker left: the job's call is the fast path, the sweep the
guarantee. Both are idempotent; a sweep runs in a task of its own (one at a time per
process), so the janitor's other work never waits on it. Imports `generation`, `jobs.base`,
`evals.runs`, `evals.live`.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping
from typing import Any

from gapless.evals import live, runs
from gapless.generation import Context
from gapless.jobs.base import Runner

logger = logging.getLogger("gapless.evals")
# Per engine (one per process, a few in tests): the sweep going on. A module's, because the
# janitor is given only the context, which is not ours to grow.
_sweeps: weakref.WeakKeyDictionary[Any, asyncio.Task[None]] = weakref.WeakKeyDictionary()


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
    worker died; free places under each concurrency limit) in a task of its own, unless this
    process's last sweep is still going: the janitor that calls this also reaps dead runs'
    leases, which must not wait while a sweep scores an item (a judge's call, up to
    `judge.CALL_SECONDS`) or stops a run's replies."""
    going = _sweeps.get(ctx.engine)
    if going is None or going.done():
        _sweeps[ctx.engine] = asyncio.create_task(_sweep(ctx, runner), name="experiments sweep")


async def _sweep(ctx: Context, runner: Runner) -> None:
    try:
        await runs.sweep(ctx, runner)
    except Exception:  # the database is away: the janitor's next round tries again
        logger.exception("sweeping experiments failed")
