"""Use cases of accounts, users, tokens and browser sessions (for the web layer and the CLI).

Imports `db.accounts`, `errors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from gapless.db import Engine
from gapless.db import accounts as db
from gapless.db.accounts import Caller
from gapless.errors import InvalidError, NotFoundError, UnauthorizedError

SESSION_TTL = timedelta(days=30)


@dataclass(frozen=True)
class Accounts:
    engine: Engine

    async def by_bearer(self, secret: str) -> Caller:
        caller = await db.caller_for_token(self.engine, secret, "api")
        if caller is None:
            raise UnauthorizedError("invalid token")
        return caller

    async def by_session(self, secret: str) -> Caller | None:
        return await db.caller_for_token(self.engine, secret, "session")

    async def sign_in(self, email: str, password: str) -> tuple[str, Caller]:
        """A new session secret for the cookie, and who it is (with its CSRF token)."""
        found = await db.caller_for_password(self.engine, email, password)
        if found is None:
            raise UnauthorizedError("wrong email or password", code="bad_credentials")
        secret, _ = await db.issue_token(self.engine, found.user_id, "session", SESSION_TTL)
        caller = await db.caller_for_token(self.engine, secret, "session")
        assert caller is not None
        return secret, caller

    async def sign_out(self, secret: str) -> None:
        await db.revoke_token(self.engine, secret)

    async def new_token(self, email: str | None = None) -> str:
        user_id = await (db.find_user(self.engine, email) if email else db.first_admin(self.engine))
        if user_id is None:
            raise NotFoundError(f"no user {email or '(admin)'}")
        token, _ = await db.issue_token(self.engine, user_id)
        return token

    async def add_account(self, name: str) -> str:
        if not name.strip():
            raise InvalidError("account name must not be empty")
        return await db.create_account(self.engine, name.strip())

    async def add_user(
        self, email: str, name: str, password: str | None, site_admin: bool = False
    ) -> str:
        if "@" not in email:
            raise InvalidError("email must contain @")
        if await db.find_user(self.engine, email):
            raise InvalidError(f"user {email} exists already", code="exists")
        return await db.create_user(self.engine, email, name or email, password, site_admin)

    async def add_member(self, account: str, email: str, role: str = "member") -> None:
        account_id = await db.find_account(self.engine, account)
        user_id = await db.find_user(self.engine, email)
        if account_id is None or user_id is None:
            raise NotFoundError("no such account or user")
        await db.add_member(self.engine, account_id, user_id, role)

    async def remove_member(self, account: str, email: str) -> None:
        account_id = await db.find_account(self.engine, account)
        user_id = await db.find_user(self.engine, email)
        if account_id is None or user_id is None:
            raise NotFoundError("no such account or user")
        await db.remove_member(self.engine, account_id, user_id)

    async def still_sees(self, caller: Caller, account_id: str) -> bool:
        """Access is checked again on long subscriptions: membership may have ended."""
        fresh = await db.caller_for_user(self.engine, caller.user_id)
        return fresh is not None and fresh.sees(account_id)
