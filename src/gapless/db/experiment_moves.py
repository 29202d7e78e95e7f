"""An experiment's changes while it runs, each under its row lock and in progress order.

Every change takes the experiment's row lock (`FOR UPDATE` on PostgreSQL;
SQLite has one writer), adds one to `progress` per change, and hands each
change's `experiment.updated` payload to `announce` in that order: inside the
transaction on PostgreSQL, so no two processes' events cross; right after the
commit on SQLite, whose inline transactions may wait on nothing else (one
process: nothing of ours runs between the commit and the append). Every move
of an item is conditional on the state it moves from, so a hook and a sweep
racing for one item move it once. Imports `db.tables`, `db.rows`, `db.inline`,
`db.experiments`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from gapless.db import Connection, Engine
from gapless.db.experiments import COST, ITEMS, active, experiment_json, item_json
from gapless.db.inline import InlineEngine
from gapless.db.rows import now
from gapless.db.tables import chats, experiment_items, experiments, messages

Announce = Callable[[str, dict[str, Any]], Awaitable[None]]  # (account id, payload)
EVENT_KEYS = ("id", "status", "total", "done", "failed", "progress", "cost")


def payload(experiment: Mapping[str, Any], item: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An `experiment.updated` event's payload."""
    found = {k: experiment[k] for k in EVENT_KEYS}
    if item is not None:
        found["item"] = dict(item)
    return found


@dataclass
class Change:
    """One transaction's changes to an experiment: each `bump` is one step of `progress`
    and one event."""

    conn: Connection
    experiment: dict[str, Any]
    payloads: list[dict[str, Any]] = field(default_factory=list)

    def bump(self, item: dict[str, Any] | None = None) -> None:
        self.experiment["progress"] += 1
        self.payloads.append(payload(self.experiment, item))

    async def item(self, item_id: str) -> dict[str, Any]:
        row = (await self.conn.execute(ITEMS.where(experiment_items.c.id == item_id))).one()
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
        elif experiment["status"] == "stopping" and not await active(self.conn, experiment["id"]):
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
            cost = await conn.scalar(COST, {"b_experiment": experiment_id})
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


async def begin(engine: Engine, experiment_id: str, announce: Announce) -> None:
    """A queued experiment runs: its first change and event (by its creator, or a sweep when
    the creator died first), before any item's, whoever else sees it."""
    async with changing(engine, experiment_id, announce) as change:
        if change is not None and change.experiment["status"] == "queued":
            change.experiment["status"] = "running"
            change.bump()


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
        room = change.experiment["concurrency"] - await active(change.conn, experiment_id)
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
