"""Experiments: a dataset run against an agent (with its tools) or a prompt version.

(Stub: shapes agreed, filled in by the experiments work.)
"""

from __future__ import annotations

from gapless.generation import Context
from gapless.jobs.base import Runner


async def reply_ended(ctx: Context, runner: Runner, reply_id: str) -> None:
    return None


async def sweep(ctx: Context, runner: Runner) -> None:
    return None
