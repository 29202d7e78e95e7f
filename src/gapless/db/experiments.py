"""Experiments and their items: the rows, the reads, a run's creation and deletion, and the
rows of an item's chat (its changes while it runs are `db.experiment_moves`).

Imports `db.tables`, `db.rows`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from gapless.db import Connection, Engine
from gapless.db.rows import aware, iso, new_id, now
from gapless.db.tables import (
    chats,
    dataset_items,
    datasets,
    experiment_items,
    experiments,
    messages,
)

ACTIVE = ("running", "scoring")  # items that hold a place under the concurrency limit
OPEN = ("queued", "running", "stopping")  # experiments the sweep looks at


def experiment_json(row: Any, cost: float | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "account_id": row.account_id,
        "dataset_id": row.dataset_id,
        "name": row.name,
        "target": json.loads(row.target),
        "evaluators": json.loads(row.evaluators),
        "concurrency": row.concurrency,
        "status": row.status,
        "total": row.total,
        "done": row.done,
        "failed": row.failed,
        "progress": row.progress,
        "cost": cost,
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
        "started_at": iso(row.started_at),
        "ended_at": iso(row.ended_at),
    }


def item_json(row: Any) -> dict[str, Any]:
    """An experiment item with its dataset item's input, expected output and metadata."""
    return {
        "id": row.id,
        "experiment_id": row.experiment_id,
        "item_id": row.item_id,
        "position": row.position,
        "status": row.status,
        "attempt": row.attempt,
        "chat_id": row.chat_id,
        "reply_id": row.reply_id,
        "trace_id": row.trace_id,
        "input": json.loads(row.input) if row.input else None,
        "expected": row.expected,
        "metadata": json.loads(row.metadata) if row.metadata else {},
        "output": row.output,
        "cost": row.cost,
        "tokens": row.tokens,
        "duration_ms": row.duration_ms,
        "error": json.loads(row.error) if row.error else None,
        "scores": json.loads(row.scores) if row.scores else [],
        "claimed_at": iso(row.claimed_at),
        "started_at": iso(row.started_at),
        "ended_at": iso(row.ended_at),
    }


_COLUMNS = (
    experiment_items,
    dataset_items.c.input,
    dataset_items.c.expected,
    dataset_items.c.metadata,
)
_DATASET_ITEM = dataset_items.c.id == experiment_items.c.item_id
ITEMS = sa.select(*_COLUMNS).join(dataset_items, _DATASET_ITEM, isouter=True)
COST = sa.select(sa.func.sum(experiment_items.c.cost)).where(
    experiment_items.c.experiment_id == sa.bindparam("b_experiment")
)
_SPENT = (  # the same, per experiment of a list
    sa.select(sa.func.sum(experiment_items.c.cost))
    .where(experiment_items.c.experiment_id == experiments.c.id)
    .scalar_subquery()
)


# ---- reading ---------------------------------------------------------------------------------


async def get_experiment(engine: Engine, experiment_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(sa.select(experiments).where(experiments.c.id == experiment_id))
        ).first()
        if row is None:
            return None
        cost = await conn.scalar(COST, {"b_experiment": experiment_id})
    return experiment_json(row, cost)


async def list_experiments(
    engine: Engine, account_ids: Iterable[str] | None, dataset_id: str | None = None
) -> list[dict[str, Any]]:
    """Newest first, each with its cost."""
    query = sa.select(experiments, _SPENT.label("spent")).order_by(experiments.c.created_at.desc())
    if account_ids is not None:
        query = query.where(experiments.c.account_id.in_(list(account_ids)))
    if dataset_id is not None:
        query = query.where(experiments.c.dataset_id == dataset_id)
    async with engine.connect() as conn:
        rows = await conn.execute(query)
        return [experiment_json(row, row.spent) for row in rows]


async def items_of(
    engine: Engine, experiment_id: str, statuses: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The experiment's items in dataset order (only those in `statuses`, when given)."""
    query = ITEMS.where(experiment_items.c.experiment_id == experiment_id).order_by(
        experiment_items.c.position
    )
    if statuses is not None:
        query = query.where(experiment_items.c.status.in_(list(statuses)))
    async with engine.connect() as conn:
        return [item_json(row) for row in await conn.execute(query)]


async def pending(engine: Engine, experiment_id: str) -> list[dict[str, Any]]:
    """The next items to start: as many pending ones as there are free places now (the
    start re-checks under the row lock)."""
    async with engine.connect() as conn:
        concurrency = await conn.scalar(
            sa.select(experiments.c.concurrency).where(
                experiments.c.id == experiment_id, experiments.c.status == "running"
            )
        )
        if not concurrency:
            return []
        room = concurrency - await active(conn, experiment_id)
        if room <= 0:
            return []
        query = (
            ITEMS.where(
                experiment_items.c.experiment_id == experiment_id,
                experiment_items.c.status == "pending",
            )
            .order_by(experiment_items.c.position)
            .limit(room)
        )
        return [item_json(row) for row in await conn.execute(query)]


async def active(conn: Connection, experiment_id: str) -> int:
    return int(
        await conn.scalar(
            sa.select(sa.func.count()).where(
                experiment_items.c.experiment_id == experiment_id,
                experiment_items.c.status.in_(ACTIVE),
            )
        )
        or 0
    )


async def of_reply(engine: Engine, reply_id: str) -> dict[str, Any] | None:
    """The item whose current attempt is the reply `reply_id`, or None: one statement by
    primary keys and `ix_experiment_items_reply`, so any reply's end costs one lookup."""
    query = (
        sa.select(*_COLUMNS)
        .select_from(messages)
        .join(chats, chats.c.id == messages.c.chat_id)
        .join(
            experiment_items,
            sa.and_(
                experiment_items.c.experiment_id == chats.c.experiment_id,
                experiment_items.c.reply_id == messages.c.id,
            ),
        )
        .join(dataset_items, _DATASET_ITEM, isouter=True)
        .where(messages.c.id == reply_id)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    return item_json(row) if row else None


async def open_ids(engine: Engine) -> list[str]:
    """Experiments that are not over (one query on `ix_experiments_status`)."""
    async with engine.connect() as conn:
        return list(
            await conn.scalars(sa.select(experiments.c.id).where(experiments.c.status.in_(OPEN)))
        )


@dataclass(frozen=True)
class Attempt:
    """An item in flight and its reply as the database has it now."""

    item: dict[str, Any]
    reply_status: str | None  # None: the reply is gone
    leased: bool
    claimed_at: datetime | None


async def in_flight(engine: Engine, experiment_id: str) -> list[Attempt]:
    """The experiment's running and scoring items, with their replies' status."""
    query = (
        ITEMS.add_columns(messages.c.status.label("reply_status"), messages.c.lease)
        .join(messages, messages.c.id == experiment_items.c.reply_id, isouter=True)
        .where(
            experiment_items.c.experiment_id == experiment_id,
            experiment_items.c.status.in_(ACTIVE),
        )
        .order_by(experiment_items.c.position)
    )
    async with engine.connect() as conn:
        rows = list(await conn.execute(query))
    return [
        Attempt(item_json(r), r.reply_status, r.lease is not None, aware(r.claimed_at))
        for r in rows
    ]


async def create_experiment(engine: Engine, values: Mapping[str, Any]) -> dict[str, Any] | None:
    """The experiment (`queued`, its progress 0: `experiment_moves.begin` starts it) and one
    pending item per active item of its dataset, taken under the dataset's row lock (an
    item's delete decides under it whether a run used the item); None when the dataset has
    no active item (or is gone)."""
    stamp = now()
    experiment_id = new_id("exp")
    dataset_id = values["dataset_id"]
    async with engine.begin() as conn:
        locked = sa.select(datasets.c.id).where(datasets.c.id == dataset_id).with_for_update()
        if await conn.scalar(locked) is None:
            return None
        item_ids = list(
            await conn.scalars(
                sa.select(dataset_items.c.id)
                .where(dataset_items.c.dataset_id == dataset_id, dataset_items.c.status == "active")
                .order_by(dataset_items.c.created_at, dataset_items.c.id)  # the dataset's order
            )
        )
        if not item_ids:
            return None
        row = {
            **values,
            "id": experiment_id,
            "target": json.dumps(values["target"]),
            "evaluators": json.dumps(list(values["evaluators"])),
            "status": "queued",
            "total": len(item_ids),
            "done": 0,
            "failed": 0,
            "progress": 0,  # its start is the first change, and event
            "created_at": stamp,
            "started_at": stamp,
            "ended_at": None,
        }
        items = [
            {
                "id": new_id("exi"),
                "experiment_id": experiment_id,
                "item_id": item_id,
                "position": position,
                "status": "pending",
                "attempt": 0,
            }
            for position, item_id in enumerate(item_ids)
        ]
        await conn.execute(experiments.insert().values(**row))
        await conn.execute(experiment_items.insert(), items)
    found = await get_experiment(engine, experiment_id)
    assert found is not None
    return found


async def delete_experiment(engine: Engine, experiment_id: str) -> None:
    """The experiment, its items and its chats (their replies and scores go with them); a
    dataset whose baseline it was has none."""
    async with engine.begin() as conn:
        await conn.execute(
            datasets.update()
            .where(datasets.c.baseline_id == experiment_id)
            .values(baseline_id=None)
        )
        await delete_chats(conn, chats.c.experiment_id == experiment_id)
        await conn.execute(
            experiment_items.delete().where(experiment_items.c.experiment_id == experiment_id)
        )
        await conn.execute(experiments.delete().where(experiments.c.id == experiment_id))


async def delete_chats(conn: Connection, which: sa.ColumnElement[bool]) -> None:
    """The chats of experiments (`which`, a condition on `chats`) with their messages: the
    foreign keys would take the scores and tool calls; messages first, as `delete_chat`."""
    chat_ids = list(await conn.scalars(sa.select(chats.c.id).where(which)))
    if chat_ids:
        await conn.execute(messages.delete().where(messages.c.chat_id.in_(chat_ids)))
        await conn.execute(chats.delete().where(chats.c.id.in_(chat_ids)))


# ---- the rows of an item's chat ----------------------------------------------------------


def chat_row(
    account_id: str, experiment_id: str, title: str, model: str, system_prompt: str, agent_id: Any
) -> dict[str, Any]:
    stamp = now()
    return {
        "id": new_id("chat"),
        "account_id": account_id,
        "title": title,
        "model": model,
        "system_prompt": system_prompt,
        "agent_id": agent_id,
        "experiment_id": experiment_id,
        "created_at": stamp,
        "updated_at": stamp,
    }
