"""Experiments, the API's use cases: a dataset run against an agent (with its tools) or a
prompt version and model, created, read, stopped and deleted under the caller's accounts
(another account's is 404).

Creating one checks everything (422 for an empty dataset, an unknown agent,
prompt, evaluator or model; a prompt's label resolved to its version now),
writes the run and its pending items, and starts the first ones; how the items
run from then on is `evals.runs`. Imports `db`, `errors`, `generation`,
`jobs.base`, `evals.prompts`, `evals.runs`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gapless.db import Engine
from gapless.db import agents as db_agents
from gapless.db import datasets as db_datasets
from gapless.db import evaluators as db_evaluators
from gapless.db import experiment_moves as moves
from gapless.db import experiments as db
from gapless.db.accounts import Caller
from gapless.db.rows import now
from gapless.errors import ConflictError, InvalidError, NotFoundError
from gapless.evals import prompts
from gapless.evals.runs import announcer, fill, stop
from gapless.generation import Context
from gapless.jobs.base import Runner


@dataclass(frozen=True)
class Experiments:
    """Authorisation like chats: another account's experiment is 404."""

    ctx: Context
    runner: Runner
    check_model: Callable[[Any], str]  # `Chats.check_model`: 422 for an unknown model

    @property
    def engine(self) -> Engine:
        return self.ctx.engine

    async def experiment(self, caller: Caller, experiment_id: str) -> dict[str, Any]:
        found = await db.get_experiment(self.engine, experiment_id)
        if found is None or not caller.sees(found["account_id"]):
            raise NotFoundError("experiment not found")
        return found

    async def visible(self, caller: Caller, dataset_id: str | None) -> list[dict[str, Any]]:
        accounts = None if caller.site_admin else caller.account_ids
        return await db.list_experiments(self.engine, accounts, dataset_id)

    async def detail(self, caller: Caller, experiment_id: str) -> dict[str, Any]:
        found = await self.experiment(caller, experiment_id)
        items = await db.items_of(self.engine, experiment_id)
        return {**found, "items": [_shown(item) for item in items]}

    async def create(self, caller: Caller, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Check everything, write the run and its pending items, start the first ones."""
        dataset = await db_datasets.get_dataset(self.engine, str(fields["dataset_id"]))
        if dataset is None or not caller.sees(dataset["account_id"]):
            raise NotFoundError("dataset not found")
        account_id = dataset["account_id"]
        if not await db_datasets.list_items(self.engine, dataset["id"]):
            raise InvalidError("the dataset has no items to run", code="empty_dataset")
        target = await self._target(caller, account_id, fields["target"])
        evaluator_ids = list(dict.fromkeys(fields.get("evaluators") or []))
        found = await db_evaluators.get_many(self.engine, evaluator_ids)
        known = {e["id"] for e in found if e["account_id"] == account_id}
        if unknown := [e for e in evaluator_ids if e not in known]:
            raise InvalidError(
                f"unknown evaluators: {', '.join(unknown)}", code="unknown_evaluator"
            )
        values = {
            "account_id": account_id,
            "dataset_id": dataset["id"],
            "name": fields.get("name") or f"{dataset['name']} {now():%Y-%m-%d %H:%M:%S}",
            "target": target,
            "evaluators": evaluator_ids,
            "concurrency": int(fields.get("concurrency") or 4),
            "created_by": caller.user_id,
        }
        created = await db.create_experiment(self.engine, values)
        if created is None:  # its items were deleted meanwhile
            raise InvalidError("the dataset has no items to run", code="empty_dataset")
        experiment_id = created["id"]
        await moves.begin(self.engine, experiment_id, announcer(self.ctx))  # its first event
        await fill(self.ctx, self.runner, experiment_id)
        return await self.experiment(caller, experiment_id)

    async def _target(
        self, caller: Caller, account_id: str, target: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The target as stored: `{agent_id, model?}`, or `{prompt: {name, version}, model}`
        with a label resolved to its version now."""
        if target.get("agent_id"):
            agent = await db_agents.get_agent(self.engine, str(target["agent_id"]))
            if agent is None or agent["account_id"] != account_id:
                raise InvalidError(
                    "agent_id is not an agent of the dataset's account", code="unknown_agent"
                )
            chosen = {"agent_id": agent["id"]}
            if target.get("model"):
                chosen["model"] = self.check_model(target["model"])
            return chosen
        ref = dict(target.get("prompt") or {})
        pick = (
            {"version": ref.get("version")} if ref.get("version") else {"label": ref.get("label")}
        )
        try:
            version = await prompts.Prompts(self.engine).version(
                caller, str(ref.get("name") or ""), account_id, pick
            )
        except NotFoundError as exc:
            raise InvalidError(exc.message, code="unknown_prompt") from None
        model = self.check_model(target.get("model") or version["config"].get("model"))
        return {"prompt": {"name": version["name"], "version": version["version"]}, "model": model}

    async def stop(self, caller: Caller, experiment_id: str) -> dict[str, Any]:
        await self.experiment(caller, experiment_id)
        await stop(self.ctx, self.runner, experiment_id)
        return await self.experiment(caller, experiment_id)

    async def delete(self, caller: Caller, experiment_id: str) -> None:
        found = await self.experiment(caller, experiment_id)
        if found["status"] in db.OPEN:
            raise ConflictError("stop the experiment before deleting it", code="running")
        await db.delete_experiment(self.engine, experiment_id)


def _shown(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item as the API answers it (the claim is the workers' business)."""
    return {k: v for k, v in item.items() if k != "claimed_at"}
