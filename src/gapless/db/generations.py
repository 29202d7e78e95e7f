"""One record per model call: provider, model, timing, tokens, cost, outcome.

Written twice per call (at start and at the end), never per token. Imports
`db.tables`, `db.rows`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from gapless.db import Engine
from gapless.db.prepared import prepared
from gapless.db.rows import generation_json, new_id, now
from gapless.db.tables import generations


def new_generation(
    message_id: str, chat_id: str, account_id: str, provider: str, model: str, step: int = 1
) -> dict[str, Any]:
    """The record of a call that starts now (the first is stored with the reply's start,
    `replies.start_reply`; a later step's by `start_generation`)."""
    return dict(
        step=step,
        id=new_id("gen"),
        message_id=message_id,
        chat_id=chat_id,
        account_id=account_id,
        provider=provider,
        model=model,
        status="streaming",
        started_at=now(),
        deltas=0,
        flushes=0,
    )


async def start_generation(engine: Engine, record: dict[str, Any]) -> None:
    async with engine.begin() as conn:
        await conn.execute(INSERT, record)


async def finish_generation(
    engine: Engine,
    generation_id: str,
    *,
    status: str,
    first_token_at: datetime | None,
    usage: dict[str, int] | None,
    cost: float | None,
    deltas: int,
    flushes: int,
    error: dict[str, str] | None,
    finish_reason: str | None = None,
) -> None:
    usage = usage or {}
    values = {
        "status": status,
        "first_token_at": first_token_at,
        "finished_at": now(),
        "input_tokens": usage.get("input_tokens"),
        "output_tokens": usage.get("output_tokens"),
        "reasoning_tokens": usage.get("reasoning_tokens"),
        "cached_tokens": usage.get("cached_tokens"),
        "finish_reason": finish_reason,
        "cost": cost,
        "deltas": deltas,
        "flushes": flushes,
        "error_code": (error or {}).get("code"),
        "error_message": (error or {}).get("message"),
    }
    async with engine.begin() as conn:
        await conn.execute(_FINISH, {**values, "b_id": generation_id})


# Built once (one per reply; on SQLite run on the driver, `db.prepared`): the SET clause
# comes from the parameters' keys.
_FINISH = prepared(generations.update().where(generations.c.id == sa.bindparam("b_id")))
INSERT = prepared(generations.insert())


async def list_generations(
    engine: Engine,
    account_ids: list[str] | None,
    *,
    chat_id: str | None = None,
    model: str | None = None,
    before: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Newest first; `before` is the id of the last item of the previous page (ids sort by time)."""
    query = sa.select(generations).order_by(generations.c.id.desc()).limit(limit)
    if account_ids is not None:
        query = query.where(generations.c.account_id.in_(account_ids))
    if chat_id:
        query = query.where(generations.c.chat_id == chat_id)
    if model:
        query = query.where(generations.c.model == model)
    if before:
        query = query.where(generations.c.id < before)
    async with engine.connect() as conn:
        return [generation_json(row) for row in await conn.execute(query)]
