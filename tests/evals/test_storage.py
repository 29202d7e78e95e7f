"""Prompt storage on SQLite and PostgreSQL: the migration builds exactly the tables declared,
versions number themselves, labels move with their history, deleting an account removes all."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gapless.db import Engine
from gapless.db import accounts as db_accounts
from gapless.db import evals as db
from gapless.db.tables import accounts, metadata

MINE = {
    "prompts",
    "prompt_versions",
    "prompt_labels",
    "prompt_label_moves",
    "scores",
    "review_queues",
    "review_items",
}


async def test_the_migration_builds_the_evaluation_tables_as_declared(engine: Engine) -> None:
    def differences(connection: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(connection)
        return [
            change
            for change in compare_metadata(context, metadata)
            if MINE & {getattr(part, "name", None) for part in _tables(change)}
        ]

    async with engine.connect() as conn:
        assert await conn.run_sync(differences) == []


def _tables(change: Any) -> list[Any]:
    found = []
    for part in change if isinstance(change, list) else [change]:
        for item in part if isinstance(part, tuple) else [part]:
            table = getattr(item, "table", item)
            found.append(table)
    return found


async def test_versions_number_themselves_and_labels_keep_their_history(engine: Engine) -> None:
    account = await db_accounts.create_account(engine, "Team")
    created = await db.create_prompt(
        engine,
        account,
        "greeter",
        {"content": "Hello", "config": {"model": "m"}},
        ["production"],
        "u1",
    )
    assert created is not None
    prompt_id = created["id"]
    assert await db.create_prompt(engine, account, "greeter", {"content": "x"}, [], "u1") is None
    assert await db.add_version(engine, prompt_id, {"content": "Hi"}, ["staging"], "u2") == 2
    assert await db.labels_of(engine, prompt_id) == {"latest": 2, "production": 1, "staging": 2}
    moved = await db.move_label(engine, prompt_id, "production", 2, "u3")
    assert moved is not None and (moved["from_version"], moved["to_version"]) == (1, 2)
    assert await db.move_label(engine, prompt_id, "production", 2, "u3") is None  # no change
    moves = await db.history(engine, prompt_id)
    assert [(m["label"], m["from_version"], m["to_version"], m["moved_by"]) for m in moves] == [
        ("production", 1, 2, "u3"),
        ("staging", None, 2, "u2"),
        ("latest", 1, 2, "u2"),
        ("production", None, 1, "u1"),
        ("latest", None, 1, "u1"),
    ]
    first = await db.get_version(engine, prompt_id, 1)
    assert first is not None and (first["content"], first["config"]) == ("Hello", {"model": "m"})

    async with engine.begin() as conn:
        await conn.execute(accounts.delete().where(accounts.c.id == account))
    assert await db.get_prompt(engine, prompt_id) is None
    assert await db.history(engine, prompt_id) == []
