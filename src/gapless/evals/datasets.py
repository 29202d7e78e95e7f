"""Use cases of datasets, with authorisation like chats (another account's is 404).

Items come by hand, from an import (all or nothing: `evals.imports` refuses
a text with any bad line), or from a reply: its conversation up to the
question it answers is the input, its text the expected output. An item an
experiment used is archived, not deleted, so the run keeps what it ran.
Imports `db`, `errors`, `stream` (pure), `evals.imports`, `evals.owners`,
`observe.recorder` (a reply's trace id).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gapless.db import Engine
from gapless.db import chats as db_chats
from gapless.db import datasets as db
from gapless.db.accounts import Caller
from gapless.errors import ConflictError, InvalidError, NotFoundError
from gapless.evals import imports
from gapless.evals.owners import account_for
from gapless.observe.recorder import trace_id_of
from gapless.stream import FINAL_STATUSES

MAX_ITEMS = 10_000  # active items of one dataset


def _name(value: Any) -> str:
    name = str(value or "").strip()
    if not name or len(name) > 200:
        raise InvalidError("a dataset's name is 1 to 200 characters", code="bad_name")
    return name


def reply_input(chain: list[dict[str, Any]]) -> dict[str, Any]:
    """A reply's conversation as an item's input: the messages from the root to the question
    it answers (the reply is the chain's last), those without text left out."""
    messages = [
        {"role": m["role"], "content": m["content"]}
        for m in chain[:-1]
        if m["role"] in imports.ROLES and m["content"].strip()
    ]
    return {"messages": messages, "variables": {}}


@dataclass(frozen=True)
class Datasets:
    engine: Engine

    async def dataset(self, caller: Caller, dataset_id: str) -> dict[str, Any]:
        found = await db.get_dataset(self.engine, dataset_id)
        if found is None or not caller.sees(found["account_id"]):
            raise NotFoundError("dataset not found")
        return found

    async def visible(self, caller: Caller) -> list[dict[str, Any]]:
        return await db.list_datasets(
            self.engine, None if caller.site_admin else caller.account_ids
        )

    async def create(self, caller: Caller, fields: Mapping[str, Any]) -> dict[str, Any]:
        account_id = await account_for(self.engine, caller, fields.get("account_id"), "dataset")
        name = _name(fields.get("name"))
        created = await db.create_dataset(
            self.engine,
            {
                "account_id": account_id,
                "name": name,
                "description": fields.get("description") or "",
                "created_by": caller.user_id,
            },
        )
        if created is None:
            raise ConflictError(f"a dataset named {name!r} exists already", code="name_taken")
        return created

    async def detail(self, caller: Caller, dataset_id: str, archived: bool) -> dict[str, Any]:
        """The dataset with its items (`count` of them): active ones, or all."""
        found = await self.dataset(caller, dataset_id)
        items = await db.list_items(self.engine, dataset_id, archived)
        return {**found, "items": items, "count": len(items)}

    async def update(
        self, caller: Caller, dataset_id: str, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Change what `fields` holds: `name`, `description`, `baseline_id` (an experiment of
        this dataset; None clears it)."""
        await self.dataset(caller, dataset_id)
        changes: dict[str, Any] = {}
        if "name" in fields:
            changes["name"] = _name(fields["name"])
        if "description" in fields:
            changes["description"] = fields["description"] or ""
        if "baseline_id" in fields:
            baseline = fields["baseline_id"]
            if baseline is not None and not await db.experiment_in(
                self.engine, baseline, dataset_id
            ):
                raise InvalidError(
                    "the baseline is an experiment of this dataset", code="bad_baseline"
                )
            changes["baseline_id"] = baseline
        updated = await db.update_dataset(self.engine, dataset_id, changes)
        if updated is None:
            raise ConflictError(
                f"a dataset named {changes['name']!r} exists already", code="name_taken"
            )
        return updated

    async def delete(self, caller: Caller, dataset_id: str) -> None:
        await self.dataset(caller, dataset_id)
        if not await db.delete_dataset(self.engine, dataset_id):
            raise ConflictError("a run of this dataset is going on: stop it first", code="running")

    async def _add(self, dataset_id: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        added = await db.add_items(self.engine, dataset_id, items, MAX_ITEMS)
        if added is None:
            raise InvalidError(
                f"a dataset holds at most {MAX_ITEMS} active items", code="too_many_items"
            )
        return added

    async def add_item(
        self, caller: Caller, dataset_id: str, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        await self.dataset(caller, dataset_id)
        return (await self._add(dataset_id, [imports.checked(fields)]))[0]

    async def import_items(
        self, caller: Caller, dataset_id: str, kind: str, text: str
    ) -> dict[str, Any]:
        """Every row of a JSONL or CSV text as an item, or none (`bad_rows` names the lines)."""
        await self.dataset(caller, dataset_id)
        added = await self._add(dataset_id, imports.parse(kind, text))
        return {"imported": len(added), "items": added}

    async def item(self, caller: Caller, dataset_id: str, item_id: str) -> dict[str, Any]:
        await self.dataset(caller, dataset_id)
        found = await db.get_item(self.engine, dataset_id, item_id)
        if found is None:
            raise NotFoundError("item not found")
        return found

    async def update_item(
        self, caller: Caller, dataset_id: str, item_id: str, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Change the fields given (`expected` or `metadata` None clears it)."""
        found = await self.item(caller, dataset_id, item_id)
        merged = {k: found[k] for k in imports.FIELDS} | dict(fields)
        changes = {k: v for k, v in imports.checked(merged).items() if k in fields}
        updated = await db.update_item(self.engine, dataset_id, item_id, changes)
        if updated is None:
            raise NotFoundError("item not found")
        return updated

    async def remove_item(
        self, caller: Caller, dataset_id: str, item_id: str
    ) -> dict[str, Any] | None:
        """Delete the item (None), or archive it when a run used it (the archived item)."""
        await self.item(caller, dataset_id, item_id)
        return await db.remove_item(self.engine, dataset_id, item_id)

    async def from_reply(self, caller: Caller, dataset_id: str, message_id: str) -> dict[str, Any]:
        """An item from a finished reply of a chat in the dataset's account: the conversation
        up to its question as input, its text as expected, where it came from as metadata."""
        dataset = await self.dataset(caller, dataset_id)
        context = await db_chats.reply_context(self.engine, message_id)
        if context is None:
            raise NotFoundError("message not found")
        chat, chain = context
        if not caller.sees(chat["account_id"]) or chat["account_id"] != dataset["account_id"]:
            raise NotFoundError("message not found")
        reply = chain[-1]
        if reply["role"] != "assistant":
            raise InvalidError("an item is made from a reply", code="not_a_reply")
        if reply["status"] not in FINAL_STATUSES:
            raise ConflictError("the reply has not finished", code="unfinished")
        fields = {
            "input": reply_input(chain),
            "expected": reply["content"] or None,  # a failed reply may have no text
            "metadata": {
                "chat_id": chat["id"],
                "trace_id": trace_id_of(reply["id"]),
                "model": reply["model"],
            },
        }
        try:
            item = imports.item(fields)
        except imports.RowError as exc:
            raise InvalidError(f"this reply cannot be an item: {exc}", code="bad_item") from None
        return (await self._add(dataset_id, [{**item, "source_reply_id": reply["id"]}]))[0]
