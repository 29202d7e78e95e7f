"""Accounts, users, memberships, API tokens and browser sessions.

Secrets are stored hashed: API, session and invitation tokens with SHA-256
(they are long and random, so a slow hash buys nothing), passwords with Argon2id
(`passwords`, in a thread). Imports `db.tables`, `db.rows`, `passwords`.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from gapless import passwords
from gapless.db import Connection, Engine
from gapless.db.prepared import prepared
from gapless.db.rows import aware, iso, new_id, now
from gapless.db.tables import accounts, memberships, tokens, users

TOUCH = timedelta(minutes=1)  # a token's last use is written at most this often


@dataclass(frozen=True)
class Caller:
    """Who is asking, and which accounts they may see (all of them for a site admin)."""

    user_id: str
    email: str
    name: str
    site_admin: bool
    account_ids: frozenset[str]
    session: bool = False  # authenticated by the browser's cookie (so CSRF applies)
    csrf: str = ""
    token_id: str = ""  # the token or session it came with: revoking it ends its streams

    def sees(self, account_id: str) -> bool:
        return self.site_admin or account_id in self.account_ids

    def json(self) -> dict[str, object]:
        return {
            "id": self.user_id,
            "email": self.email,
            "name": self.name,
            "site_admin": self.site_admin,
            "accounts": sorted(self.account_ids),
        }


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_account(engine: Engine, name: str) -> str:
    account_id = new_id("acc")
    async with engine.begin() as conn:
        await conn.execute(accounts.insert().values(id=account_id, name=name, created_at=now()))
    return account_id


async def find_account(engine: Engine, name_or_id: str) -> str | None:
    async with engine.connect() as conn:
        return await conn.scalar(
            sa.select(accounts.c.id)
            .where(sa.or_(accounts.c.id == name_or_id, accounts.c.name == name_or_id))
            .order_by(accounts.c.created_at)
            .limit(1)
        )


async def create_user(
    engine: Engine, email: str, name: str, password: str | None, site_admin: bool = False
) -> str:
    user_id = new_id("usr")
    async with engine.begin() as conn:
        await conn.execute(
            users.insert().values(
                id=user_id,
                email=email.lower(),
                name=name,
                site_admin=site_admin,
                password_hash=await passwords.hash_off_loop(password) if password else None,
                created_at=now(),
            )
        )
    return user_id


async def find_user(engine: Engine, email: str) -> str | None:
    async with engine.connect() as conn:
        return await conn.scalar(sa.select(users.c.id).where(users.c.email == email.lower()))


async def first_admin(engine: Engine) -> str | None:
    async with engine.connect() as conn:
        return await conn.scalar(
            sa.select(users.c.id).where(users.c.site_admin).order_by(users.c.created_at).limit(1)
        )


async def add_member(engine: Engine, account_id: str, user_id: str, role: str = "member") -> None:
    async with engine.begin() as conn:
        await conn.execute(
            memberships.insert().values(account_id=account_id, user_id=user_id, role=role)
        )


async def remove_member(engine: Engine, account_id: str, user_id: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            memberships.delete().where(
                memberships.c.account_id == account_id, memberships.c.user_id == user_id
            )
        )


async def issue_token(
    engine: Engine,
    user_id: str,
    kind: str = "api",
    ttl: timedelta | None = None,
    name: str | None = None,
) -> tuple[str, str]:
    """A new secret (shown once) and, for sessions, its CSRF token."""
    prefix = {"api": "gl_", "session": "gs_"}.get(kind, "gi_")
    secret = prefix + secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24) if kind == "session" else None
    async with engine.begin() as conn:
        await conn.execute(
            tokens.insert().values(
                id=new_id("tok"),
                user_id=user_id,
                hash=_digest(secret),
                kind=kind,
                csrf=csrf,
                created_at=now(),
                expires_at=now() + ttl if ttl else None,
                name=name,
            )
        )
    return secret, csrf or ""


async def token_by_secret(engine: Engine, secret: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(sa.select(tokens).where(tokens.c.hash == _digest(secret)))
        ).first()
    return None if row is None else {**_token_json(row), "user_id": row.user_id}


async def revoke_token(engine: Engine, secret: str) -> tuple[str, str] | None:
    """Delete the token with this secret: its (user id, token id), or None."""
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                tokens.delete()
                .where(tokens.c.hash == _digest(secret))
                .returning(tokens.c.user_id, tokens.c.id)
            )
        ).first()
    return None if row is None else (row.user_id, row.id)


async def revoke_tokens(
    engine: Engine,
    user_id: str,
    kinds: tuple[str, ...],
    *,
    only: str | None = None,
    keep: str | None = None,
) -> list[str]:
    """Delete a user's tokens of these kinds (just `only`, or all but `keep`): their ids."""
    query = tokens.delete().where(tokens.c.user_id == user_id, tokens.c.kind.in_(kinds))
    if only is not None:
        query = query.where(tokens.c.id == only)
    if keep is not None:
        query = query.where(tokens.c.id != keep)
    async with engine.begin() as conn:
        return list((await conn.scalars(query.returning(tokens.c.id))).all())


async def list_tokens(engine: Engine, user_id: str, kind: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(tokens)
            .where(tokens.c.user_id == user_id, tokens.c.kind == kind)
            .order_by(tokens.c.created_at.desc())
        )
        return [_token_json(row) for row in rows if not _expired(row.expires_at)]


def _token_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name or "",
        "kind": row.kind,
        "created_at": iso(row.created_at),
        "expires_at": iso(row.expires_at),
        "last_used_at": iso(row.last_used_at),
    }


def _expired(expires_at: Any) -> bool:
    expires = aware(expires_at)
    return expires is not None and expires < now()


async def _touch(engine: Engine, token_id: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            tokens.update().where(tokens.c.id == token_id).values(last_used_at=now())
        )


# Built once, with bound parameters: every request runs it, and building it cost more
# than running it.
_TOKEN_HOLDER = prepared(
    sa.select(
        users.c.id,
        users.c.email,
        users.c.name,
        users.c.site_admin,
        tokens.c.id.label("token_id"),
        tokens.c.csrf,
        tokens.c.expires_at,
        tokens.c.last_used_at,
        memberships.c.account_id,
    )
    .select_from(
        tokens.join(users, users.c.id == tokens.c.user_id).outerjoin(
            memberships, memberships.c.user_id == users.c.id
        )
    )
    .where(tokens.c.hash == sa.bindparam("b_hash"), tokens.c.kind == sa.bindparam("b_kind"))
)


async def caller_for_token(engine: Engine, secret: str, kind: str) -> Caller | None:
    """Who holds this token, in one statement (every request pays for it, so no more)."""
    async with engine.connect() as conn:
        found = await conn.execute(_TOKEN_HOLDER, {"b_hash": _digest(secret), "b_kind": kind})
        rows = found.all()
    if not rows:
        return None
    first = rows[0]
    if _expired(first.expires_at):
        return None
    used = aware(first.last_used_at)
    if used is None or now() - used > TOUCH:
        await _touch(engine, first.token_id)
    return Caller(
        first.id,
        first.email,
        first.name,
        bool(first.site_admin),
        frozenset(row.account_id for row in rows if row.account_id is not None),
        session=kind == "session",
        csrf=first.csrf or "",
        token_id=first.token_id,
    )


async def password_of(engine: Engine, email: str) -> tuple[str, str | None] | None:
    """A user's id and password hash, by email."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(users.c.id, users.c.password_hash).where(users.c.email == email.lower())
            )
        ).first()
    return None if row is None else (row.id, row.password_hash)


async def set_password(engine: Engine, user_id: str, password_hash: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            users.update().where(users.c.id == user_id).values(password_hash=password_hash)
        )


async def caller_for_user(engine: Engine, user_id: str) -> Caller | None:
    async with engine.connect() as conn:
        return await _caller(conn, user_id)


async def _caller(conn: Connection, user_id: str) -> Caller | None:
    user = (await conn.execute(sa.select(users).where(users.c.id == user_id))).first()
    if user is None:
        return None
    ids = await conn.scalars(
        sa.select(memberships.c.account_id).where(memberships.c.user_id == user_id)
    )
    return Caller(user.id, user.email, user.name, bool(user.site_admin), frozenset(ids))


async def token_holder(engine: Engine, token_id: str) -> Caller | None:
    """Who holds this token now (its memberships as they are), or None once it is gone or
    expired: the long subscriptions' re-check."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(tokens.c.user_id, tokens.c.expires_at).where(tokens.c.id == token_id)
            )
        ).first()
        if row is None or _expired(row.expires_at):
            return None
        return await _caller(conn, row.user_id)


async def role_of(engine: Engine, account_id: str, user_id: str) -> str | None:
    async with engine.connect() as conn:
        return await conn.scalar(
            sa.select(memberships.c.role).where(
                memberships.c.account_id == account_id, memberships.c.user_id == user_id
            )
        )


async def set_role(engine: Engine, account_id: str, user_id: str, role: str) -> bool:
    async with engine.begin() as conn:
        done = await conn.execute(
            memberships.update()
            .where(memberships.c.account_id == account_id, memberships.c.user_id == user_id)
            .values(role=role)
        )
    return bool(done.rowcount)


async def list_accounts(engine: Engine, user_id: str | None) -> list[dict[str, Any]]:
    """Every account (`user_id` None: a site admin), or those the user belongs to, with the
    user's role in each."""
    query = sa.select(accounts.c.id, accounts.c.name, accounts.c.created_at)
    if user_id is not None:
        query = query.add_columns(memberships.c.role).join(
            memberships,
            sa.and_(memberships.c.account_id == accounts.c.id, memberships.c.user_id == user_id),
        )
    async with engine.connect() as conn:
        rows = await conn.execute(query.order_by(accounts.c.created_at))
        return [
            {
                "id": row.id,
                "name": row.name,
                "created_at": iso(row.created_at),
                "role": getattr(row, "role", None),
            }
            for row in rows
        ]


async def list_members(engine: Engine, account_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(users.c.id, users.c.email, users.c.name, memberships.c.role)
            .join(memberships, memberships.c.user_id == users.c.id)
            .where(memberships.c.account_id == account_id)
            .order_by(users.c.email)
        )
        return [
            {"id": row.id, "email": row.email, "name": row.name, "role": row.role} for row in rows
        ]


async def list_users(engine: Engine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(
                users.c.id,
                users.c.email,
                users.c.name,
                users.c.site_admin,
                users.c.created_at,
                users.c.password_hash.is_not(None).label("has_password"),
            ).order_by(users.c.email)
        )
        return [
            {
                "id": row.id,
                "email": row.email,
                "name": row.name,
                "site_admin": bool(row.site_admin),
                "has_password": bool(row.has_password),
                "created_at": iso(row.created_at),
            }
            for row in rows
        ]


async def delete_user(engine: Engine, user_id: str) -> bool:
    """Delete a user with their memberships and tokens (their chats stay their accounts')."""
    async with engine.begin() as conn:
        await conn.execute(tokens.delete().where(tokens.c.user_id == user_id))
        await conn.execute(memberships.delete().where(memberships.c.user_id == user_id))
        done = await conn.execute(users.delete().where(users.c.id == user_id))
    return bool(done.rowcount)
