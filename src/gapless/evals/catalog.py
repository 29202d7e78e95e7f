"""Use cases of evaluators, with authorisation like chats (another account's is 404).

An evaluator is a kind and its config (checked when saved: a bad pattern,
schema, unknown kind, or a judge whose prompt or model does not exist is
422), the share of live traces it scores (`sample`) and which ones
(`filter`). `attempt` runs one on a case given by hand and stores nothing
(a judge's call is still traced). A change here is seen by this process's
live scoring at once, by others within `live.CACHE_SECONDS`.
Imports `db`, `errors`, `generation` (the context), `providers.base`,
`evals.evaluators`, `evals.live`, `evals.owners`, `evals.prompts`,
`evals.scoring`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gapless.db import evaluators as db
from gapless.db.accounts import Caller
from gapless.errors import ConflictError, InvalidError, NotFoundError
from gapless.evals import live, scoring
from gapless.evals.evaluators import Case, check_config
from gapless.evals.judge import variables
from gapless.evals.owners import account_for
from gapless.evals.prompts import resolve_instructions
from gapless.generation import Context
from gapless.providers.base import split_model

FILTER_KEYS = live.FILTER_KEYS


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
        raise InvalidError("an evaluator's name is 1 to 100 characters", code="bad_name")
    return name.strip()


def check_sample(sample: Any) -> float:
    if isinstance(sample, bool) or not isinstance(sample, int | float):
        raise InvalidError("sample is a share of live traces, 0 to 1", code="bad_sample")
    if not math.isfinite(sample) or not 0 <= sample <= 1:
        raise InvalidError("sample is a share of live traces, 0 to 1", code="bad_sample")
    return float(sample)


def check_filter(found: Any) -> dict[str, str]:
    if found is None:
        return {}
    if not isinstance(found, Mapping) or set(found) - set(FILTER_KEYS):
        raise InvalidError(f"filter has only {', '.join(FILTER_KEYS)}", code="bad_filter")
    if any(v is not None and (not isinstance(v, str) or len(v) > 200) for v in found.values()):
        raise InvalidError("a filter's values are texts", code="bad_filter")
    return {k: v for k, v in found.items() if v}


def case_from(fields: Mapping[str, Any]) -> Case:
    """A case given by hand: `input` a text (one user message) or {messages, variables}."""
    given = fields.get("input")
    if given is None or isinstance(given, str):
        messages = [{"role": "user", "content": given}] if given else []
        given = {"messages": messages, "variables": {}}
    return Case(
        input=dict(given),
        output=str(fields.get("output") or ""),
        expected=fields.get("expected"),
        metadata=dict(fields.get("metadata") or {}),
        duration_ms=fields.get("duration_ms"),
        cost=fields.get("cost"),
        tokens=fields.get("tokens"),
    )


@dataclass(frozen=True)
class Evaluators:
    ctx: Context

    async def find(self, caller: Caller, evaluator_id: str) -> dict[str, Any]:
        found = await db.get(self.ctx.engine, evaluator_id)
        if found is None or not caller.sees(found["account_id"]):
            raise NotFoundError("evaluator not found")
        return found

    async def visible(self, caller: Caller) -> list[dict[str, Any]]:
        scope = None if caller.site_admin else caller.account_ids
        return await db.list_for(self.ctx.engine, scope)

    async def _checked(self, account_id: str, kind: Any, config: Any) -> dict[str, Any]:
        """The config as stored; for a judge, its prompt must resolve in the account (with
        the variables a judge gives) and its model's provider be enabled here."""
        checked = check_config(str(kind), config)
        if kind != "judge":
            return checked
        provider, _ = split_model(checked["model"])
        if provider not in self.ctx.providers:
            raise InvalidError(f"model {checked['model']} is not enabled here", code="bad_model")
        blank = Case(input={"messages": [{"role": "user", "content": ""}]}, output="")
        try:
            await resolve_instructions(
                self.ctx.engine, account_id, {**checked["prompt"], "variables": variables(blank)}
            )
        except NotFoundError as exc:
            raise InvalidError(exc.message, code="unknown_prompt") from None
        except InvalidError as exc:
            if exc.code == "missing_variable":  # a rubric reading what no judge is given
                raise InvalidError(
                    f"the judge's prompt {exc.message} (a judge gives input, output, "
                    "expected, metadata and messages)",
                    code="missing_variable",
                ) from None
        return checked

    async def create(self, caller: Caller, fields: Mapping[str, Any]) -> dict[str, Any]:
        account_id = await account_for(
            self.ctx.engine, caller, fields.get("account_id"), "evaluator"
        )
        name = check_name(fields.get("name"))
        values = {
            "account_id": account_id,
            "name": name,
            "kind": fields.get("kind"),
            "config": await self._checked(account_id, fields.get("kind"), fields.get("config")),
            "sample": check_sample(fields.get("sample", 0.0)),
            "filter": check_filter(fields.get("filter")),
            "created_by": caller.user_id,
        }
        created = await db.create(self.ctx.engine, values)
        if created is None:
            raise ConflictError(f"an evaluator named {name!r} exists already", code="name_taken")
        live.forget(self.ctx.engine)
        return created

    async def change(
        self, caller: Caller, evaluator_id: str, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        found = await self.find(caller, evaluator_id)
        changes: dict[str, Any] = {}
        if "name" in fields:
            changes["name"] = check_name(fields["name"])
        if "kind" in fields or "config" in fields:
            kind = fields.get("kind", found["kind"])
            config = fields.get("config", found["config"])
            changes["kind"] = kind
            changes["config"] = await self._checked(found["account_id"], kind, config)
        if "sample" in fields:
            changes["sample"] = check_sample(fields["sample"])
        if "filter" in fields:
            changes["filter"] = check_filter(fields["filter"])
        if not changes:
            return found
        changed = await db.update(self.ctx.engine, evaluator_id, changes)
        if changed is None:
            raise ConflictError(
                f"an evaluator named {changes.get('name')!r} exists already", code="name_taken"
            )
        live.forget(self.ctx.engine)
        return changed

    async def delete(self, caller: Caller, evaluator_id: str) -> None:
        await self.find(caller, evaluator_id)
        await db.delete(self.ctx.engine, evaluator_id)
        live.forget(self.ctx.engine)

    async def attempt(
        self, caller: Caller, evaluator_id: str, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The evaluator's result on a case given by hand; nothing is stored."""
        found = await self.find(caller, evaluator_id)
        [result] = await scoring.score(self.ctx, found["account_id"], [found], case_from(fields))
        return result
