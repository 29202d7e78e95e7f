"""Use cases of feedback and scores, with authorisation exactly like chats and traces.

Thumbs up/down on a reply is a boolean score named `thumbs` from the source
`feedback`, one per user and reply (changing one's mind writes over it), on
the reply's trace (`trace_id_of`), so it is found beside the trace's other
scores. Other scores (numeric, boolean, categorical) name their target: a
trace, one of its observations, a chat or a reply; the target decides the
account, and one the caller may not see is 404. Imports `db`, `errors`,
`observe.recorder` (the trace id of a reply).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from gapless.db import Engine
from gapless.db import chats as db_chats
from gapless.db import scores as db
from gapless.db import traces as db_traces
from gapless.db.accounts import Caller
from gapless.errors import InvalidError, NotFoundError
from gapless.observe.recorder import trace_id_of

THUMBS = "thumbs"
SOURCES = ("annotation", "evaluator", "api")  # `feedback` is the thumbs route's alone
CSV_COLUMNS = [
    "id",
    "account_id",
    "name",
    "data_type",
    "value",
    "comment",
    "source",
    "target",
    "trace_id",
    "observation_id",
    "chat_id",
    "message_id",
    "author",
    "created_at",
    "updated_at",
]
EXPORT_PAGE = 500


def thumbs_json(score: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "message_id": score["message_id"],
        "value": "up" if score["value"] else "down",
        "comment": score["comment"],
        "score_id": score["id"],
        "updated_at": score["updated_at"],
    }


def typed_value(data_type: str, value: Any) -> dict[str, Any]:
    """The stored columns of a value of this type (`InvalidError` when it is not one)."""
    if data_type == "numeric":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidError("a numeric score's value is a number", code="bad_value")
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidError("a numeric score's value is a finite number", code="bad_value")
        return {"value": float(value), "label": None}
    if data_type == "boolean":
        if not isinstance(value, bool | int | float) or value not in (0, 1):
            raise InvalidError("a boolean score's value is true or false", code="bad_value")
        return {"value": 1.0 if value else 0.0, "label": None}
    if data_type == "categorical":
        if not isinstance(value, str) or not value.strip() or len(value) > 200:
            raise InvalidError("a categorical score's value is a label", code="bad_value")
        return {"value": None, "label": value}
    raise InvalidError("data_type is numeric, boolean or categorical", code="bad_type")


async def chat_of(engine: Engine, trace: Mapping[str, Any] | None) -> str | None:
    """The chat of a trace, while it exists (a trace outlives its chat: a score is then on
    the trace alone)."""
    if trace is None or not trace.get("chat_id"):
        return None
    return trace["chat_id"] if await db_chats.get_chat(engine, trace["chat_id"]) else None


@dataclass(frozen=True)
class Scores:
    engine: Engine

    # ---- thumbs ------------------------------------------------------------------------

    async def _reply(self, caller: Caller, message_id: str) -> tuple[dict[str, Any], str]:
        """The message and its account, when the caller may see its chat (404 otherwise)."""
        try:
            message, _ = await db_chats.get_message(self.engine, message_id)
        except KeyError:
            raise NotFoundError("message not found") from None
        chat = await db_chats.get_chat(self.engine, message["chat_id"])
        if chat is None or not caller.sees(chat["account_id"]):
            raise NotFoundError("message not found")
        return message, chat["account_id"]

    async def feedback(
        self, caller: Caller, message_id: str, value: str, comment: str | None
    ) -> dict[str, Any]:
        message, account_id = await self._reply(caller, message_id)
        if message["role"] != "assistant":
            raise InvalidError("feedback is given on a reply", code="not_a_reply")
        score = await db.keep_score(
            self.engine,
            f"feedback:{message_id}:{caller.user_id}",
            {
                "account_id": account_id,
                "name": THUMBS,
                "data_type": "boolean",
                "value": 1.0 if value == "up" else 0.0,
                "comment": (comment or "").strip() or None,
                "source": "feedback",
                "trace_id": trace_id_of(message_id),
                "chat_id": message["chat_id"],
                "message_id": message_id,
                "author": caller.user_id,
            },
        )
        return thumbs_json(score)

    async def remove_feedback(self, caller: Caller, message_id: str) -> None:
        await self._reply(caller, message_id)
        await db.drop_key(self.engine, f"feedback:{message_id}:{caller.user_id}")

    async def chat_feedback(self, caller: Caller, chat_id: str) -> dict[str, Any]:
        """The caller's thumbs on the chat's replies, by reply id."""
        chat = await db_chats.get_chat(self.engine, chat_id)
        if chat is None or not caller.sees(chat["account_id"]):
            raise NotFoundError("chat not found")
        found = await db.keyed_in_chat(self.engine, chat_id, "feedback:")
        mine = [s for s in found if s["author"] == caller.user_id]
        return {"feedback": {s["message_id"]: thumbs_json(s) for s in mine}}

    # ---- scores ------------------------------------------------------------------------

    async def _target(self, caller: Caller, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The ids a score is stored with, and its account, from the target it names."""
        kinds = ("observation_id", "trace_id", "message_id", "chat_id")
        given = [k for k in kinds if fields.get(k)]
        if not given:
            raise InvalidError(
                "a score needs a trace_id, observation_id, chat_id or message_id", code="no_target"
            )
        if fields.get("observation_id"):
            found = await db.observation_trace(self.engine, fields["observation_id"])
            if found is None or not caller.sees(found[1]):
                raise NotFoundError("observation not found")
            if fields.get("trace_id") not in (None, found[0]):
                raise InvalidError("that observation is not of that trace", code="bad_target")
            trace = await db_traces.get_trace(self.engine, found[0])
            return {
                "account_id": found[1],
                "trace_id": found[0],
                "observation_id": fields["observation_id"],
                "chat_id": await chat_of(self.engine, trace),
            }
        if len(given) > 1:
            raise InvalidError("a score has one target", code="bad_target")
        if fields.get("trace_id"):
            trace = await db_traces.get_trace(self.engine, fields["trace_id"])
            if trace is None or not caller.sees(trace["account_id"]):
                raise NotFoundError("trace not found")
            return {
                "account_id": trace["account_id"],
                "trace_id": trace["id"],
                "chat_id": await chat_of(self.engine, trace),
            }
        if fields.get("message_id"):
            message, account_id = await self._reply(caller, fields["message_id"])
            return {
                "account_id": account_id,
                "message_id": message["id"],
                "trace_id": trace_id_of(message["id"]),
                "chat_id": message["chat_id"],
            }
        chat = await db_chats.get_chat(self.engine, fields["chat_id"])
        if chat is None or not caller.sees(chat["account_id"]):
            raise NotFoundError("chat not found")
        return {"account_id": chat["account_id"], "chat_id": chat["id"]}

    async def add(self, caller: Caller, fields: Mapping[str, Any]) -> dict[str, Any]:
        source = fields.get("source") or "api"
        if source not in SOURCES:
            raise InvalidError(f"source is one of {', '.join(SOURCES)}", code="bad_source")
        values = {
            **await self._target(caller, fields),
            **typed_value(str(fields.get("data_type")), fields.get("value")),
            "name": fields["name"],
            "data_type": fields["data_type"],
            "comment": fields.get("comment"),
            "source": source,
            "author": caller.user_id,
        }
        return await db.add_score(self.engine, values)

    async def get(self, caller: Caller, score_id: str) -> dict[str, Any]:
        found = await db.get_score(self.engine, score_id)
        if found is None or not caller.sees(found["account_id"]):
            raise NotFoundError("score not found")
        return found

    async def delete(self, caller: Caller, score_id: str) -> None:
        await self.get(caller, score_id)
        await db.delete_score(self.engine, score_id)

    async def page(
        self, caller: Caller, filters: Mapping[str, Any], cursor: str | None, limit: int
    ) -> dict[str, Any]:
        scope = None if caller.site_admin else sorted(caller.account_ids)
        items = await db.list_scores(self.engine, scope, filters, cursor, limit)
        return {"scores": items, "next": items[-1]["id"] if len(items) == limit else None}

    async def export(
        self, caller: Caller, filters: Mapping[str, Any], format: str, limit: int
    ) -> AsyncIterator[str]:
        """The scores the filters select, newest first: JSONL, or CSV with a header."""
        scope = None if caller.site_admin else sorted(caller.account_ids)
        first = await db.list_scores(self.engine, scope, filters, None, min(EXPORT_PAGE, limit))
        return self._lines(scope, filters, format, limit, first)

    async def _lines(
        self,
        scope: list[str] | None,
        filters: Mapping[str, Any],
        format: str,
        limit: int,
        page: list[dict[str, Any]],
    ) -> AsyncIterator[str]:
        if format == "csv":
            yield _csv_line(CSV_COLUMNS)
        sent = 0
        while page:
            for score in page:
                yield (
                    _csv_line([score[c] for c in CSV_COLUMNS])
                    if format == "csv"
                    else (json.dumps(score) + "\n")
                )
            sent += len(page)
            if sent >= limit or len(page) < EXPORT_PAGE:
                return
            page = await db.list_scores(
                self.engine, scope, filters, page[-1]["id"], min(EXPORT_PAGE, limit - sent)
            )


def _csv_line(values: list[Any]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(["" if v is None else v for v in values])
    return out.getvalue()
