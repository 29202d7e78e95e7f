"""Prompts, their versions and labels: one function per query or use.

A version is inserted, never updated: its number is the prompt's highest plus
one, taken in the transaction that inserts it under the prompt's row lock
(writers take turns; were two to race anyway, the primary key refuses the
second, which tries the next). A label
points at a version; each move (and the automatic move of `latest` with every
new version) writes a row of history in the same transaction. Imports
`db.tables`, `db.rows`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from gapless.db import Connection, Engine
from gapless.db.rows import iso, new_id, now
from gapless.db.tables import prompt_label_moves, prompt_labels, prompt_versions, prompts

LATEST = "latest"


def prompt_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "account_id": row.account_id,
        "name": row.name,
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def version_json(row: Any, content: bool = True) -> dict[str, Any]:
    found = {
        "version": row.version,
        "config": json.loads(row.config),
        "message": row.message,
        "author": row.author,
        "created_at": iso(row.created_at),
    }
    if content:
        found["content"] = row.content
    return found


def move_json(row: Any) -> dict[str, Any]:
    return {
        "label": row.label,
        "from_version": row.from_version,
        "to_version": row.to_version,
        "moved_by": row.moved_by,
        "moved_at": iso(row.moved_at),
    }


async def create_prompt(
    engine: Engine,
    account_id: str,
    name: str,
    version: Mapping[str, Any],
    labels: Sequence[str],
    author: str | None,
) -> dict[str, Any] | None:
    """A prompt with its first version; None when the account has a prompt of that name."""
    stamp = now()
    prompt_id = new_id("prm")
    try:
        async with engine.begin() as conn:
            await conn.execute(
                prompts.insert().values(
                    id=prompt_id,
                    account_id=account_id,
                    name=name,
                    created_by=author,
                    created_at=stamp,
                    updated_at=stamp,
                )
            )
            await _insert_version(conn, prompt_id, 1, version, labels, author)
    except sa.exc.IntegrityError:
        return None
    found = await get_prompt(engine, prompt_id)
    assert found is not None
    return found


async def add_version(
    engine: Engine,
    prompt_id: str,
    version: Mapping[str, Any],
    labels: Sequence[str],
    author: str | None,
) -> int:
    """Save a new version (the next number) and move `latest` and `labels` to it."""
    for _ in range(5):
        try:
            async with engine.begin() as conn:
                # the prompt's row lock: writers of one prompt's versions take turns
                await conn.execute(
                    prompts.update().where(prompts.c.id == prompt_id).values(updated_at=now())
                )
                number = 1 + int(
                    await conn.scalar(
                        sa.select(
                            sa.func.coalesce(sa.func.max(prompt_versions.c.version), 0)
                        ).where(prompt_versions.c.prompt_id == prompt_id)
                    )
                    or 0
                )
                await _insert_version(conn, prompt_id, number, version, labels, author)
            return number
        except sa.exc.IntegrityError:
            continue  # another writer took the number: take the next one
    raise RuntimeError("could not number a new prompt version")


async def _insert_version(
    conn: Connection,
    prompt_id: str,
    number: int,
    version: Mapping[str, Any],
    labels: Sequence[str],
    author: str | None,
) -> None:
    await conn.execute(
        prompt_versions.insert().values(
            prompt_id=prompt_id,
            version=number,
            content=version["content"],
            config=json.dumps(version.get("config") or {}),
            message=version.get("message") or "",
            author=author,
            created_at=now(),
        )
    )
    for label in dict.fromkeys([LATEST, *labels]):
        await _move(conn, prompt_id, label, number, author)


async def _move(
    conn: Connection, prompt_id: str, label: str, version: int | None, user: str | None
) -> dict[str, Any] | None:
    """Point `label` at `version` (None removes it) and record the move; None if no change."""
    where = (prompt_labels.c.prompt_id == prompt_id, prompt_labels.c.label == label)
    before = await conn.scalar(sa.select(prompt_labels.c.version).where(*where).with_for_update())
    if before == version:
        return None
    stamp = now()
    if version is None:
        await conn.execute(prompt_labels.delete().where(*where))
    elif before is None:
        await conn.execute(
            prompt_labels.insert().values(
                prompt_id=prompt_id, label=label, version=version, moved_by=user, moved_at=stamp
            )
        )
    else:
        await conn.execute(
            prompt_labels.update()
            .where(*where)
            .values(version=version, moved_by=user, moved_at=stamp)
        )
    move = {"label": label, "from_version": before, "to_version": version, "moved_by": user}
    await conn.execute(
        prompt_label_moves.insert().values(
            id=new_id("plm"), prompt_id=prompt_id, moved_at=stamp, **move
        )
    )
    return {**move, "moved_at": iso(stamp)}


async def move_label(
    engine: Engine, prompt_id: str, label: str, version: int | None, user: str | None
) -> dict[str, Any] | None:
    """Move (or with None remove) a label; the recorded move, or None when nothing changed."""
    async with engine.begin() as conn:
        # the prompt's row lock first: two moves of one label take turns, each records its from
        await conn.execute(
            prompts.update().where(prompts.c.id == prompt_id).values(updated_at=now())
        )
        return await _move(conn, prompt_id, label, version, user)


async def delete_prompt(engine: Engine, prompt_id: str) -> None:
    """The prompt with its versions, labels and their history (an agent naming it then
    fails to start its replies, saying so)."""
    async with engine.begin() as conn:
        await conn.execute(prompts.delete().where(prompts.c.id == prompt_id))


async def get_prompt(engine: Engine, prompt_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(prompts).where(prompts.c.id == prompt_id))).first()
    return prompt_json(row) if row else None


async def prompts_named(
    engine: Engine, name: str, account_ids: Iterable[str] | None
) -> list[dict[str, Any]]:
    """The prompts called `name` in these accounts (every account for None)."""
    query = sa.select(prompts).where(prompts.c.name == name).order_by(prompts.c.account_id)
    if account_ids is not None:
        query = query.where(prompts.c.account_id.in_(list(account_ids)))
    async with engine.connect() as conn:
        return [prompt_json(row) for row in await conn.execute(query)]


async def list_prompts(engine: Engine, account_ids: Iterable[str] | None) -> list[dict[str, Any]]:
    """Prompts by name, each with its labels and its latest version's number and message."""
    query = sa.select(prompts).order_by(prompts.c.name, prompts.c.account_id)
    if account_ids is not None:
        query = query.where(prompts.c.account_id.in_(list(account_ids)))
    async with engine.connect() as conn:
        found = [prompt_json(row) for row in await conn.execute(query)]
        ids = [p["id"] for p in found]
        labels: dict[str, dict[str, int]] = {i: {} for i in ids}
        if ids:
            rows = await conn.execute(
                sa.select(prompt_labels).where(prompt_labels.c.prompt_id.in_(ids))
            )
            for row in rows:
                labels[row.prompt_id][row.label] = row.version
    for prompt in found:
        prompt["labels"] = labels[prompt["id"]]
        prompt["latest_version"] = labels[prompt["id"]].get(LATEST)
    return found


async def labels_of(engine: Engine, prompt_id: str) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(prompt_labels).where(prompt_labels.c.prompt_id == prompt_id)
        )
        return {row.label: row.version for row in rows}


async def versions_of(engine: Engine, prompt_id: str) -> list[dict[str, Any]]:
    """Every version, newest first, without its content."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(prompt_versions)
            .where(prompt_versions.c.prompt_id == prompt_id)
            .order_by(prompt_versions.c.version.desc())
        )
        return [version_json(row, content=False) for row in rows]


async def get_version(engine: Engine, prompt_id: str, version: int) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(prompt_versions).where(
                    prompt_versions.c.prompt_id == prompt_id, prompt_versions.c.version == version
                )
            )
        ).first()
    return version_json(row) if row else None


async def label_version(engine: Engine, prompt_id: str, label: str) -> int | None:
    async with engine.connect() as conn:
        found = await conn.scalar(
            sa.select(prompt_labels.c.version).where(
                prompt_labels.c.prompt_id == prompt_id, prompt_labels.c.label == label
            )
        )
    return int(found) if found is not None else None


async def label_version_at(
    engine: Engine, prompt_id: str, label: str, when: datetime
) -> int | None:
    """The version `label` pointed at at `when`, from its moves (None: not on any then)."""
    async with engine.connect() as conn:
        found = (
            await conn.execute(
                sa.select(prompt_label_moves.c.to_version)
                .where(
                    prompt_label_moves.c.prompt_id == prompt_id,
                    prompt_label_moves.c.label == label,
                    prompt_label_moves.c.moved_at <= when,
                )
                .order_by(prompt_label_moves.c.moved_at.desc())
                .limit(1)
            )
        ).first()
    return int(found.to_version) if found and found.to_version is not None else None


async def history(engine: Engine, prompt_id: str, limit: int = 500) -> list[dict[str, Any]]:
    """The label moves of a prompt, newest first."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(prompt_label_moves)
            .where(prompt_label_moves.c.prompt_id == prompt_id)
            .order_by(prompt_label_moves.c.moved_at.desc(), prompt_label_moves.c.id.desc())
            .limit(limit)
        )
        return [move_json(row) for row in rows]
