"""Use cases of accounts, users, memberships, tokens and browser sessions (web and CLI).

Whatever ends someone's access (signing out, a password change, a revoked token,
a member removed, a user deleted) is also published on the log's `ACCESS`
stream, which every API process follows (`web.live`): their open streams of that
session or user end at once with `reset {reason: access}`. Who may manage what:
a site admin everything; an account's owners its members; everyone their own
password, sessions and API tokens. What one may not manage is 404, as what one
may not see. Imports `db.accounts`, `passwords`, `events`, `log`, `errors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from gapless import events, passwords
from gapless.db import Engine
from gapless.db import accounts as db
from gapless.db.accounts import Caller
from gapless.errors import ConflictError, InvalidError, NotFoundError, UnauthorizedError
from gapless.log.base import EventLog

ACCESS = "access"  # the log stream of ended access, followed by every API process
ROLES = ("owner", "member")
SESSION_TTL = timedelta(days=30)
INVITE_TTL = timedelta(days=7)


def revoked(user_id: str, tokens: list[str] | None = None, account_id: str | None = None) -> Any:
    """The `access.revoked` event: these tokens of the user (None: all), or (with
    `account_id`) the user's access to one account."""
    return events.make(
        "access.revoked", {"user_id": user_id, "tokens": tokens, "account_id": account_id}
    )


@dataclass(frozen=True)
class Accounts:
    engine: Engine
    log: EventLog | None = None  # None (the CLI on a memory log): heartbeats re-check instead
    password_min: int = 12
    session_ttl: timedelta = SESSION_TTL

    async def publish(
        self, user_id: str, tokens: list[str] | None = None, account_id: str | None = None
    ) -> None:
        if self.log is not None and (tokens is None or tokens):
            await self.log.append(ACCESS, revoked(user_id, tokens, account_id))

    # -- who is calling --

    async def by_bearer(self, secret: str) -> Caller:
        caller = await db.caller_for_token(self.engine, secret, "api")
        if caller is None:
            raise UnauthorizedError("invalid token")
        return caller

    async def by_session(self, secret: str) -> Caller | None:
        return await db.caller_for_token(self.engine, secret, "session")

    async def still_sees(self, caller: Caller, account_id: str) -> bool:
        """Access is checked again on long subscriptions: the token may be gone, the
        membership ended."""
        if caller.token_id:
            fresh = await db.token_holder(self.engine, caller.token_id)
        else:
            fresh = await db.caller_for_user(self.engine, caller.user_id)
        return fresh is not None and fresh.sees(account_id)

    # -- sessions --

    async def sign_in(self, email: str, password: str, agent: str = "") -> tuple[str, Caller]:
        """A new session secret for the cookie, and who it is (with its CSRF token). An
        unknown email costs the same hashing as a known one."""
        found = await db.password_of(self.engine, email)
        stored = found[1] if found else None
        if not await passwords.verify_off_loop(password, stored) or found is None:
            raise UnauthorizedError("wrong email or password", code="bad_credentials")
        assert stored is not None
        if passwords.outdated(stored):  # scrypt, or cheaper Argon2 than today's
            await db.set_password(self.engine, found[0], await passwords.hash_off_loop(password))
        secret, _ = await db.issue_token(
            self.engine, found[0], "session", self.session_ttl, name=agent[:200] or None
        )
        caller = await db.caller_for_token(self.engine, secret, "session")
        assert caller is not None
        return secret, caller

    async def sign_out(self, secret: str) -> None:
        ended = await db.revoke_token(self.engine, secret)
        if ended is not None:
            await self.publish(ended[0], [ended[1]])

    async def sessions(self, caller: Caller) -> list[dict[str, Any]]:
        found = await db.list_tokens(self.engine, caller.user_id, "session")
        return [{**s, "current": s["id"] == caller.token_id} for s in found]

    async def end_sessions(self, caller: Caller, session_id: str | None = None) -> None:
        """Sign out one session of the caller's, or (None) every one: "sign out everywhere"."""
        ended = await db.revoke_tokens(self.engine, caller.user_id, ("session",), only=session_id)
        if session_id is not None and not ended:
            raise NotFoundError("session not found")
        await self.publish(caller.user_id, ended)

    async def change_password(self, caller: Caller, current: str, new: str) -> None:
        """Needs the current password; ends every other session of the user (API tokens,
        made on purpose, stay)."""
        found = await db.password_of(self.engine, caller.email)
        stored = found[1] if found else None
        if not await passwords.verify_off_loop(current, stored):
            raise InvalidError("the current password is wrong", code="bad_credentials")
        passwords.check(new, self.password_min, (caller.email, caller.name))
        await db.set_password(self.engine, caller.user_id, await passwords.hash_off_loop(new))
        ended = await db.revoke_tokens(
            self.engine, caller.user_id, ("session",), keep=caller.token_id or None
        )
        await self.publish(caller.user_id, ended)

    # -- API tokens --

    async def tokens(self, caller: Caller) -> list[dict[str, Any]]:
        return await db.list_tokens(self.engine, caller.user_id, "api")

    async def create_token(
        self, caller: Caller, name: str, days: float | None = None
    ) -> dict[str, Any]:
        """A named API token, shown once, expiring after `days` (None: never)."""
        ttl = timedelta(days=days) if days else None
        secret, _ = await db.issue_token(self.engine, caller.user_id, "api", ttl, name=name)
        made = await db.token_by_secret(self.engine, secret)
        assert made is not None
        made.pop("user_id")
        return {**made, "token": secret}

    async def revoke_token(self, caller: Caller, token_id: str) -> None:
        ended = await db.revoke_tokens(self.engine, caller.user_id, ("api",), only=token_id)
        if not ended:
            raise NotFoundError("token not found")
        await self.publish(caller.user_id, ended)

    async def new_token(self, email: str | None = None, name: str = "cli") -> str:
        user_id = await (db.find_user(self.engine, email) if email else db.first_admin(self.engine))
        if user_id is None:
            raise NotFoundError(f"no user {email or '(admin)'}")
        token, _ = await db.issue_token(self.engine, user_id, name=name)
        return token

    # -- accounts, users, members (site admin; owners for their accounts) --

    async def add_account(self, name: str) -> str:
        if not name.strip():
            raise InvalidError("account name must not be empty")
        return await db.create_account(self.engine, name.strip())

    async def add_user(
        self, email: str, name: str, password: str | None, site_admin: bool = False
    ) -> str:
        if "@" not in email or len(email) > 320:
            raise InvalidError("email must contain @")
        if await db.find_user(self.engine, email):
            raise ConflictError(f"user {email} exists already", code="exists")
        if password is not None:
            passwords.check(password, self.password_min, (email, name))
        return await db.create_user(self.engine, email, name or email, password, site_admin)

    async def add_member(self, account: str, email: str, role: str = "member") -> None:
        account_id = await db.find_account(self.engine, account)
        user_id = await db.find_user(self.engine, email)
        if account_id is None or user_id is None:
            raise NotFoundError("no such account or user")
        if role not in ROLES:
            raise InvalidError(f"role must be one of {', '.join(ROLES)}")
        if await db.role_of(self.engine, account_id, user_id) is not None:
            raise ConflictError("already a member", code="exists")
        await db.add_member(self.engine, account_id, user_id, role)

    async def remove_member(self, account: str, email: str) -> None:
        account_id = await db.find_account(self.engine, account)
        user_id = await db.find_user(self.engine, email)
        if account_id is None or user_id is None:
            raise NotFoundError("no such account or user")
        await db.remove_member(self.engine, account_id, user_id)
        await self.publish(user_id, None, account_id)

    async def delete_user(self, caller: Caller, user_id: str) -> None:
        if not caller.site_admin:
            raise NotFoundError("user not found")
        if user_id == caller.user_id:
            raise ConflictError("you cannot delete yourself")
        if not await db.delete_user(self.engine, user_id):
            raise NotFoundError("user not found")
        await self.publish(user_id)

    async def set_password(self, email: str, password: str) -> None:
        """An administrator sets a user's password (the CLI): their sessions end."""
        user_id = await db.find_user(self.engine, email)
        if user_id is None:
            raise NotFoundError(f"no user {email}")
        passwords.check(password, self.password_min, (email,))
        await db.set_password(self.engine, user_id, await passwords.hash_off_loop(password))
        await self.publish(user_id, await db.revoke_tokens(self.engine, user_id, ("session",)))

    async def remove_user(self, email: str) -> None:
        user_id = await db.find_user(self.engine, email)
        if user_id is None or not await db.delete_user(self.engine, user_id):
            raise NotFoundError(f"no user {email}")
        await self.publish(user_id)

    async def users(self, caller: Caller) -> list[dict[str, Any]]:
        if not caller.site_admin:
            raise NotFoundError("not found")
        return await db.list_users(self.engine)

    async def accounts(self, caller: Caller) -> list[dict[str, Any]]:
        return await db.list_accounts(self.engine, None if caller.site_admin else caller.user_id)

    async def create_account(self, caller: Caller, name: str) -> dict[str, Any]:
        """A site admin makes an account and owns it."""
        if not caller.site_admin:
            raise NotFoundError("not found")
        account_id = await self.add_account(name)
        await db.add_member(self.engine, account_id, caller.user_id, "owner")
        return {"id": account_id, "name": name.strip(), "role": "owner"}

    async def managed(self, caller: Caller, account_id: str) -> None:
        """Raises 404 unless the caller may manage this account's members."""
        if caller.site_admin and await db.find_account(self.engine, account_id) == account_id:
            return
        if await db.role_of(self.engine, account_id, caller.user_id) != "owner":
            raise NotFoundError("account not found")

    async def members(self, caller: Caller, account_id: str) -> list[dict[str, Any]]:
        await self.managed(caller, account_id)
        return await db.list_members(self.engine, account_id)

    async def invite(
        self,
        caller: Caller,
        account_id: str,
        email: str,
        *,
        name: str = "",
        role: str = "member",
        password: str | None = None,
    ) -> dict[str, Any]:
        """Make `email` a member: a new user gets `password` as a first one or, without it,
        an invitation secret (for a link, valid `INVITE_TTL`) to choose their own."""
        await self.managed(caller, account_id)
        user_id = await db.find_user(self.engine, email)
        invite = None
        if user_id is None:
            user_id = await self.add_user(email, name, password)
            if password is None:
                invite, _ = await db.issue_token(self.engine, user_id, "invite", INVITE_TTL)
        await self.add_member(account_id, email, role)
        return {"id": user_id, "email": email.lower(), "role": role, "invite": invite}

    async def set_role(self, caller: Caller, account_id: str, user_id: str, role: str) -> None:
        await self.managed(caller, account_id)
        if role not in ROLES:
            raise InvalidError(f"role must be one of {', '.join(ROLES)}")
        if not await db.set_role(self.engine, account_id, user_id, role):
            raise NotFoundError("member not found")
        if role != "owner":
            await self._keep_an_owner(account_id, user_id, "owner")

    async def remove(self, caller: Caller, account_id: str, user_id: str) -> None:
        await self.managed(caller, account_id)
        role = await db.role_of(self.engine, account_id, user_id)
        if role is None:
            raise NotFoundError("member not found")
        await db.remove_member(self.engine, account_id, user_id)
        await self._keep_an_owner(account_id, user_id, role)
        await self.publish(user_id, None, account_id)

    async def _keep_an_owner(self, account_id: str, user_id: str, role: str) -> None:
        """An account keeps at least one owner: undo a change that left it none."""
        members = await db.list_members(self.engine, account_id)
        if not any(m["role"] == "owner" for m in members):
            if any(m["id"] == user_id for m in members):
                await db.set_role(self.engine, account_id, user_id, role)
            else:
                await db.add_member(self.engine, account_id, user_id, role)
            raise ConflictError("an account needs at least one owner", code="last_owner")

    async def accept_invite(
        self, secret: str, password: str, agent: str = ""
    ) -> tuple[str, Caller]:
        """Choose a first password with an invitation's secret; signs in."""
        found = await db.token_by_secret(self.engine, secret)
        if found is None or found["kind"] != "invite" or await db.token_holder(
            self.engine, found["id"]
        ) is None:
            raise NotFoundError("this invitation is unknown or has expired")
        user = await db.caller_for_user(self.engine, found["user_id"])
        assert user is not None
        passwords.check(password, self.password_min, (user.email, user.name))
        await db.set_password(self.engine, user.user_id, await passwords.hash_off_loop(password))
        await db.revoke_tokens(self.engine, user.user_id, ("invite",))
        return await self.sign_in(user.email, password, agent)
