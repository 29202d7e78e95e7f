"""Accounts, users, memberships, API tokens and browser sessions.

Secrets are stored hashed: API and session tokens with SHA-256 (they are long
and random, so a slow hash buys nothing), passwords with scrypt. Imports
`db.tables`, `db.rows`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from gapless.db import Connection, Engine
from gapless.db.rows import aware, new_id, now
from gapless.db.tables import accounts, memberships, tokens, users


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


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, salt, digest = stored.split("$")
    check = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1)
    return hmac.compare_digest(check.hex(), digest)


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
                password_hash=hash_password(password) if password else None,
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


async def add_member(
    engine: Engine, account_id: str, user_id: str, role: str = "member"
) -> None:
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
    engine: Engine, user_id: str, kind: str = "api", ttl: timedelta | None = None
) -> tuple[str, str]:
    """A new secret (shown once) and, for sessions, its CSRF token."""
    secret = ("gl_" if kind == "api" else "gs_") + secrets.token_urlsafe(32)
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
            )
        )
    return secret, csrf or ""


async def revoke_token(engine: Engine, secret: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(tokens.delete().where(tokens.c.hash == _digest(secret)))


# Built once, with bound parameters: every request runs it, and building it cost more
# than running it.
_TOKEN_HOLDER = (
    sa.select(
        users.c.id,
        users.c.email,
        users.c.name,
        users.c.site_admin,
        tokens.c.csrf,
        tokens.c.expires_at,
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
    expires = aware(first.expires_at)
    if expires is not None and expires < now():
        return None
    return Caller(
        first.id,
        first.email,
        first.name,
        bool(first.site_admin),
        frozenset(row.account_id for row in rows if row.account_id is not None),
        session=kind == "session",
        csrf=first.csrf or "",
    )


async def caller_for_password(engine: Engine, email: str, password: str) -> Caller | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(users.c.id, users.c.password_hash).where(users.c.email == email.lower())
            )
        ).first()
        if row is None or not verify_password(password, row.password_hash):
            return None
        return await _caller(conn, row.id)


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
