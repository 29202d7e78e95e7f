"""Use cases of agents, with authorisation: an agent of an account one is not in is 404.

An agent is instructions, a model with its settings, tools by name, an
approval policy per tool and a step limit. Its fields are checked here, once,
for create and update alike: a model that is enabled, tools that exist, a step
limit within the configured cap. Imports `db`, `agents.tools`, `errors`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gapless.agents.tools import ToolInfo
from gapless.db import Engine
from gapless.db import agents as db
from gapless.db.accounts import Caller
from gapless.errors import InvalidError, NotFoundError

POLICIES = ("never", "always")


@dataclass(frozen=True)
class Agents:
    engine: Engine
    available: Callable[[], Awaitable[list[ToolInfo]]]  # the toolbox's tools
    check_model: Callable[[Any], str]
    # refuses (422) a prompt reference that cannot resolve in an account
    check_prompt: Callable[[str, Mapping[str, Any]], Awaitable[None]]
    max_steps: int = 25
    default_steps: int = 10

    async def get(self, caller: Caller, agent_id: str) -> dict[str, Any]:
        agent = await db.get_agent(self.engine, agent_id)
        if agent is None or not caller.sees(agent["account_id"]):
            raise NotFoundError("agent not found")
        return agent

    async def visible(self, caller: Caller) -> list[dict[str, Any]]:
        return await db.list_agents(self.engine, None if caller.site_admin else caller.account_ids)

    async def create(self, caller: Caller, fields: Mapping[str, Any]) -> dict[str, Any]:
        account_id = fields.get("account_id") or next(iter(sorted(caller.account_ids)), None)
        if account_id is None or not caller.sees(account_id):
            raise InvalidError("no account to create the agent in", code="no_account")
        values = {
            "description": "",
            "instructions": "",
            "temperature": None,
            "max_tokens": None,
            "tools": [],
            "approval": {},
            "step_limit": self.default_steps,
            **{k: v for k, v in fields.items() if v is not None or k in NULLABLE},
        }
        if not values.get("model"):
            raise InvalidError("an agent needs a model", code="bad_model")
        checked = await self._checked(values)
        if checked.get("prompt"):
            await self.check_prompt(account_id, checked["prompt"])
        return await db.create_agent(self.engine, account_id, checked)

    async def update(
        self, caller: Caller, agent_id: str, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        agent = await self.get(caller, agent_id)
        merged = {**agent, **fields}
        await self._checked(merged)
        if fields.get("prompt"):
            await self.check_prompt(agent["account_id"], fields["prompt"])
        changed = {k: merged[k] for k in fields if k in db.AGENT_FIELDS}
        if "tools" in changed or "approval" in changed:
            changed["approval"] = merged["approval"]
        updated = await db.update_agent(self.engine, agent_id, changed)
        if updated is None:
            raise NotFoundError("agent not found")
        return updated

    async def delete(self, caller: Caller, agent_id: str) -> None:
        await self.get(caller, agent_id)
        await db.delete_agent(self.engine, agent_id)

    async def _checked(self, values: dict[str, Any]) -> dict[str, Any]:
        """The fields, checked: a usable model, known tools, policies, a step limit in range.
        An approval policy not given defaults to `always` for a destructive tool."""
        if not str(values.get("name") or "").strip():
            raise InvalidError("an agent needs a name", code="empty_name")
        values["model"] = self.check_model(values.get("model"))
        steps = values.get("step_limit")
        if not isinstance(steps, int) or not 1 <= steps <= self.max_steps:
            raise InvalidError(
                f"step_limit must be from 1 to {self.max_steps}", code="bad_step_limit"
            )
        known = {tool.name: tool for tool in await self.available() if tool.error is None}
        tools = list(dict.fromkeys(values.get("tools") or []))
        unknown = [name for name in tools if name not in known]
        if unknown:
            raise InvalidError(f"unknown tools: {', '.join(unknown)}", code="unknown_tool")
        approval = dict(values.get("approval") or {})
        for name, policy in approval.items():
            if name not in tools:
                raise InvalidError(f"approval names {name!r}, not a tool of this agent")
            if policy not in POLICIES:
                raise InvalidError(f"approval of {name!r} must be 'never' or 'always'")
        for name in tools:
            approval.setdefault(name, "always" if known[name].destructive else "never")
        values["tools"], values["approval"] = tools, approval
        return values


NULLABLE = ("temperature", "max_tokens")
