"""Use cases of review queues, with authorisation like chats (another account's is 404).

A queue has rules (thumbs down, an error, cost or latency above a value, a
score below a value) that add the account's traces from the queue's start
(or a backfill) on; the rules run whenever the queue is read, so a thumbs
down given in a chat is in the queue the next time a reviewer looks. A
reviewer asks for the next item (held for them a few minutes), then skips it
or marks it done with scores, stored as `annotation` scores on its trace.
Imports `db`, `errors`, `evals.feedback`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from gapless.db import Engine
from gapless.db import review as db
from gapless.db import scores as db_scores
from gapless.db import traces as db_traces
from gapless.db.accounts import Caller
from gapless.db.rows import now
from gapless.errors import ConflictError, InvalidError, NotFoundError
from gapless.evals.feedback import chat_of, typed_value

TRACE_FIELDS = (
    "id",
    "chat_id",
    "reply_id",
    "status",
    "model",
    "agent_name",
    "input",
    "output",
    "cost",
    "duration_ms",
    "ttft_ms",
    "steps",
    "error_code",
    "error_message",
    "started_at",
)


def check_scores(configs: Sequence[Mapping[str, Any]], given: Sequence[Mapping[str, Any]]) -> None:
    """A reviewer's scores against what the queue asks: a categorical one among its
    categories; a name the queue does not ask for is allowed (an extra note)."""
    known = {c["name"]: c for c in configs}
    for score in given:
        config = known.get(score["name"])
        if config is None:
            continue
        if config["data_type"] != score["data_type"]:
            raise InvalidError(f"{score['name']} is {config['data_type']}", code="bad_type")
        categories = config.get("categories")
        if categories and score["value"] not in categories:
            raise InvalidError(
                f"{score['name']} is one of {', '.join(categories)}", code="bad_value"
            )


@dataclass(frozen=True)
class Review:
    engine: Engine

    async def queue(self, caller: Caller, queue_id: str) -> dict[str, Any]:
        found = await db.get_queue(self.engine, queue_id)
        if found is None or not caller.sees(found["account_id"]):
            raise NotFoundError("queue not found")
        return found

    async def visible(self, caller: Caller) -> list[dict[str, Any]]:
        queues = await db.list_queues(
            self.engine, None if caller.site_admin else caller.account_ids
        )
        for queue in queues:
            await db.add_matching(self.engine, queue)
        figures = await db.counts(self.engine, [q["id"] for q in queues])
        return [{**q, "counts": figures[q["id"]]} for q in queues]

    async def create(self, caller: Caller, fields: Mapping[str, Any]) -> dict[str, Any]:
        account_id = fields.get("account_id") or next(iter(sorted(caller.account_ids)), None)
        if account_id is None or not caller.sees(account_id):
            raise InvalidError("no account to create the queue in", code="no_account")
        queue = await db.create_queue(
            self.engine,
            {
                "account_id": account_id,
                "name": fields["name"],
                "description": fields.get("description") or "",
                "rules": list(fields.get("rules") or []),
                "scores": list(fields.get("scores") or []),
                "since": now() - timedelta(days=int(fields.get("backfill_days") or 0)),
                "created_by": caller.user_id,
            },
        )
        return await self.detail(caller, queue["id"])

    async def detail(self, caller: Caller, queue_id: str) -> dict[str, Any]:
        queue = await self.queue(caller, queue_id)
        await db.add_matching(self.engine, queue)
        return {**queue, "counts": (await db.counts(self.engine, [queue_id]))[queue_id]}

    async def delete(self, caller: Caller, queue_id: str) -> None:
        await self.queue(caller, queue_id)
        await db.delete_queue(self.engine, queue_id)

    async def refresh(self, caller: Caller, queue_id: str) -> dict[str, Any]:
        queue = await self.queue(caller, queue_id)
        added = await db.add_matching(self.engine, queue)
        return {"added": added, "counts": (await db.counts(self.engine, [queue_id]))[queue_id]}

    async def add(self, caller: Caller, queue_id: str, trace_id: str) -> dict[str, Any]:
        """Put one trace in the queue by hand (from its page); the item (the one it had
        already, when the queue held the trace)."""
        queue = await self.queue(caller, queue_id)
        trace = await db_traces.get_trace(self.engine, trace_id)
        if trace is None or trace["account_id"] != queue["account_id"]:
            raise NotFoundError("trace not found")
        await db.add_items(self.engine, queue_id, {trace_id: "added by hand"})
        item = await db.item_of(self.engine, queue_id, trace_id)
        assert item is not None
        return item

    async def items(
        self, caller: Caller, queue_id: str, status: str | None, limit: int
    ) -> dict[str, Any]:
        queue = await self.queue(caller, queue_id)
        await db.add_matching(self.engine, queue)
        return {"items": await db.list_items(self.engine, queue_id, status, limit)}

    async def _shown(self, item: dict[str, Any]) -> dict[str, Any]:
        """The item with its trace's summary and the scores its trace has."""
        trace = await db_traces.get_trace(self.engine, item["trace_id"])
        found = await db_scores.list_scores(
            self.engine, None, {"trace_id": item["trace_id"]}, None, 200
        )
        return {
            **item,
            "trace": {k: trace.get(k) for k in TRACE_FIELDS} if trace else None,
            "scores": found,
        }

    async def next(self, caller: Caller, queue_id: str) -> dict[str, Any]:
        """The next item for this reviewer (held for them a few minutes), or null."""
        queue = await self.queue(caller, queue_id)
        await db.add_matching(self.engine, queue)
        item = await db.hand_next(self.engine, queue_id, caller.user_id)
        return {
            "item": await self._shown(item) if item else None,
            "counts": (await db.counts(self.engine, [queue_id]))[queue_id],
        }

    async def review(
        self,
        caller: Caller,
        queue_id: str,
        item_id: str,
        action: str,
        given: Sequence[Mapping[str, Any]],
    ) -> dict[str, Any]:
        """Skip the item, or mark it done with the reviewer's scores (stored first, as
        `annotation` scores on its trace)."""
        queue = await self.queue(caller, queue_id)
        item = await db.get_item(self.engine, item_id)
        if item is None or item["queue_id"] != queue_id:
            raise NotFoundError("item not found")
        if item["status"] == "done":
            raise ConflictError("this item is done already", code="done")
        if action == "done":
            check_scores(queue["scores"], given)
            chat_id = await chat_of(
                self.engine, await db_traces.get_trace(self.engine, item["trace_id"])
            )
            rows = [
                {
                    **typed_value(score["data_type"], score["value"]),
                    "account_id": queue["account_id"],
                    "trace_id": item["trace_id"],
                    "chat_id": chat_id,
                    "name": score["name"],
                    "data_type": score["data_type"],
                    "comment": score.get("comment"),
                    "source": "annotation",
                    "author": caller.user_id,
                }
                for score in given
            ]
            for row in rows:
                await db_scores.add_score(self.engine, row)
        await db.finish_item(
            self.engine, item_id, "done" if action == "done" else "skipped", caller.user_id
        )
        return await self.next(caller, queue_id)
