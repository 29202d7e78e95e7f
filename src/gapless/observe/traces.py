"""Use cases of traces and metrics, with authorisation exactly like chats.

A member sees the traces of their accounts, a site admin all of them; any
other trace is 404, and every list, aggregate and export is scoped to the
caller's accounts in its query (never filtered afterwards). Imports `db`,
`errors`, `observe.metrics`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from gapless.db import Engine
from gapless.db import chats as db_chats
from gapless.db import traces as db
from gapless.db import usage as db_usage
from gapless.db.accounts import Caller
from gapless.db.tables import agents, users
from gapless.errors import InvalidError, NotFoundError
from gapless.observe import metrics as figures

CSV_COLUMNS = [
    "id",
    "reply_id",
    "chat_id",
    "account_id",
    "user_id",
    "agent_id",
    "agent_name",
    "model",
    "status",
    "started_at",
    "ended_at",
    "duration_ms",
    "ttft_ms",
    "steps",
    "generations",
    "tools",
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cached_tokens",
    "cost",
    "input",
    "output",
    "prompt_name",
    "prompt_version",
]
EXPORT_PAGE = 500


def scope(caller: Caller) -> list[str] | None:
    return None if caller.site_admin else sorted(caller.account_ids)


@dataclass(frozen=True)
class Traces:
    engine: Engine

    async def _check_chat(self, caller: Caller, chat_id: str | None) -> None:
        if chat_id:
            chat = await db_chats.get_chat(self.engine, chat_id)
            if chat is None or not caller.sees(chat["account_id"]):
                raise NotFoundError("chat not found")

    async def page(
        self, caller: Caller, filters: dict[str, Any], cursor: str | None, limit: int
    ) -> dict[str, Any]:
        await self._check_chat(caller, filters.get("chat_id"))
        after = None
        if cursor:
            after = db.decode_cursor(cursor)
            if after is None:
                raise InvalidError("malformed cursor", code="bad_cursor")
        items = await db.list_traces(
            self.engine, scope(caller), filters=filters, after=after, limit=limit
        )
        more = len(items) == limit
        return {"traces": items, "next": db.encode_cursor(items[-1]) if more else None}

    async def trace(self, caller: Caller, trace_id: str) -> dict[str, Any]:
        found = await db.get_trace(self.engine, trace_id)
        if found is None or not caller.sees(found["account_id"]):
            raise NotFoundError("trace not found")
        return found

    async def chat_usage(self, caller: Caller, chat_id: str) -> dict[str, Any]:
        await self._check_chat(caller, chat_id)
        totals = await db_usage.chat_totals(self.engine, chat_id)
        return totals or {
            "chat_id": chat_id,
            "traces": 0,
            "generations": 0,
            "tools": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "cost": 0.0,
            "duration_ms": 0.0,
        }

    async def metrics(self, caller: Caller, query: figures.Query) -> dict[str, Any]:
        await self._check_chat(caller, query.filters.get("chat_id"))
        found = await figures.metrics(self.engine, scope(caller), query)
        names = await self._labels(query.group_by, [g["key"] for g in found["groups"]])
        for item in (*found["groups"], *found["series"]):
            item["label"] = names.get(item["key"]) or item["key"] or "(none)"
        return found

    async def _labels(self, dim: str, keys: list[str]) -> dict[str, str]:
        tables = {"agent": agents, "user": users}
        if dim not in tables or not keys:
            return {}
        table = tables[dim]
        async with self.engine.connect() as conn:
            found = await conn.execute(
                sa.select(table.c.id, table.c.name).where(table.c.id.in_(keys))
            )
            return {str(row.id): str(row.name) for row in found}

    async def export(
        self, caller: Caller, filters: dict[str, Any], form: str, limit: int
    ) -> AsyncIterator[str]:
        """Traces newest first: JSONL (each with its observations) or CSV (one row each)."""
        await self._check_chat(caller, filters.get("chat_id"))
        return self._export(caller, filters, form, limit)

    async def _export(
        self, caller: Caller, filters: dict[str, Any], form: str, limit: int
    ) -> AsyncIterator[str]:
        if form == "csv":
            yield _csv_line(CSV_COLUMNS)
        after, sent = None, 0
        while sent < limit:
            items = await db.list_traces(
                self.engine,
                scope(caller),
                filters=filters,
                after=after,
                limit=min(EXPORT_PAGE, limit - sent),
            )
            if not items:
                return
            if form == "csv":
                for item in items:
                    yield _csv_line([item.get(c) for c in CSV_COLUMNS])
            else:
                children = await db.observations_of(self.engine, [i["id"] for i in items])
                for item in items:
                    yield (
                        json.dumps(
                            {**item, "observations": children[item["id"]]}, ensure_ascii=False
                        )
                        + "\n"
                    )
            sent += len(items)
            last = items[-1]
            after = db.decode_cursor(db.encode_cursor(last))


def _csv_line(values: list[Any]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(["" if v is None else v for v in values])
    return out.getvalue()
