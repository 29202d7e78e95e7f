"""Use cases of chats and messages, with authorisation (a chat one may not see is 404).

Every action that changes a chat commits first and publishes after, so an
event never announces what the database does not hold; the state is served
with the cursor it is consistent with. Imports `db`, `log`, `jobs`, `generation`.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gapless import events
from gapless.db import Engine
from gapless.db import accounts as db_accounts
from gapless.db import agents as db_agents
from gapless.db import chats as db
from gapless.db.accounts import Caller
from gapless.errors import (
    ConflictError,
    InvalidError,
    NotFoundError,
    RateLimitedError,
    TooLargeError,
)
from gapless.generation import Context, end_unstarted
from gapless.jobs.base import Runner
from gapless.limits import Limiter
from gapless.log.base import EventLog, account_stream, chat_stream
from gapless.providers.base import ModelInfo, split_model
from gapless.stream import parse_cursor
from gapless.together import Together


@dataclass(frozen=True)
class Chats:
    """Everything the use cases need, built once by `runtime`."""

    engine: Engine
    log: EventLog
    runner: Runner
    context: Context
    default_model: str
    max_content: int = 32_000
    limiter: Limiter | None = None
    # The exchanges posted in one loop turn, committed in one transaction (`together`).
    exchanges: Together[db.Ask, db.Exchange] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "exchanges", Together(lambda asks: db.create_exchanges(self.engine, asks))
        )

    # ---- reading -------------------------------------------------------------

    async def chat(self, caller: Caller, chat_id: str) -> dict[str, Any]:
        chat = await db.get_chat(self.engine, chat_id)
        if chat is None or not caller.sees(chat["account_id"]):
            raise NotFoundError("chat not found")
        return chat

    async def visible(
        self, caller: Caller, cursor: str | None = None, limit: int = 50
    ) -> dict[str, Any]:
        """`{chats, next}`: a page of the chats the caller sees, newest first; `next` is the
        cursor of the page after it (None at the end)."""
        after = page_after(cursor) if cursor else None
        accounts = None if caller.site_admin else caller.account_ids
        found = await db.list_chats(self.engine, accounts, limit + 1, after)
        page = found[:limit]
        more = len(found) > limit
        return {"chats": page, "next": page_cursor(page[-1]) if more else None}

    async def state(self, caller: Caller, chat_id: str) -> dict[str, Any]:
        """`{chat, messages, cursor}`: replaying after `cursor` onto `messages` is the live state.

        The head is read *before* the database, and the cursor is the oldest of
        it and of every unfinished reply's stored position: whatever the rows
        lag, the replay covers it, and the reducer drops the overlap.
        """
        await self.chat(caller, chat_id)
        stream = chat_stream(chat_id)
        head = await self.log.head(stream)
        state = await db.chat_state(self.engine, chat_id)
        if state is None:
            raise NotFoundError("chat not found")
        return {
            "chat": state.chat,
            "messages": state.messages,
            "cursor": oldest([head, *state.positions]),
        }

    async def message(self, caller: Caller, message_id: str) -> dict[str, Any]:
        chat_id = (await self._visible(caller, message_id))["chat_id"]
        head = await self.log.head(chat_stream(chat_id))  # before the read that is served
        message, position = await db.get_message(self.engine, message_id)
        return {"message": message, "cursor": oldest([head] + ([position] if position else []))}

    async def _visible(self, caller: Caller, message_id: str) -> dict[str, Any]:
        """The message, when the caller may see its chat (404 otherwise)."""
        try:
            message, _ = await db.get_message(self.engine, message_id)
        except KeyError:
            raise NotFoundError("message not found") from None
        await self.chat(caller, message["chat_id"])
        return message

    # ---- chats ---------------------------------------------------------------

    async def create(self, caller: Caller, fields: Mapping[str, Any]) -> dict[str, Any]:
        account_id = fields.get("account_id") or next(iter(sorted(caller.account_ids)), None)
        if account_id is None or not caller.sees(account_id):
            raise InvalidError("no account to create the chat in", code="no_account")
        if (  # a site admin may name any account: one that exists
            caller.site_admin
            and account_id not in caller.account_ids
            and await db_accounts.find_account(self.engine, account_id) != account_id
        ):
            raise InvalidError("no account to create the chat in", code="no_account")
        agent = await self._agent(fields.get("agent_id"), account_id)
        model = self.check_model(
            fields.get("model") or (agent["model"] if agent else self.default_model)
        )
        chat = await db.create_chat(
            self.engine,
            account_id,
            (fields.get("title") or "New chat").strip() or "New chat",
            model,
            fields.get("system_prompt") or "",
            agent["id"] if agent else None,
        )
        await self.log.append(account_stream(account_id), events.make("chat.created", chat))
        return chat

    async def update(
        self, caller: Caller, chat_id: str, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        found = await self.chat(caller, chat_id)
        if "model" in fields:
            self.check_model(fields["model"])
        if fields.get("agent_id") is not None:
            await self._agent(fields["agent_id"], found["account_id"])
        if "title" in fields and not str(fields["title"]).strip():
            raise InvalidError("title must not be empty", code="empty_title")
        chat = await db.update_chat(self.engine, chat_id, **fields)
        if chat is None:
            raise NotFoundError("chat not found")
        event = events.make("chat.updated", chat)
        await self.log.append(chat_stream(chat_id), event)
        await self.log.append(account_stream(chat["account_id"]), event)
        return chat

    async def delete(self, caller: Caller, chat_id: str) -> None:
        chat = await self.chat(caller, chat_id)
        state = await db.chat_state(self.engine, chat_id)
        for message in state.messages if state else []:
            if message["status"] in db.UNFINISHED:
                await self.runner.stop(message["id"])
        await db.delete_chat(self.engine, chat_id)
        event = events.make("chat.deleted", {"id": chat_id})
        await self.log.append(chat_stream(chat_id), event)
        await self.log.append(account_stream(chat["account_id"]), event)

    # ---- messages ------------------------------------------------------------

    async def post(self, caller: Caller, chat_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Commit the user's message and a pending reply together, publish, then start the job."""
        chat = await self.chat(caller, chat_id)
        content = self.check_content(fields.get("content"))
        self.check_rate(caller)
        agent = await self._agent(chat["agent_id"], chat["account_id"], missing_ok=True)
        model = self.check_model(
            fields.get("model") or (agent["model"] if agent else None) or chat["model"]
        )
        parent = fields.get("parent_id", db.MISSING)
        agent_id = agent["id"] if agent else None
        ask = db.Ask(chat_id, parent, content, model, caller.user_id, agent_id)
        try:
            user, reply, touched = await self.exchanges(ask)
        except db.ParentError as exc:
            raise InvalidError(str(exc), code="bad_parent") from None
        stream = chat_stream(chat_id)
        await self.log.append(stream, events.message("message.created", user))
        await self.log.append(stream, events.message("message.created", reply))
        await self.runner.submit(reply["id"])
        await self._touched(touched)
        return {"user_message": user, "assistant_message": reply}

    async def retry(self, caller: Caller, message_id: str) -> dict[str, Any]:
        original = await self._visible(caller, message_id)
        chat_id = original["chat_id"]
        if original["role"] != "assistant":
            raise ConflictError("only an assistant reply can be retried", code="not_a_reply")
        chat = await self.chat(caller, chat_id)
        self.check_rate(caller)
        agent = await self._agent(chat["agent_id"], chat["account_id"], missing_ok=True)
        model = (agent["model"] if agent else None) or original["model"] or chat["model"]
        reply, touched = await db.create_reply(
            self.engine,
            chat_id,
            original["parent_id"],
            model,
            caller.user_id,
            agent["id"] if agent else None,
        )
        await self.log.append(chat_stream(chat_id), events.message("message.created", reply))
        await self.runner.submit(reply["id"])
        await self._touched(touched)
        return reply

    async def stop(self, caller: Caller, message_id: str) -> dict[str, Any]:
        """End a pending or streaming reply as `cancelled`; idempotent."""
        message = await self._visible(caller, message_id)
        if message["role"] != "assistant":
            raise ConflictError("only an assistant reply can be stopped", code="not_a_reply")
        if message["status"] in db.UNFINISHED and not await self.runner.stop(message_id):
            await end_unstarted(self.context, message_id, "cancelled", None)
        ended, _ = await db.get_message(self.engine, message_id)
        return ended

    async def decide(
        self,
        caller: Caller,
        message_id: str,
        call_id: str,
        decision: str,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Approve or deny a tool call that awaits approval (409 when it awaits none); the
        last decision a paused reply waited for submits the run that goes on."""
        await self._visible(caller, message_id)
        if decision not in ("approve", "deny"):
            raise InvalidError("decision must be 'approve' or 'deny'", code="bad_decision")
        try:
            ready = await db_agents.decide(
                self.engine, message_id, call_id, decision, reason, caller.user_id
            )
        except db_agents.DecisionError as exc:
            raise ConflictError(str(exc), code="not_awaiting_approval") from None
        if ready:
            await self.runner.submit(message_id, key=f"{message_id}.{call_id}")
        return (await db.get_message(self.engine, message_id))[0]

    async def _agent(
        self, agent_id: str | None, account_id: str, missing_ok: bool = False
    ) -> dict[str, Any] | None:
        """The agent a chat in `account_id` may use; None for none (or, with `missing_ok`,
        for one deleted since). Another account's agent is as unknown as a missing one."""
        if not agent_id:
            return None
        agent = await db_agents.get_agent(self.engine, agent_id)
        if agent is None or agent["account_id"] != account_id:
            if missing_ok:
                return None
            raise InvalidError("agent_id is not an agent of this chat's account", code="bad_agent")
        return agent

    async def delete_message(self, caller: Caller, message_id: str) -> None:
        chat_id = (await self._visible(caller, message_id))["chat_id"]
        doomed = await db.subtree(self.engine, message_id)
        for doomed_id in doomed:
            await self.runner.stop(doomed_id)  # no delta of theirs may follow the deletion
        await db.delete_messages(self.engine, doomed)
        await self.log.append(
            chat_stream(chat_id), events.make("message.deleted", {"id": message_id})
        )

    async def _touched(self, chat: dict[str, Any]) -> None:
        """Live chat lists move this chat to the top (it was written with its new message)."""
        await self.log.append(account_stream(chat["account_id"]), events.make("chat.updated", chat))

    # ---- checks --------------------------------------------------------------

    def check_rate(self, caller: Caller) -> None:
        if self.limiter is not None and not self.limiter.allow(caller.user_id, time.monotonic()):
            raise RateLimitedError("too many messages; wait a moment and send again")

    def check_content(self, content: Any) -> str:
        if not isinstance(content, str) or not content.strip():
            raise InvalidError("content must be a non-empty string", code="empty_content")
        if len(content) > self.max_content:
            raise TooLargeError(f"content is over {self.max_content} characters")
        return content

    def check_model(self, model: Any) -> str:
        if not isinstance(model, str):
            raise InvalidError("model must be a string", code="bad_model")
        # its own provider's models only (every POST asks: listing them all cost more)
        provider, _ = split_model(model)
        known = self.context.providers.get(provider)
        if known is None or not (
            _accepts(known, model) or any(m.id == model for m in known.models())
        ):
            raise InvalidError(f"unknown or disabled model {model!r}", code="unknown_model")
        return model

    def models(self) -> list[ModelInfo]:
        return [m for p in self.context.providers.values() for m in p.models()]


def _accepts(provider: Any, model: str) -> bool:
    """Providers with open-ended model names (e.g. `bench:r50-n200`) say so with `accepts`."""
    accepts = getattr(provider, "accepts", None)
    return bool(accepts and accepts(model.partition(":")[2]))


def page_cursor(chat: Mapping[str, Any]) -> str:
    """An opaque cursor after `chat` in the list's order (its `updated_at`, then its id)."""
    return base64.urlsafe_b64encode(f"{chat['updated_at']}|{chat['id']}".encode()).decode()


def page_after(cursor: str) -> tuple[datetime, str]:
    try:
        stamp, _, chat_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (ValueError, UnicodeError):
        raise InvalidError("not a cursor of this list", code="bad_cursor") from None
    if not chat_id:
        raise InvalidError("not a cursor of this list", code="bad_cursor")
    return when, chat_id


def oldest(cursors: list[str]) -> str:
    """The earliest of cursors of one stream (all share the head's epoch once unfinished
    replies from a lost log have been ended)."""
    head = parse_cursor(cursors[0])
    same = [c for c in cursors if parse_cursor(c).epoch == head.epoch]
    return min(same, key=lambda c: parse_cursor(c).position)
