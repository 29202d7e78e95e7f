"""Evaluators on live traces, sampled and filtered.

(Stub: shapes agreed, filled in by the evaluators work.)
"""

from __future__ import annotations

from gapless.generation import Context


async def reply_ended(ctx: Context, reply_id: str) -> None:
    return None
