"""Searching messages by their text, for the `search_chats` tool.

A case-insensitive substring match (`LIKE` on both engines, the query's `%`,
`_` and escape character escaped so they match themselves), restricted to the
chats of the caller's accounts exactly as the API restricts them (`None`: a
site admin, every chat), finished messages only. Newest first. No full-text index: a chat service's
own history is small enough per account, and both engines answer the same.
Imports `db.tables`, `db.rows`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import sqlalchemy as sa

from gapless.db import Engine
from gapless.db.rows import iso
from gapless.db.tables import chats, messages

UNFINISHED = ("pending", "streaming", "requires_action")
SNIPPET = 160  # characters of context shown around the first match


async def search_messages(
    engine: Engine, query: str, account_ids: Iterable[str] | None, limit: int = 10
) -> list[dict[str, Any]]:
    """Messages whose content contains `query` (any case), newest first, with their chat."""
    if not query or limit < 1:
        return []
    statement = (
        sa.select(
            messages.c.id,
            messages.c.chat_id,
            messages.c.role,
            messages.c.content,
            messages.c.created_at,
            chats.c.title,
        )
        .join(chats, chats.c.id == messages.c.chat_id)
        # SQLAlchemy renders ILIKE on PostgreSQL and lower(..) LIKE lower(..) on SQLite.
        .where(messages.c.content.icontains(query, autoescape=True))
        # Finished messages only: a reply still being written (the asking one among them,
        # whose text may hold the query) is not yet something said.
        .where(messages.c.status.notin_(UNFINISHED))
        .order_by(messages.c.created_at.desc(), messages.c.id.desc())
        .limit(limit)
    )
    if account_ids is not None:
        statement = statement.where(chats.c.account_id.in_(list(account_ids)))
    async with engine.connect() as conn:
        rows = (await conn.execute(statement)).all()
    return [
        {
            "chat_id": row.chat_id,
            "chat_title": row.title,
            "message_id": row.id,
            "role": row.role,
            "created_at": iso(row.created_at),
            "snippet": snippet(row.content, query),
        }
        for row in rows
    ]


def searcher(
    engine: Engine, account_ids: Iterable[str] | None
) -> Callable[[str, int], Awaitable[list[dict[str, Any]]]]:
    """`search_messages` bound to a database and a caller's accounts: `ToolContext.search`."""
    accounts = None if account_ids is None else frozenset(account_ids)

    async def search(query: str, limit: int) -> list[dict[str, Any]]:
        return await search_messages(engine, query, accounts, limit)

    return search


def snippet(content: str, query: str, width: int = SNIPPET) -> str:
    """The text around the first match, cut at `width` characters, marked with `…` where cut."""
    at = content.lower().find(query.lower())
    if at < 0:  # the database matched where Python's lower() does not (non-ASCII case)
        at = 0
    start = max(0, at - (width - len(query)) // 2)
    end = min(len(content), start + max(width, len(query)))
    start = max(0, min(start, end - width))
    text = " ".join(content[start:end].split())
    return ("…" if start > 0 else "") + text + ("…" if end < len(content) else "")
