"""Fixtures: a migrated database on each engine (the observability tests' own fixture), and a
second account with its own member."""

from __future__ import annotations

from dataclasses import dataclass

from gapless.db import accounts as db_accounts
from tests.observe.conftest import engine
from tests.support.server import LiveServer

__all__ = ["Outsider", "engine", "outsider"]


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
