"""Fixtures: a migrated database on each engine, and a second account with its own member."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gapless.db import Engine
from gapless.db import accounts as db_accounts
from gapless.db import engine as db_engine
from tests.support.server import LiveServer


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'evals.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    created = db_engine.create(url)
    await db_engine.migrate(created)
    yield created
    await created.dispose()


@dataclass(frozen=True)
class Outsider:
    """A member of another account only: everything of the first account is 404 to them."""

    account_id: str
    user_id: str
    token: str


async def outsider(server: LiveServer, email: str = "eve@example.com") -> Outsider:
    async def make() -> Outsider:
        engine = server.runtime.engine
        account = await db_accounts.create_account(engine, "Elsewhere")
        user = await db_accounts.create_user(engine, email, "Eve", None)
        await db_accounts.add_member(engine, account, user)
        token, _ = await db_accounts.issue_token(engine, user)
        return Outsider(account, user, token)

    return await server.arun(make())
