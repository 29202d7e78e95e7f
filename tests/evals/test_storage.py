"""Prompt storage on SQLite and PostgreSQL: the migrations build exactly the tables declared,
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


async def test_the_migrations_build_every_table_as_declared(engine: Engine) -> None:
    """Every domain's migrations (the heads together) against `db.tables`: columns, types,
    indexes, constraints; a table or index declared in one and not the other fails."""

    def differences(connection: sa.Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))

    async with engine.connect() as conn:
        assert await conn.run_sync(differences) == []


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
