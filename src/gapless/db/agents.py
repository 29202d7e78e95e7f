"""Agents and the tool calls of replies: one function per query or use.

A tool call's row is written before the call runs (`running`, with its start
time), so a run that finds a started, unfinished call knows a side effect may
have happened and never repeats it. An approval decision is recorded on the
call's row, under a lock on its reply's row, so of two people deciding the
last two calls of one step, exactly one sees the step fully decided.
Imports `db.tables`, `db.rows`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from gapless.db import Engine
from gapless.db.rows import iso, new_id, now
from gapless.db.tables import agents, messages, tool_calls

AGENT_FIELDS = (
    "name",
    "description",
    "instructions",
    "model",
    "temperature",
    "max_tokens",
    "tools",
    "approval",
    "step_limit",
    "prompt",
)


def agent_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "account_id": row.account_id,
        "name": row.name,
        "description": row.description,
        "instructions": row.instructions,
        "model": row.model,
        "temperature": row.temperature,
        "max_tokens": row.max_tokens,
        "tools": json.loads(row.tools),
        "approval": json.loads(row.approval),
        "step_limit": row.step_limit,
        "prompt": json.loads(row.prompt) if row.prompt else None,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def _stored(fields: Mapping[str, Any]) -> dict[str, Any]:
    values = {k: v for k, v in fields.items() if k in AGENT_FIELDS}
    for key in ("tools", "approval", "prompt"):
        if key in values and values[key] is not None:
            values[key] = json.dumps(values[key])
    return values


async def create_agent(
    engine: Engine, account_id: str, fields: Mapping[str, Any]
) -> dict[str, Any]:
    stamp = now()
    values = {"id": new_id("agent"), "account_id": account_id, "created_at": stamp}
    values.update(_stored(fields), updated_at=stamp)
    async with engine.begin() as conn:
        await conn.execute(agents.insert().values(**values))
        row = (await conn.execute(sa.select(agents).where(agents.c.id == values["id"]))).one()
    return agent_json(row)


async def get_agent(engine: Engine, agent_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(agents).where(agents.c.id == agent_id))).first()
    return agent_json(row) if row else None


async def list_agents(engine: Engine, account_ids: Iterable[str] | None) -> list[dict[str, Any]]:
    query = sa.select(agents).order_by(agents.c.name, agents.c.id)
    if account_ids is not None:
        query = query.where(agents.c.account_id.in_(list(account_ids)))
    async with engine.connect() as conn:
        return [agent_json(row) for row in await conn.execute(query)]


async def update_agent(
    engine: Engine, agent_id: str, fields: Mapping[str, Any]
) -> dict[str, Any] | None:
    async with engine.begin() as conn:
        await conn.execute(
            agents.update()
            .where(agents.c.id == agent_id)
            .values(**_stored(fields), updated_at=now())
        )
        row = (await conn.execute(sa.select(agents).where(agents.c.id == agent_id))).first()
    return agent_json(row) if row else None


async def delete_agent(engine: Engine, agent_id: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(agents.delete().where(agents.c.id == agent_id))


# ---- tool calls ------------------------------------------------------------------------------


def call_json(row: Any) -> dict[str, Any]:
    return {
        "message_id": row.message_id,
        "call_id": row.call_id,
        "step": row.step,
        "name": row.name,
        "arguments": row.arguments,
        "status": row.status,
        "decision": row.decision,
        "reason": row.reason,
        "decided_by": row.decided_by,
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "output": row.output,
        "error": {"code": row.error_code, "message": row.error_message or ""}
        if row.error_code
        else None,
    }


async def record_calls(engine: Engine, rows: list[dict[str, Any]]) -> None:
    """Insert a step's calls (each `running` with its start stamped, or `awaiting_approval`,
    or already `failed`), before any of them runs."""
    if not rows:
        return
    stamp = now()
    async with engine.begin() as conn:
        await conn.execute(
            tool_calls.insert(),
            [
                {
                    "started_at": stamp if row["status"] == "running" else None,
                    "finished_at": stamp if row["status"] == "failed" else None,
                    "created_at": stamp,
                    "decision": None,
                    "reason": None,
                    "decided_by": None,
                    "decided_at": None,
                    "output": None,
                    "error_code": None,
                    "error_message": None,
                    **row,
                }
                for row in rows
            ],
        )


async def start_call(engine: Engine, message_id: str, call_id: str) -> bool:
    """Mark an approved call started, before it runs; False when it had started already
    (a run before this one may have run it: it must not run again)."""
    async with engine.begin() as conn:
        result = await conn.execute(
            tool_calls.update()
            .where(
                tool_calls.c.message_id == message_id,
                tool_calls.c.call_id == call_id,
                tool_calls.c.started_at.is_(None),
            )
            .values(status="running", started_at=now())
        )
    return result.rowcount == 1


async def finish_call(
    engine: Engine,
    message_id: str,
    call_id: str,
    status: str,
    output: str | None,
    error: Mapping[str, str] | None,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            tool_calls.update()
            .where(tool_calls.c.message_id == message_id, tool_calls.c.call_id == call_id)
            .values(
                status=status,
                output=output,
                error_code=(error or {}).get("code"),
                error_message=(error or {}).get("message"),
                finished_at=now(),
            )
        )


async def calls_of(engine: Engine, message_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(tool_calls)
            .where(tool_calls.c.message_id == message_id)
            .order_by(tool_calls.c.step, tool_calls.c.created_at)
        )
        return [call_json(row) for row in rows]


OPEN_CALLS = ("awaiting_approval", "running")


async def close_calls(
    engine: Engine, message_id: str, status: str, error: Mapping[str, str] | None
) -> None:
    """End every call of a reply still awaiting approval or running (the reply ended)."""
    async with engine.begin() as conn:
        await conn.execute(
            tool_calls.update()
            .where(tool_calls.c.message_id == message_id, tool_calls.c.status.in_(OPEN_CALLS))
            .values(
                status=status,
                error_code=(error or {}).get("code"),
                error_message=(error or {}).get("message"),
                finished_at=now(),
            )
        )


class DecisionError(Exception):
    """The call is not awaiting a decision (decided already, never asked, or the reply ended)."""


_UNDECIDED = (
    sa.select(sa.func.count())
    .select_from(tool_calls)
    .where(
        tool_calls.c.message_id == sa.bindparam("b_message"),
        tool_calls.c.status == "awaiting_approval",
        tool_calls.c.decision.is_(None),
    )
)


async def lock_reply(conn: Any, message_id: str, *where: Any) -> bool:
    """Take the reply's row lock for this transaction (deciders and the pausing run take
    turns on it); False when the row does not match `where`."""
    result = await conn.execute(
        messages.update().where(messages.c.id == message_id, *where).values(updated_at=now())
    )
    return bool(result.rowcount == 1)


async def undecided(conn: Any, message_id: str) -> int:
    """How many of the reply's calls still await a decision (after the row lock was taken,
    so every decision committed before it is seen)."""
    return int(await conn.scalar(_UNDECIDED, {"b_message": message_id}) or 0)


async def decide(
    engine: Engine, message_id: str, call_id: str, decision: str, reason: str | None, user_id: str
) -> bool:
    """Record a decision on a call awaiting approval. Answers True when this decision was
    the last one a paused reply waited for: the caller then submits its run. A reply not
    paused yet (its run is writing the pause) finds the decision when it pauses.
    `DecisionError` when this call awaits no decision."""
    async with engine.begin() as conn:
        # Any unfinished row: a step quicker than the debounce publishes `awaiting_approval`
        # while the row still says `pending`; the pause then finds this decision.
        if not await lock_reply(
            conn, message_id, messages.c.status.in_(("pending", "streaming", "requires_action"))
        ):
            raise DecisionError("the reply is not waiting for approval")
        result = await conn.execute(
            tool_calls.update()
            .where(
                tool_calls.c.message_id == message_id,
                tool_calls.c.call_id == call_id,
                tool_calls.c.status == "awaiting_approval",
                tool_calls.c.decision.is_(None),
            )
            .values(decision=decision, reason=reason, decided_by=user_id, decided_at=now())
        )
        if result.rowcount != 1:
            raise DecisionError("that tool call is not awaiting approval")
        status = await conn.scalar(sa.select(messages.c.status).where(messages.c.id == message_id))
        return status == "requires_action" and not await undecided(conn, message_id)
