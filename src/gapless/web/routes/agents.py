"""Agents (`/api/agents`), the tools they may use (`/api/tools`), and approving a tool call
(`/api/messages/{id}/tools/{tool_call_id}`). Thin: parse, call `agents.service` or `chats`,
answer JSON. Imports `agents.service`, `runtime`, `web.deps`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from gapless.agents.service import Agents
from gapless.evals import prompts
from gapless.runtime import Runtime
from gapless.web import shapes
from gapless.web.deps import CallerDep, RuntimeDep
from gapless.web.routes import LARGEST
from gapless.web.shapes import answers

router = APIRouter(prefix="/api")

Policy = Literal["never", "always"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PromptRef(Strict):
    """Instructions from a prompt: by label (default `production`) or a pinned version."""

    name: str = Field(min_length=1, max_length=200)
    label: str | None = Field(default=None, max_length=100)
    version: int | None = Field(default=None, ge=1, le=LARGEST)
    variables: dict[str, Any] | None = None


class AgentFields(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2_000)
    instructions: str | None = Field(default=None, max_length=50_000)
    model: str | None = Field(default=None, max_length=200)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=200_000)
    tools: list[str] | None = Field(default=None, max_length=100)
    approval: dict[str, Policy] | None = None
    step_limit: int | None = Field(default=None, ge=1, le=LARGEST)
    prompt: PromptRef | None = None  # null: the agent's own instructions


class NewAgent(AgentFields):
    name: str = Field(min_length=1, max_length=200)
    model: str = Field(max_length=200)
    account_id: str | None = None


class Decision(Strict):
    decision: Literal["approve", "deny"]
    reason: str | None = Field(default=None, max_length=2_000)


def agents_of(runtime: Runtime) -> Agents:
    return Agents(
        runtime.engine,
        runtime.toolbox.available,
        runtime.chats.check_model,
        lambda account_id, ref: prompts.check_ref(runtime.engine, account_id, ref),
        max_steps=runtime.settings.max_steps,
    )


def _given(body: BaseModel) -> dict[str, Any]:
    fields = {name: getattr(body, name) for name in body.model_fields_set}
    if isinstance(fields.get("prompt"), PromptRef):
        fields["prompt"] = fields["prompt"].model_dump(exclude_none=True)
    return fields


@router.get("/agents", responses=answers(shapes.Agents))
async def list_agents(runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    return {"agents": await agents_of(runtime).visible(caller)}


@router.post("/agents", status_code=201, responses=answers(shapes.Agent, 201))
async def create_agent(body: NewAgent, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    return await agents_of(runtime).create(caller, _given(body))


@router.get("/agents/{agent_id}", responses=answers(shapes.Agent))
async def get_agent(agent_id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    return await agents_of(runtime).get(caller, agent_id)


@router.patch("/agents/{agent_id}", responses=answers(shapes.Agent))
async def patch_agent(
    agent_id: str, body: AgentFields, runtime: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    return await agents_of(runtime).update(caller, agent_id, _given(body))


@router.delete("/agents/{agent_id}", status_code=204)
async def delete_agent(agent_id: str, runtime: RuntimeDep, caller: CallerDep) -> Response:
    await agents_of(runtime).delete(caller, agent_id)
    return Response(status_code=204)


@router.get("/tools", responses=answers(shapes.Tools))
async def list_tools(runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """Every tool an agent may be given; an MCP server that cannot start shows its error."""
    return {"tools": [asdict(tool) for tool in await runtime.toolbox.available()]}


@router.post("/messages/{message_id}/tools/{tool_call_id}", responses=answers(shapes.Message))
async def decide(
    message_id: str, tool_call_id: str, body: Decision, runtime: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    """Approve or deny a tool call awaiting approval (409 when it awaits none)."""
    return await runtime.chats.decide(caller, message_id, tool_call_id, body.decision, body.reason)
