"""Review queues and their items: one function per query or use.

Rules add traces as items by a scan (`add_matching`): each rule is one query
over the account's traces or scores since the queue's `since`, leaving out
traces already in the queue, so a scan repeated at any time adds each trace
once (the unique key refuses a racing second insert). A reviewer is handed the
oldest pending item (then skipped ones) that no other reviewer holds: the hand
over is a conditional update, so two reviewers never get the same item.
Imports `db.tables`, `db.rows`, `db.traces` (the dialect's upsert).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from gapless.db import Engine
from gapless.db.rows import iso, new_id, now
from gapless.db.tables import review_items, review_queues, scores, traces
from gapless.db.traces import dialect, upsert

HOLD = timedelta(minutes=5)  # how long an item handed to a reviewer is kept from others
SCAN_LIMIT = 1000  # traces one rule adds per scan


def queue_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "account_id": row.account_id,
        "name": row.name,
        "description": row.description,
        "rules": json.loads(row.rules),
        "scores": json.loads(row.scores),
        "since": iso(row.since),
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
    }


def item_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "queue_id": row.queue_id,
        "trace_id": row.trace_id,
        "reason": row.reason,
        "status": row.status,
        "reviewed_by": row.reviewed_by,
        "reviewed_at": iso(row.reviewed_at),
        "added_at": iso(row.added_at),
    }


async def create_queue(engine: Engine, values: Mapping[str, Any]) -> dict[str, Any]:
    row = {
        "id": new_id("rvq"),
        "created_at": now(),
        **values,
        "rules": json.dumps(values["rules"]),
        "scores": json.dumps(values["scores"]),
    }
    async with engine.begin() as conn:
        await conn.execute(review_queues.insert().values(**row))
    found = await get_queue(engine, row["id"])
    assert found is not None
    return found


async def get_queue(engine: Engine, queue_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(sa.select(review_queues).where(review_queues.c.id == queue_id))
        ).first()
    return queue_json(row) if row else None


async def list_queues(engine: Engine, account_ids: Iterable[str] | None) -> list[dict[str, Any]]:
    query = sa.select(review_queues).order_by(review_queues.c.name, review_queues.c.id)
    if account_ids is not None:
        query = query.where(review_queues.c.account_id.in_(list(account_ids)))
    async with engine.connect() as conn:
        return [queue_json(row) for row in await conn.execute(query)]


async def delete_queue(engine: Engine, queue_id: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(review_queues.delete().where(review_queues.c.id == queue_id))


async def counts(engine: Engine, queue_ids: list[str]) -> dict[str, dict[str, int]]:
    found = {q: {"pending": 0, "skipped": 0, "done": 0} for q in queue_ids}
    if not queue_ids:
        return found
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(review_items.c.queue_id, review_items.c.status, sa.func.count())
            .where(review_items.c.queue_id.in_(queue_ids))
            .group_by(review_items.c.queue_id, review_items.c.status)
        )
        for queue_id, status, count in rows:
            found[queue_id][status] = int(count)
    return found


def _held(queue_id: str, trace_id: Any) -> Any:
    """Whether the queue holds the trace `trace_id` (a column of the outer query)."""
    return (
        sa.select(review_items.c.id)
        .where(review_items.c.queue_id == queue_id, review_items.c.trace_id == trace_id)
        .exists()
    )


def _rule_query(queue: Mapping[str, Any], rule: Mapping[str, Any]) -> Any:
    """The ids of traces `rule` selects that the queue does not hold yet."""
    since = datetime.fromisoformat(queue["since"].replace("Z", "+00:00"))
    kind = rule["kind"]
    if kind in ("thumbs_down", "score_below"):
        if kind == "thumbs_down":
            match = [scores.c.name == "thumbs", scores.c.source == "feedback", scores.c.value == 0]
        else:
            match = [scores.c.name == rule["name"], scores.c.value < float(rule["value"])]
        return (
            sa.select(scores.c.trace_id)
            .where(
                scores.c.account_id == queue["account_id"],
                scores.c.created_at >= since,
                scores.c.trace_id.is_not(None),
                ~_held(queue["id"], scores.c.trace_id),
                *match,
            )
            .group_by(scores.c.trace_id)
            .limit(SCAN_LIMIT)
        )
    conditions = {
        "error": sa.or_(traces.c.status == "failed", traces.c.error_code.is_not(None)),
        "cost_above": traces.c.cost > float(rule.get("value") or 0),
        "latency_above": traces.c.duration_ms > float(rule.get("value") or 0),
    }
    return (
        sa.select(traces.c.id)
        .where(
            traces.c.account_id == queue["account_id"],
            traces.c.started_at >= since,
            traces.c.ended_at.is_not(None),
            ~_held(queue["id"], traces.c.id),
            conditions[kind],
        )
        .order_by(traces.c.started_at)
        .limit(SCAN_LIMIT)
    )


def describe(rule: Mapping[str, Any]) -> str:
    kind = rule["kind"]
    if kind == "cost_above":
        return f"cost above ${rule['value']}"
    if kind == "latency_above":
        return f"latency above {rule['value']} ms"
    if kind == "score_below":
        return f"{rule['name']} below {rule['value']}"
    return {"thumbs_down": "thumbs down", "error": "error"}[kind]


async def add_items(engine: Engine, queue_id: str, found: Mapping[str, str]) -> int:
    """Add {trace id: reason} to the queue (those it holds already are left as they are);
    how many were offered (a racing scan may have added some of them first)."""
    if not found:
        return 0
    stamp = now()
    rows = [
        {
            "id": new_id("rvi"),
            "queue_id": queue_id,
            "trace_id": trace_id,
            "reason": reason[:200],
            "status": "pending",
            "claimed_by": None,
            "claimed_at": None,
            "reviewed_by": None,
            "reviewed_at": None,
            "added_at": stamp,
        }
        for trace_id, reason in found.items()
    ]
    statement = upsert(dialect(engine), review_items).on_conflict_do_nothing(
        index_elements=["queue_id", "trace_id"]
    )
    async with engine.begin() as conn:
        await conn.execute(statement, rows)
    return len(rows)


async def add_matching(engine: Engine, queue: Mapping[str, Any]) -> int:
    """Run every rule of the queue once; the number of traces added."""
    found: dict[str, str] = {}
    async with engine.connect() as conn:
        for rule in queue["rules"]:
            for (trace_id,) in await conn.execute(_rule_query(queue, rule)):
                found.setdefault(trace_id, describe(rule))
    return await add_items(engine, queue["id"], found)


async def list_items(
    engine: Engine, queue_id: str, status: str | None, limit: int
) -> list[dict[str, Any]]:
    query = (
        sa.select(review_items)
        .where(review_items.c.queue_id == queue_id)
        .order_by(review_items.c.added_at, review_items.c.id)
        .limit(limit)
    )
    if status:
        query = query.where(review_items.c.status == status)
    async with engine.connect() as conn:
        return [item_json(row) for row in await conn.execute(query)]


async def get_item(engine: Engine, item_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(sa.select(review_items).where(review_items.c.id == item_id))
        ).first()
    return item_json(row) if row else None


async def item_of(engine: Engine, queue_id: str, trace_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(review_items).where(
                    review_items.c.queue_id == queue_id, review_items.c.trace_id == trace_id
                )
            )
        ).first()
    return item_json(row) if row else None


def _free(user: str, stamp: datetime) -> Any:
    return sa.or_(
        review_items.c.claimed_by.is_(None),
        review_items.c.claimed_by == user,
        review_items.c.claimed_at < stamp - HOLD,
    )


async def hand_next(engine: Engine, queue_id: str, user: str) -> dict[str, Any] | None:
    """The oldest pending item (then the oldest skipped) no one else holds, now held by
    `user`; None when every item is done or held."""
    skipped_last = sa.case((review_items.c.status == "skipped", 1), else_=0)
    for _ in range(5):
        stamp = now()
        async with engine.begin() as conn:
            found = await conn.scalar(
                sa.select(review_items.c.id)
                .where(
                    review_items.c.queue_id == queue_id,
                    review_items.c.status.in_(("pending", "skipped")),
                    _free(user, stamp),
                )
                .order_by(skipped_last, review_items.c.added_at, review_items.c.id)
                .limit(1)
            )
            if found is None:
                return None
            taken = await conn.execute(
                review_items.update()
                .where(review_items.c.id == found, _free(user, stamp))
                .values(claimed_by=user, claimed_at=stamp)
            )
        if taken.rowcount == 1:
            return await get_item(engine, found)
    return None


async def finish_item(engine: Engine, item_id: str, status: str, user: str) -> None:
    """Mark the item `done` or `skipped`, and let go of it."""
    values: dict[str, Any] = {"status": status, "claimed_by": None, "claimed_at": None}
    if status == "done":
        values.update(reviewed_by=user, reviewed_at=now())
    async with engine.begin() as conn:
        await conn.execute(
            review_items.update().where(review_items.c.id == item_id).values(**values)
        )
