"""Evaluators and the scores they give: one function per query or use.

An evaluator's name is unique in its account (the unique key refuses a second,
and the caller answers 409). Its scores are written with a key
(`eval:{item or trace}:{evaluator}`) and `ON CONFLICT DO NOTHING`, so writing
one result twice, from the hook and a sweep or two processes, keeps the first.
`reply_of` is the one query the after-reply hook makes for a reply that no
live evaluator wants. Imports `db.tables`, `db.rows`, `db.traces` (the
dialect's upsert).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from gapless.db import Engine
from gapless.db.rows import aware, iso, new_id, now
from gapless.db.tables import chats, evaluators, generations, messages, scores
from gapless.db.traces import dialect, upsert

FIELDS = ("name", "kind", "config", "sample", "filter")


def evaluator_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "account_id": row.account_id,
        "name": row.name,
        "kind": row.kind,
        "config": json.loads(row.config),
        "sample": row.sample,
        "filter": json.loads(row.filter),
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def _stored(fields: Mapping[str, Any]) -> dict[str, Any]:
    values = {k: fields[k] for k in FIELDS if k in fields}
    for name in ("config", "filter"):
        if name in values:
            values[name] = json.dumps(values[name])
    return values


async def create(engine: Engine, fields: Mapping[str, Any]) -> dict[str, Any] | None:
    """An evaluator of `account_id`; None when the account has one of that name."""
    stamp = now()
    row = {
        "id": new_id("evl"),
        "account_id": fields["account_id"],
        "created_by": fields.get("created_by"),
        "created_at": stamp,
        "updated_at": stamp,
        **_stored(fields),
    }
    try:
        async with engine.begin() as conn:
            await conn.execute(evaluators.insert().values(**row))
    except sa.exc.IntegrityError:
        if await _named(engine, row["account_id"], row["name"]):
            return None
        raise  # not the name: an account that does not exist (the web layer answers 409)
    return await get(engine, row["id"])


async def _named(engine: Engine, account_id: str, name: str) -> bool:
    query = sa.select(evaluators.c.id).where(
        evaluators.c.account_id == account_id, evaluators.c.name == name
    )
    async with engine.connect() as conn:
        return (await conn.execute(query)).first() is not None


async def get(engine: Engine, evaluator_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(sa.select(evaluators).where(evaluators.c.id == evaluator_id))
        ).first()
    return evaluator_json(row) if row else None


async def get_many(engine: Engine, ids: Sequence[str]) -> list[dict[str, Any]]:
    """The evaluators with these ids, in the order given (unknown ids left out)."""
    if not ids:
        return []
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(evaluators).where(evaluators.c.id.in_(list(ids))))
        found = {row.id: evaluator_json(row) for row in rows}
    return [found[i] for i in dict.fromkeys(ids) if i in found]


async def list_for(engine: Engine, account_ids: Iterable[str] | None) -> list[dict[str, Any]]:
    """Evaluators of these accounts (all for None), by name."""
    query = sa.select(evaluators).order_by(evaluators.c.name, evaluators.c.id)
    if account_ids is not None:
        query = query.where(evaluators.c.account_id.in_(list(account_ids)))
    async with engine.connect() as conn:
        return [evaluator_json(row) for row in await conn.execute(query)]


async def live_all(engine: Engine) -> list[dict[str, Any]]:
    """Every evaluator that also scores live traces (`sample` > 0), of every account."""
    query = sa.select(evaluators).where(evaluators.c.sample > 0)
    async with engine.connect() as conn:
        return [evaluator_json(row) for row in await conn.execute(query)]


async def update(
    engine: Engine, evaluator_id: str, fields: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The evaluator changed; None when another of its account has the new name."""
    try:
        async with engine.begin() as conn:
            await conn.execute(
                evaluators.update()
                .where(evaluators.c.id == evaluator_id)
                .values(**_stored(fields), updated_at=now())
            )
    except sa.exc.IntegrityError:
        return None
    return await get(engine, evaluator_id)


async def delete(engine: Engine, evaluator_id: str) -> None:
    """The evaluator (the scores it gave stay: they are the trace's history)."""
    async with engine.begin() as conn:
        await conn.execute(evaluators.delete().where(evaluators.c.id == evaluator_id))


async def add_scores(engine: Engine, rows: Sequence[Mapping[str, Any]]) -> None:
    """Keyed scores; a key stored already keeps its first score."""
    if not rows:
        return
    stamp = now()
    filled = [
        {
            **{c.name: None for c in scores.c},
            "id": new_id("scr"),
            "created_at": stamp,
            "updated_at": stamp,
            **row,
        }
        for row in rows
    ]
    statement = upsert(dialect(engine), scores).on_conflict_do_nothing(index_elements=["key"])
    async with engine.begin() as conn:
        await conn.execute(statement, filled)


async def keyed_scores(engine: Engine, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The scores written with these keys, by key: value, label, comment."""
    if not keys:
        return {}
    query = sa.select(scores.c.key, scores.c.value, scores.c.label, scores.c.comment).where(
        scores.c.key.in_(list(keys))
    )
    async with engine.connect() as conn:
        return {row.key: dict(row._mapping) for row in await conn.execute(query)}


async def reply_of(engine: Engine, reply_id: str) -> dict[str, Any] | None:
    """Who and what of a reply, in one indexed read: its chat's account and experiment, its
    status, text, parent, model, agent and prompt."""
    query = (
        sa.select(
            messages.c.id,
            messages.c.chat_id,
            messages.c.parent_id,
            messages.c.role,
            messages.c.status,
            messages.c.content,
            messages.c.model,
            messages.c.agent_id,
            messages.c.prompt,
            chats.c.account_id,
            chats.c.experiment_id,
            chats.c.model.label("chat_model"),
        )
        .join(chats, chats.c.id == messages.c.chat_id)
        .where(messages.c.id == reply_id)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        return None
    found = dict(row._mapping)
    found["prompt"] = json.loads(found["prompt"]) if found["prompt"] else None
    return found


async def text_of(engine: Engine, message_id: str) -> str | None:
    async with engine.connect() as conn:
        return (
            await conn.execute(sa.select(messages.c.content).where(messages.c.id == message_id))
        ).scalar()


async def run_figures(engine: Engine, reply_id: str) -> dict[str, Any]:
    """A reply's model calls summed: cost (None when no call was priced), tokens, and the
    time from its first call's start to its last call's end, in ms."""
    g = generations
    query = sa.select(
        sa.func.sum(g.c.cost),
        sa.func.sum(sa.func.coalesce(g.c.input_tokens, 0) + sa.func.coalesce(g.c.output_tokens, 0)),
        sa.func.min(g.c.started_at),
        sa.func.max(g.c.finished_at),
        sa.func.count(),
    ).where(g.c.message_id == reply_id)
    async with engine.connect() as conn:
        cost, tokens, first, last, count = tuple((await conn.execute(query)).one())
    started, finished = aware(first), aware(last)
    duration = None
    if started is not None and finished is not None:
        duration = round((finished - started).total_seconds() * 1000, 1)
    return {
        "cost": float(cost) if cost is not None else None,
        "tokens": int(tokens) if count else None,
        "duration_ms": duration,
    }
