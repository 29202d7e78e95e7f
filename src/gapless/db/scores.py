"""Scores (thumbs feedback among them): one function per query or use.

A user's thumbs on a reply is one row, found by its `key`
(`feedback:{message}:{user}`) and overwritten when they change their mind;
other scores are appended. Ids sort by creation time, so a page's cursor is
the last id it showed. Imports `db.tables`, `db.rows`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from gapless.db import Engine
from gapless.db.rows import iso, new_id, now
from gapless.db.tables import observations, scores

COLUMNS = [c.name for c in scores.c]
FILTERS = ("trace_id", "observation_id", "chat_id", "message_id", "name", "source", "author")


def target_of(row: Any) -> str:
    if row.observation_id:
        return "observation"
    if row.message_id:
        return "message"
    return "trace" if row.trace_id else "chat"


def score_json(row: Any) -> dict[str, Any]:
    value: Any = row.value
    if row.data_type == "boolean":
        value = bool(row.value)
    elif row.data_type == "categorical":
        value = row.label
    return {
        "id": row.id,
        "account_id": row.account_id,
        "name": row.name,
        "data_type": row.data_type,
        "value": value,
        "comment": row.comment,
        "source": row.source,
        "target": target_of(row),
        "trace_id": row.trace_id,
        "observation_id": row.observation_id,
        "chat_id": row.chat_id,
        "message_id": row.message_id,
        "author": row.author,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def _row(values: Mapping[str, Any]) -> dict[str, Any]:
    stamp = now()
    row: dict[str, Any] = {c: None for c in COLUMNS}
    row.update(id=new_id("scr"), created_at=stamp, updated_at=stamp)
    row.update({k: v for k, v in values.items() if k in COLUMNS})
    return row


async def add_score(engine: Engine, values: Mapping[str, Any]) -> dict[str, Any]:
    row = _row(values)
    async with engine.begin() as conn:
        await conn.execute(scores.insert().values(**row))
        found = (await conn.execute(sa.select(scores).where(scores.c.id == row["id"]))).one()
    return score_json(found)


async def keep_score(engine: Engine, key: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The score with this key, written over (value, comment) or created."""
    changes = {k: values.get(k) for k in ("value", "label", "comment")}
    for _ in range(3):
        try:
            async with engine.begin() as conn:
                result = await conn.execute(
                    scores.update()
                    .where(scores.c.key == key)
                    .values(**changes, updated_at=now())
                )
                if result.rowcount == 0:
                    await conn.execute(scores.insert().values(**_row({**values, "key": key})))
                found = (await conn.execute(sa.select(scores).where(scores.c.key == key))).one()
            return score_json(found)
        except sa.exc.IntegrityError:
            continue  # another request created it in between: write over it
    raise RuntimeError("could not keep the score")


async def drop_key(engine: Engine, key: str) -> bool:
    async with engine.begin() as conn:
        result = await conn.execute(scores.delete().where(scores.c.key == key))
    return bool(result.rowcount)


async def get_score(engine: Engine, score_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(scores).where(scores.c.id == score_id))).first()
    return score_json(row) if row else None


async def delete_score(engine: Engine, score_id: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(scores.delete().where(scores.c.id == score_id))


async def keyed_in_chat(engine: Engine, chat_id: str, prefix: str) -> list[dict[str, Any]]:
    """The chat's scores whose key starts with `prefix` (one user's thumbs)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(scores).where(scores.c.chat_id == chat_id, scores.c.key.startswith(prefix))
        )
        return [score_json(row) for row in rows]


async def list_scores(
    engine: Engine,
    account_ids: Iterable[str] | None,
    filters: Mapping[str, Any],
    before: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Scores newest first, in these accounts (all for None), matching every filter given."""
    query = sa.select(scores).order_by(scores.c.id.desc()).limit(limit)
    if account_ids is not None:
        query = query.where(scores.c.account_id.in_(list(account_ids)))
    for name in FILTERS:
        if filters.get(name) is not None:
            query = query.where(scores.c[name] == filters[name])
    if filters.get("since") is not None:
        query = query.where(scores.c.created_at >= filters["since"])
    if before:
        query = query.where(scores.c.id < before)
    async with engine.connect() as conn:
        return [score_json(row) for row in await conn.execute(query)]


async def observation_trace(engine: Engine, observation_id: str) -> tuple[str, str] | None:
    """(trace id, account id) of an observation."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(observations.c.trace_id, observations.c.account_id).where(
                    observations.c.id == observation_id
                )
            )
        ).first()
    return (row.trace_id, row.account_id) if row else None
