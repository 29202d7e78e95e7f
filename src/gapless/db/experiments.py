"""Experiments and their items: one function per query or use.

Every change of a run takes the experiment's row lock (`FOR UPDATE` on
PostgreSQL; SQLite has one writer), adds one to `progress` per change, and
hands each change's `experiment.updated` payload to `announce` in that order:
inside the transaction on PostgreSQL, so no two processes' events cross; right
after the commit on SQLite, whose inline transactions may wait on nothing else
(one process: nothing of ours runs between the commit and the append). Every
item's move is conditional on the state it moves from, so a hook and a sweep
racing for one item move it once. Imports `db.tables`, `db.rows`, `db.inline`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from gapless.db import Connection, Engine
from gapless.db.inline import InlineEngine
from gapless.db.rows import aware, iso, new_id, now
from gapless.db.tables import (
    chats,
    dataset_items,
    datasets,
    experiment_items,
    experiments,
    messages,
)

Announce = Callable[[str, dict[str, Any]], Awaitable[None]]  # (account id, payload)
ACTIVE = ("running", "scoring")  # items that hold a place under the concurrency limit
OPEN = ("queued", "running", "stopping")  # experiments the sweep looks at
EVENT_KEYS = ("id", "status", "total", "done", "failed", "progress", "cost")


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
_ITEMS = sa.select(*_COLUMNS).join(dataset_items, _DATASET_ITEM, isouter=True)
_COST = sa.select(sa.func.sum(experiment_items.c.cost)).where(
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
        cost = await conn.scalar(_COST, {"b_experiment": experiment_id})
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
    query = _ITEMS.where(experiment_items.c.experiment_id == experiment_id).order_by(
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
        room = concurrency - await _active(conn, experiment_id)
        if room <= 0:
            return []
        query = (
            _ITEMS.where(
                experiment_items.c.experiment_id == experiment_id,
                experiment_items.c.status == "pending",
            )
            .order_by(experiment_items.c.position)
            .limit(room)
        )
        return [item_json(row) for row in await conn.execute(query)]


async def _active(conn: Connection, experiment_id: str) -> int:
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
    primary keys (and the items' index), so a reply of an ordinary chat costs one lookup."""
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
        _ITEMS.add_columns(messages.c.status.label("reply_status"), messages.c.lease)
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


# ---- changes under the row lock --------------------------------------------------------------


@dataclass
class Change:
    """One transaction's changes to an experiment: each `bump` is one step of `progress`
    and one event."""

    conn: Connection
    experiment: dict[str, Any]
    payloads: list[dict[str, Any]] = field(default_factory=list)

    def bump(self, item: dict[str, Any] | None = None) -> None:
        self.experiment["progress"] += 1
        payload = {k: self.experiment[k] for k in EVENT_KEYS}
        if item is not None:
            payload["item"] = item
        self.payloads.append(payload)

    async def item(self, item_id: str) -> dict[str, Any]:
        row = (await self.conn.execute(_ITEMS.where(experiment_items.c.id == item_id))).one()
        return item_json(row)

    async def move(self, item_id: str, source: Sequence[str], *where: Any, **values: Any) -> bool:
        """Move the item from one of `source` statuses; False when another mover got there
        first (or `where` does not hold)."""
        result = await self.conn.execute(
            experiment_items.update()
            .where(experiment_items.c.id == item_id, experiment_items.c.status.in_(source), *where)
            .values(**values)
        )
        return bool(result.rowcount == 1)

    async def conclude(self) -> None:
        """A run whose every item has its result is completed; a stopping one with nothing in
        flight is stopped."""
        experiment = self.experiment
        if experiment["status"] == "running" and experiment["done"] >= experiment["total"]:
            self.end("completed")
        elif experiment["status"] == "stopping" and not await _active(self.conn, experiment["id"]):
            self.end("stopped")

    def end(self, status: str) -> None:
        self.experiment["status"] = status
        self.experiment["ended_at"] = now()
        self.bump()


@asynccontextmanager
async def changing(
    engine: Engine, experiment_id: str, announce: Announce
) -> AsyncIterator[Change | None]:
    """A transaction holding the experiment's row lock; its counters written at the end and
    its events announced in order (None when the experiment is gone)."""
    inside = not isinstance(engine, InlineEngine)
    change: Change | None = None
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                sa.select(experiments).where(experiments.c.id == experiment_id).with_for_update()
            )
        ).first()
        if row is not None:
            cost = await conn.scalar(_COST, {"b_experiment": experiment_id})
            found = experiment_json(row, cost)
            found["ended_at"] = row.ended_at
            change = Change(conn, found)
        yield change
        if change is None or not change.payloads:
            return
        kept = change.experiment
        await conn.execute(
            experiments.update()
            .where(experiments.c.id == experiment_id)
            .values({k: kept[k] for k in ("status", "done", "failed", "progress", "ended_at")})
        )
        if inside:
            for payload in change.payloads:
                await announce(kept["account_id"], payload)
    if change is not None and not inside:
        for payload in change.payloads:
            await announce(change.experiment["account_id"], payload)


async def create_experiment(
    engine: Engine, values: Mapping[str, Any], item_ids: Sequence[str], announce: Announce
) -> str:
    """The experiment (running from now on) and one pending item per dataset item."""
    stamp = now()
    experiment_id = new_id("exp")
    row = {
        **values,
        "id": experiment_id,
        "target": json.dumps(values["target"]),
        "evaluators": json.dumps(list(values["evaluators"])),
        "status": "running",
        "total": len(item_ids),
        "done": 0,
        "failed": 0,
        "progress": 0,
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
    async with engine.begin() as conn:
        await conn.execute(experiments.insert().values(**row))
        await conn.execute(experiment_items.insert(), items)
    async with changing(engine, experiment_id, announce) as change:
        assert change is not None
        change.bump()  # progress 1: the run as it starts
    return experiment_id


@dataclass(frozen=True)
class Start:
    """What starting one item writes: its chat, the input messages and the pending reply
    (built by the caller), or the error that fails it before it runs."""

    item_id: str
    trace_id: str = ""
    chat: dict[str, Any] | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, str] | None = None


async def start_items(
    engine: Engine, experiment_id: str, starts: Sequence[Start], announce: Announce
) -> tuple[list[str], int]:
    """Start pending items, up to the free places: (the replies to submit, how many failed
    before running). Nothing starts unless the experiment is running."""
    started: list[str] = []
    failed = 0
    async with changing(engine, experiment_id, announce) as change:
        if change is None or change.experiment["status"] != "running":
            return [], 0
        room = change.experiment["concurrency"] - await _active(change.conn, experiment_id)
        stamp = now()
        for start in starts:
            if start.error is not None:
                if await _result(change, start.item_id, ("pending",), "failed", error=start.error):
                    failed += 1
                continue
            if room <= 0 or start.chat is None:
                continue
            reply = start.messages[-1]
            moved = await change.conn.execute(
                experiment_items.update()
                .where(
                    experiment_items.c.id == start.item_id,
                    experiment_items.c.status == "pending",
                )
                .values(
                    status="running",
                    attempt=1,
                    chat_id=start.chat["id"],
                    reply_id=reply["id"],
                    trace_id=start.trace_id,
                    claimed_at=stamp,
                    started_at=stamp,
                )
            )
            if moved.rowcount != 1:
                continue
            await change.conn.execute(chats.insert().values(**start.chat))
            await change.conn.execute(messages.insert(), start.messages)
            change.bump(await change.item(start.item_id))
            started.append(reply["id"])
            room -= 1
        await change.conclude()
    return started, failed


async def retry(
    engine: Engine,
    item: Mapping[str, Any],
    reply: Mapping[str, Any],
    trace_id: str,
    announce: Announce,
) -> bool:
    """A new attempt of a running item whose reply was interrupted: `reply` (a pending
    reply to the same message, in the same chat) becomes its reply."""
    async with changing(engine, item["experiment_id"], announce) as change:
        if change is None or change.experiment["status"] != "running":
            return False
        moved = await change.conn.execute(
            experiment_items.update()
            .where(
                experiment_items.c.id == item["id"],
                experiment_items.c.status == "running",
                experiment_items.c.reply_id == item["reply_id"],
            )
            .values(
                attempt=experiment_items.c.attempt + 1,
                reply_id=reply["id"],
                trace_id=trace_id,
                claimed_at=now(),
            )
        )
        if moved.rowcount != 1:
            return False
        await change.conn.execute(messages.insert(), [dict(reply)])
        change.bump(await change.item(item["id"]))
    return True


async def claim(engine: Engine, item: Mapping[str, Any], announce: Announce) -> bool:
    """running → scoring for the item's current reply: whoever moves it scores it."""
    async with changing(engine, item["experiment_id"], announce) as change:
        if change is None:
            return False
        same = experiment_items.c.reply_id == item["reply_id"]
        if not await change.move(
            item["id"], ("running",), same, status="scoring", claimed_at=now()
        ):
            return False
        change.bump(await change.item(item["id"]))
    return True


async def take_over(engine: Engine, item_id: str, claimed_at: datetime | None) -> bool:
    """Renew a stale `scoring` claim (its process died) for this process; False when another
    process renewed or finished it first."""
    async with engine.begin() as conn:
        stale: Any = experiment_items.c.claimed_at.is_(None)
        if claimed_at is not None:
            stale = experiment_items.c.claimed_at <= claimed_at
        result = await conn.execute(
            experiment_items.update()
            .where(
                experiment_items.c.id == item_id,
                experiment_items.c.status == "scoring",
                stale,
            )
            .values(claimed_at=now())
        )
    return bool(result.rowcount == 1)


async def touch(engine: Engine, item_id: str) -> None:
    """The item's claim is renewed (its reply was submitted again)."""
    async with engine.begin() as conn:
        await conn.execute(
            experiment_items.update()
            .where(experiment_items.c.id == item_id)
            .values(claimed_at=now())
        )


async def finish(
    engine: Engine,
    item: Mapping[str, Any],
    source: Sequence[str],
    status: str,
    announce: Announce,
    **values: Any,
) -> bool:
    """The item's result (`done` or `failed`) or its end (`stopped`), with the counters."""
    async with changing(engine, item["experiment_id"], announce) as change:
        if change is None:
            return False
        ended = await _result(change, item["id"], source, status, **values)
        await change.conclude()
    return ended


async def _result(
    change: Change, item_id: str, source: Sequence[str], status: str, **values: Any
) -> bool:
    values = {**values, "ended_at": now()}
    for key in ("error", "scores"):
        if key in values and values[key] is not None:
            values[key] = json.dumps(values[key])
    if not await change.move(item_id, source, status=status, **values):
        return False
    experiment = change.experiment
    if status in ("done", "failed"):
        experiment["done"] += 1
        experiment["failed"] += status == "failed"
        if values.get("cost"):
            experiment["cost"] = (experiment["cost"] or 0.0) + values["cost"]
    change.bump(await change.item(item_id))
    return True


async def stop(engine: Engine, experiment_id: str, announce: Announce) -> list[str]:
    """A running experiment is stopping: its pending items are stopped (none starts after
    this); answers the replies of the items in flight, which the caller stops."""
    async with changing(engine, experiment_id, announce) as change:
        if change is None:
            return []
        if change.experiment["status"] in ("queued", "running"):
            change.experiment["status"] = "stopping"
            await change.conn.execute(
                experiment_items.update()
                .where(
                    experiment_items.c.experiment_id == experiment_id,
                    experiment_items.c.status == "pending",
                )
                .values(status="stopped", ended_at=now())
            )
            change.bump()
        running = await change.conn.scalars(
            sa.select(experiment_items.c.reply_id).where(
                experiment_items.c.experiment_id == experiment_id,
                experiment_items.c.status == "running",
            )
        )
        replies = [r for r in running if r]
        await change.conclude()
    return replies


async def settle(engine: Engine, experiment_id: str, announce: Announce) -> None:
    """A stopping experiment with nothing left in flight is stopped."""
    async with changing(engine, experiment_id, announce) as change:
        if change is not None:
            await change.conclude()


async def delete_experiment(engine: Engine, experiment_id: str) -> None:
    """The experiment, its items and its chats (their replies and scores go with them); a
    dataset whose baseline it was has none."""
    async with engine.begin() as conn:
        await conn.execute(
            datasets.update()
            .where(datasets.c.baseline_id == experiment_id)
            .values(baseline_id=None)
        )
        chat_ids = list(
            await conn.scalars(sa.select(chats.c.id).where(chats.c.experiment_id == experiment_id))
        )
        if chat_ids:
            await conn.execute(messages.delete().where(messages.c.chat_id.in_(chat_ids)))
            await conn.execute(chats.delete().where(chats.c.id.in_(chat_ids)))
        await conn.execute(
            experiment_items.delete().where(experiment_items.c.experiment_id == experiment_id)
        )
        await conn.execute(experiments.delete().where(experiments.c.id == experiment_id))


# ---- the rows of an item's chat ----------------------------------------------------------


def message_row(
    chat_id: str, parent_id: str | None, role: str, content: str = "", **extra: Any
) -> dict[str, Any]:
    """A message's row as `db.chats` inserts one (every key, for an executemany)."""
    stamp = now()
    row: dict[str, Any] = {c.name: None for c in messages.c}
    row.update(
        id=new_id("msg"),
        chat_id=chat_id,
        parent_id=parent_id,
        role=role,
        content=content,
        thinking="",
        status="complete",
        seq=0,
        created_at=stamp,
        updated_at=stamp,
    )
    row.update(extra)
    return row


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
