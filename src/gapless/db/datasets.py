"""Datasets and their items: one function per query or use.

Items are added in one transaction however many there are (an import is all
or nothing). An item an experiment used (a row of `experiment_items`, read
here, written by `db.experiments`) is archived instead of deleted, decided in
the transaction that does it. Imports `db.tables`, `db.rows`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from gapless.db import Connection, Engine
from gapless.db.experiments import delete_chats
from gapless.db.rows import iso, new_id, now
from gapless.db.tables import chats, dataset_items, datasets, experiment_items, experiments

ACTIVE = "active"
ARCHIVED = "archived"
GOING_ON = ("queued", "running", "stopping")  # experiments that still run items


def dataset_json(row: Any, count: int = 0) -> dict[str, Any]:
    return {
        "id": row.id,
        "account_id": row.account_id,
        "name": row.name,
        "description": row.description,
        "baseline_id": row.baseline_id,
        "items": count,
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def item_json(row: Mapping[Any, Any]) -> dict[str, Any]:
    """An item from its row's mapping (or from the values just inserted)."""
    return {
        **{k: row[k] for k in ("id", "dataset_id", "expected", "source_reply_id", "status")},
        "input": json.loads(row["input"]),
        "metadata": json.loads(row["metadata"]),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def _counted() -> sa.Select[Any]:
    """Datasets with how many active items each has."""
    count = (
        sa.select(sa.func.count())
        .where(dataset_items.c.dataset_id == datasets.c.id, dataset_items.c.status == ACTIVE)
        .scalar_subquery()
    )
    return sa.select(datasets, count.label("active"))


async def create_dataset(engine: Engine, fields: Mapping[str, Any]) -> dict[str, Any] | None:
    """A dataset of `account_id`; None when the account has one of that name."""
    stamp = now()
    dataset_id = new_id("dst")
    try:
        async with engine.begin() as conn:
            await conn.execute(
                datasets.insert().values(
                    id=dataset_id,
                    account_id=fields["account_id"],
                    name=fields["name"],
                    description=fields.get("description") or "",
                    created_by=fields.get("created_by"),
                    created_at=stamp,
                    updated_at=stamp,
                )
            )
    except sa.exc.IntegrityError:
        return None
    return await get_dataset(engine, dataset_id)


async def get_dataset(engine: Engine, dataset_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(_counted().where(datasets.c.id == dataset_id))).first()
    return dataset_json(row, row.active) if row else None


async def list_datasets(engine: Engine, account_ids: Iterable[str] | None) -> list[dict[str, Any]]:
    """The datasets of these accounts (every account for None), by name."""
    query = _counted().order_by(datasets.c.name, datasets.c.account_id)
    if account_ids is not None:
        query = query.where(datasets.c.account_id.in_(list(account_ids)))
    async with engine.connect() as conn:
        return [dataset_json(row, row.active) for row in await conn.execute(query)]


async def update_dataset(
    engine: Engine, dataset_id: str, fields: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Change `name`, `description` or `baseline_id`; None when the name is taken."""
    try:
        async with engine.begin() as conn:
            await conn.execute(
                datasets.update()
                .where(datasets.c.id == dataset_id)
                .values(**fields, updated_at=now())
            )
    except sa.exc.IntegrityError:
        return None
    return await get_dataset(engine, dataset_id)


async def delete_dataset(engine: Engine, dataset_id: str) -> bool:
    """The dataset with its items, its experiments' chats (and, by the foreign keys, its
    experiments); False (and nothing deleted) while one of its experiments is going on."""
    going_on = sa.exists().where(
        experiments.c.dataset_id == dataset_id, experiments.c.status.in_(GOING_ON)
    )
    async with engine.begin() as conn:
        await _lock(conn, dataset_id)
        if await conn.scalar(sa.select(going_on)):
            return False
        runs = sa.select(experiments.c.id).where(experiments.c.dataset_id == dataset_id)
        await delete_chats(conn, chats.c.experiment_id.in_(runs))  # the runs' own chats
        await conn.execute(dataset_items.delete().where(dataset_items.c.dataset_id == dataset_id))
        await conn.execute(datasets.delete().where(datasets.c.id == dataset_id))
    return True


async def experiment_in(engine: Engine, experiment_id: str, dataset_id: str) -> bool:
    """Whether the experiment is a run of this dataset."""
    async with engine.connect() as conn:
        found = await conn.scalar(
            sa.select(experiments.c.id).where(
                experiments.c.id == experiment_id, experiments.c.dataset_id == dataset_id
            )
        )
    return found is not None


async def add_items(
    engine: Engine,
    dataset_id: str,
    items: Sequence[Mapping[str, Any]],
    limit: int | None = None,
) -> list[dict[str, Any]] | None:
    """Insert every item in one transaction; None (and nothing inserted) when the dataset
    would hold more than `limit` active items."""
    stamp = now()
    rows = [
        {
            "id": new_id("dsi"),
            "dataset_id": dataset_id,
            "input": json.dumps(item["input"]),
            "expected": item.get("expected"),
            "metadata": json.dumps(item.get("metadata") or {}),
            "source_reply_id": item.get("source_reply_id"),
            "status": ACTIVE,
            "created_at": stamp,
            "updated_at": stamp,
        }
        for item in items
    ]
    async with engine.begin() as conn:
        await _lock(conn, dataset_id)  # adders of one dataset take turns: the limit holds
        if limit is not None and await _active(conn, dataset_id) + len(rows) > limit:
            return None
        if rows:
            await conn.execute(dataset_items.insert(), rows)
    # ids sort by creation and were made in order: listed, the items keep the input's order
    return [item_json(row) for row in rows]


async def _lock(conn: Connection, dataset_id: str) -> None:
    """The dataset's row lock, held to the end of the transaction (its `updated_at`)."""
    await conn.execute(
        datasets.update().where(datasets.c.id == dataset_id).values(updated_at=now())
    )


async def _active(conn: Connection, dataset_id: str) -> int:
    return int(
        await conn.scalar(
            sa.select(sa.func.count()).where(
                dataset_items.c.dataset_id == dataset_id, dataset_items.c.status == ACTIVE
            )
        )
        or 0
    )


async def list_items(
    engine: Engine, dataset_id: str, archived: bool = False
) -> list[dict[str, Any]]:
    """The dataset's items in the order they were added (active only, unless `archived`)."""
    query = (
        sa.select(dataset_items)
        .where(dataset_items.c.dataset_id == dataset_id)
        .order_by(dataset_items.c.created_at, dataset_items.c.id)
    )
    if not archived:
        query = query.where(dataset_items.c.status == ACTIVE)
    async with engine.connect() as conn:
        return [item_json(row._mapping) for row in await conn.execute(query)]


async def get_item(engine: Engine, dataset_id: str, item_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(dataset_items).where(
                    dataset_items.c.id == item_id, dataset_items.c.dataset_id == dataset_id
                )
            )
        ).first()
    return item_json(row._mapping) if row else None


async def update_item(
    engine: Engine, dataset_id: str, item_id: str, fields: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Change an item's `input`, `expected` or `metadata`; None when it is not there."""
    values = {k: json.dumps(v) if k in ("input", "metadata") else v for k, v in fields.items()}
    async with engine.begin() as conn:
        await conn.execute(
            dataset_items.update()
            .where(dataset_items.c.id == item_id, dataset_items.c.dataset_id == dataset_id)
            .values(**values, updated_at=now())
        )
    return await get_item(engine, dataset_id, item_id)


async def remove_item(engine: Engine, dataset_id: str, item_id: str) -> dict[str, Any] | None:
    """Delete the item, or archive it when an experiment of the dataset used it (answered
    then; None when it was deleted)."""
    used = sa.exists().where(
        experiment_items.c.item_id == item_id,
        experiment_items.c.experiment_id.in_(
            sa.select(experiments.c.id).where(experiments.c.dataset_id == dataset_id)
        ),
    )
    where = (dataset_items.c.id == item_id, dataset_items.c.dataset_id == dataset_id)
    async with engine.begin() as conn:
        # the dataset's row lock first (a write, so SQLite takes its lock now too): an
        # experiment that locks it to take its items is either seen here or sees the change
        await _lock(conn, dataset_id)
        if await conn.scalar(sa.select(used)):
            await conn.execute(
                dataset_items.update().where(*where).values(status=ARCHIVED, updated_at=now())
            )
            row = (await conn.execute(sa.select(dataset_items).where(*where))).first()
            return item_json(row._mapping) if row else None
        await conn.execute(dataset_items.delete().where(*where))
    return None
