"""Chats and their message trees: one function per query or use.

The writes of a reply's run (its start, flushes, pause and end) are
`db.replies`'. Imports `db.tables`, `db.rows`, `db.prepared`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any, NamedTuple

import sqlalchemy as sa

from gapless.db import Connection, Engine
from gapless.db.prepared import prepared
from gapless.db.rows import chat_json, message_json, new_id, now
from gapless.db.tables import chats, messages

# A reply that requires action (a tool call awaits approval) is unfinished too: replies
# below it wait, and stop ends it.
UNFINISHED = ("pending", "streaming", "requires_action")
MISSING = object()  # "no parent_id key": append to the default path's leaf


@dataclass(frozen=True)
class State:
    chat: dict[str, Any]
    messages: list[dict[str, Any]]
    positions: list[str]  # stored log positions of unfinished replies


async def create_chat(
    engine: Engine,
    account_id: str,
    title: str,
    model: str,
    system_prompt: str,
    agent_id: str | None = None,
) -> dict[str, Any]:
    values = dict(
        id=new_id("chat"),
        account_id=account_id,
        title=title,
        model=model,
        system_prompt=system_prompt,
        agent_id=agent_id,
        created_at=now(),
        updated_at=now(),
    )
    async with engine.begin() as conn:
        await conn.execute(chats.insert().values(**values))
    return chat_json(SimpleNamespace(**values))


_LISTED = [c for c in chats.c if c.name != "system_prompt"]  # a list shows no prompts


async def list_chats(
    engine: Engine,
    account_ids: Iterable[str] | None,
    limit: int = 50,
    after: tuple[datetime, str] | None = None,
) -> list[dict[str, Any]]:
    """Newest first, `limit` of them, after (`updated_at`, `id`) of the previous page's last
    chat; items leave out the system prompt (the chat's own page has it)."""
    order = (chats.c.updated_at.desc(), chats.c.id.desc())
    query = (
        sa.select(*_LISTED)
        .where(chats.c.experiment_id.is_(None))  # an experiment's chats are its own
        .order_by(*order)
        .limit(limit)
    )
    if account_ids is not None:
        query = query.where(chats.c.account_id.in_(list(account_ids)))
    if after is not None:
        stamp, chat_id = after
        query = query.where(
            sa.or_(
                chats.c.updated_at < stamp,
                sa.and_(chats.c.updated_at == stamp, chats.c.id < chat_id),
            )
        )
    async with engine.connect() as conn:
        found = [
            chat_json(SimpleNamespace(**row._mapping, system_prompt=None))
            for row in await conn.execute(query)
        ]
    for chat in found:
        del chat["system_prompt"]
    return found


# The statements of every request and every reply are built once, with bound parameters
# (building one costs SQLAlchemy more than SQLite takes to run it), and `prepared`: on
# SQLite they run on the driver (`db.prepared` says why).
_CHAT = prepared(sa.select(chats).where(chats.c.id == sa.bindparam("b_chat")))
MESSAGE = prepared(sa.select(messages).where(messages.c.id == sa.bindparam("b_message")))
_MESSAGES = prepared(
    sa.select(messages)
    .where(messages.c.chat_id == sa.bindparam("b_chat"))
    .order_by(messages.c.created_at, messages.c.id)
)
_TREE = prepared(
    sa.select(messages.c.id, messages.c.parent_id, messages.c.role).where(
        messages.c.chat_id == sa.bindparam("b_chat")
    )
)
_INSERT = prepared(messages.insert())
_UP = sa.select(messages).where(messages.c.id == sa.bindparam("b_message")).cte(recursive=True)
_UP = _UP.union_all(sa.select(messages).join(_UP, messages.c.id == _UP.c.parent_id))
_PATH = prepared(sa.select(_UP))  # a message and its ancestors: the path, however big
_TOUCHED = prepared(
    chats.update()
    .where(chats.c.id == sa.bindparam("b_chat"))
    .values(updated_at=sa.bindparam("b_stamp"))
    .returning(*chats.c)
)


async def get_chat(engine: Engine, chat_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(_CHAT, {"b_chat": chat_id})).first()
    return chat_json(row) if row else None


async def update_chat(engine: Engine, chat_id: str, **fields: Any) -> dict[str, Any] | None:
    async with engine.begin() as conn:
        await conn.execute(
            chats.update().where(chats.c.id == chat_id).values(**fields, updated_at=now())
        )
        row = (await conn.execute(sa.select(chats).where(chats.c.id == chat_id))).first()
    return chat_json(row) if row else None


async def delete_chat(engine: Engine, chat_id: str) -> None:
    async with engine.begin() as conn:
        # Children first: SQLite's cascade on a self-reference needs no help, but be explicit.
        await conn.execute(messages.delete().where(messages.c.chat_id == chat_id))
        await conn.execute(chats.delete().where(chats.c.id == chat_id))


async def chat_state(engine: Engine, chat_id: str) -> State | None:
    """The chat and all its messages, read in one statement (one consistent snapshot)."""
    async with engine.connect() as conn:
        chat = (await conn.execute(_CHAT, {"b_chat": chat_id})).first()
        if chat is None:
            return None
        rows = (await conn.execute(_MESSAGES, {"b_chat": chat_id})).all()
    positions = [r.position for r in rows if r.status in UNFINISHED and r.position]
    return State(chat_json(chat), [message_json(r) for r in rows], positions)


async def get_message(engine: Engine, message_id: str) -> tuple[dict[str, Any], str | None]:
    """A message and its stored position (when unfinished); KeyError when missing."""
    async with engine.connect() as conn:
        row = (await conn.execute(MESSAGE, {"b_message": message_id})).first()
    if row is None:
        raise KeyError(message_id)
    return message_json(row), (row.position if row.status in UNFINISHED else None)


def default_leaf(rows: list[Any]) -> str | None:
    """Follow the newest child at each step from the newest root (ids sort by time)."""
    children: dict[str | None, list[str]] = {}
    for row in rows:
        children.setdefault(row.parent_id, []).append(row.id)
    leaf: str | None = None
    while children.get(leaf):
        leaf = max(children[leaf])
    return leaf


async def _tree(conn: Connection, chat_id: str) -> list[Any]:
    return list(await conn.execute(_TREE, {"b_chat": chat_id}))


def message_values(chat_id: str, parent_id: str | None, role: str, **extra: Any) -> dict[str, Any]:
    """A message's row, pending and empty unless `extra` says otherwise, with every column's
    key (an insert of many rows takes the first one's keys for all)."""
    stamp = now()
    values: dict[str, Any] = {column.name: None for column in messages.c}
    values.update(
        id=new_id("msg"),
        chat_id=chat_id,
        parent_id=parent_id,
        role=role,
        content="",
        thinking="",
        status="pending",
        seq=0,
        created_at=stamp,
        updated_at=stamp,
    )
    values.update(extra)
    return values


class ParentError(ValueError):
    """The parent is not a message of this chat that may take this child."""


class Exchange(NamedTuple):
    user: dict[str, Any]
    reply: dict[str, Any]
    chat: dict[str, Any]  # with its new `updated_at`, for the account stream's `chat.updated`


class Ask(NamedTuple):
    """What an exchange is made of: the user's message and who and what replies to it."""

    chat_id: str
    parent: object  # a message id, None (a new root) or MISSING (the chat's current leaf)
    content: str
    model: str
    user_id: str | None = None
    agent_id: str | None = None


async def create_exchange(
    engine: Engine,
    chat_id: str,
    parent: object,
    content: str,
    model: str,
    user_id: str | None = None,
    agent_id: str | None = None,
) -> Exchange:
    """The user's message and a pending reply to it, committed together."""
    (made,) = await create_exchanges(
        engine, [Ask(chat_id, parent, content, model, user_id, agent_id)]
    )
    if isinstance(made, Exception):
        raise made
    return made


async def create_exchanges(engine: Engine, asks: list[Ask]) -> list[Exchange | Exception]:
    """Each ask's exchange, all in one transaction (group commit: `together`); an ask whose
    parent may not take it is answered its `ParentError` and writes nothing. Asks in one
    chat follow each other: the second's default parent is the first's reply. Chats are
    written in the order of their ids, so two groups at once (PostgreSQL) lock their rows in
    the same order and never wait for each other in a circle."""
    made: list[Exchange | Exception] = [ParentError("not written")] * len(asks)
    order = sorted(range(len(asks)), key=lambda i: asks[i].chat_id)  # stable: a chat's in turn
    async with engine.begin() as conn:
        for i in order:
            try:
                made[i] = await _exchange(conn, asks[i])
            except ParentError as exc:
                made[i] = exc
    return made


async def _exchange(conn: Connection, ask: Ask) -> Exchange:
    chat_id, parent = ask.chat_id, ask.parent
    tree = await _tree(conn, chat_id)
    parent_id = default_leaf(tree) if parent is MISSING else parent
    if parent_id is not None:
        roles = {row.id: row.role for row in tree}
        if parent_id not in roles:
            raise ParentError("parent_id is not a message of this chat")
        if roles[parent_id] != "assistant":
            raise ParentError("a user message must follow an assistant reply")
    user = message_values(
        chat_id,
        str(parent_id) if parent_id else None,
        "user",
        content=ask.content,
        status="complete",
        user_id=ask.user_id,
    )
    reply = message_values(
        chat_id,
        user["id"],
        "assistant",
        model=ask.model,
        user_id=ask.user_id,
        agent_id=ask.agent_id,
    )
    reply["created_at"] = user["created_at"]
    await conn.execute(_INSERT, [user, reply])
    chat = await _touched(conn, chat_id)
    return Exchange(_message_dict(user), _message_dict(reply), chat)


async def create_reply(
    engine: Engine,
    chat_id: str,
    parent_id: str,
    model: str,
    user_id: str | None = None,
    agent_id: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new pending reply to `parent_id`, and the chat with its new `updated_at`."""
    reply = message_values(
        chat_id, parent_id, "assistant", model=model, user_id=user_id, agent_id=agent_id
    )
    async with engine.begin() as conn:
        await conn.execute(_INSERT, reply)
        chat = await _touched(conn, chat_id)
    return _message_dict(reply), chat


async def _touched(conn: Connection, chat_id: str) -> dict[str, Any]:
    return chat_json((await conn.execute(_TOUCHED, {"b_chat": chat_id, "b_stamp": now()})).one())


def _message_dict(values: dict[str, Any]) -> dict[str, Any]:
    full = dict(
        error_code=None,
        error_message=None,
        input_tokens=None,
        output_tokens=None,
        reasoning_tokens=None,
        parts=None,
        agent_id=None,
        prompt=None,
    )
    full.update(values)
    return message_json(SimpleNamespace(**full))


async def subtree(engine: Engine, message_id: str) -> list[str]:
    """The message and all its descendants, parents first."""
    async with engine.connect() as conn:
        chat_id = await conn.scalar(
            sa.select(messages.c.chat_id).where(messages.c.id == message_id)
        )
        if chat_id is None:
            return []
        tree = await _tree(conn, chat_id)
    found = [message_id]
    for current in found:
        found.extend(row.id for row in tree if row.parent_id == current)
    return found


async def delete_messages(engine: Engine, ids: list[str]) -> None:
    async with engine.begin() as conn:
        for message_id in reversed(ids):  # children before parents
            await conn.execute(messages.delete().where(messages.c.id == message_id))


async def path(engine: Engine, message_id: str) -> list[dict[str, Any]]:
    """The messages from the root down to `message_id`, inclusive."""
    async with engine.connect() as conn:
        return await _path(conn, message_id)


async def reply_context(
    engine: Engine, reply_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """A reply's chat and its path from the root (the reply last), read together; the reply
    also names the user who asked for it (`user_id`, which its Message leaves out)."""
    async with engine.connect() as conn:
        chain = await _path(conn, reply_id, asker=True)
        if not chain:
            return None
        chat = (await conn.execute(_CHAT, {"b_chat": chain[-1]["chat_id"]})).first()
    return (chat_json(chat), chain) if chat else None


async def _path(conn: Connection, message_id: str, asker: bool = False) -> list[dict[str, Any]]:
    rows = {r.id: r for r in await conn.execute(_PATH, {"b_message": message_id})}
    chain: list[dict[str, Any]] = []
    current: str | None = message_id
    while current is not None and current in rows:
        chain.append(message_json(rows[current]))
        current = rows[current].parent_id
    if asker and chain:
        chain[0]["user_id"] = rows[message_id].user_id
    return chain[::-1]
