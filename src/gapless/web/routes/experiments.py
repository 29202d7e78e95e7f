"""Experiments (`/api/experiments`): run a dataset against an agent or a prompt version, follow
it, stop it. Thin: parse, call `evals.experiments`, answer JSON. Included by
`web.routes.evals`. Imports `evals.experiments`, `web.deps`.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, model_validator

from gapless.evals.experiments import Experiments
from gapless.runtime import Runtime
from gapless.web.api import Strict
from gapless.web.deps import CallerDep, RuntimeDep
from gapless.web.routes import LARGEST
from gapless.web.shapes import answers

router = APIRouter(tags=["evaluations"])


class AgentTarget(Strict):
    """The agent runs each item with its tools, as in a chat; `model` overrides its own."""

    agent_id: str = Field(min_length=1, max_length=40)
    model: str | None = Field(default=None, max_length=200)


class PromptPick(Strict):
    name: str = Field(min_length=1, max_length=100)
    version: int | None = Field(default=None, ge=1, le=LARGEST)
    label: str | None = Field(default=None, max_length=50)

    @model_validator(mode="after")
    def one_choice(self) -> PromptPick:
        if self.label is not None and self.version is not None:
            raise ValueError("give a label or a version, not both")
        return self


class PromptTarget(Strict):
    """A prompt version (a label is resolved at the start: `production` when neither is
    given), rendered with each item's variables as the system prompt, against `model`."""

    prompt: PromptPick
    model: str | None = Field(default=None, max_length=200)


class NewExperiment(Strict):
    dataset_id: str = Field(min_length=1, max_length=40)
    name: str | None = Field(default=None, max_length=200)
    target: AgentTarget | PromptTarget
    evaluators: list[str] = Field(default_factory=list, max_length=50)
    concurrency: int = Field(default=4, ge=1, le=20, description="items running at once")


class Experiment(BaseModel):
    id: str
    account_id: str
    dataset_id: str
    name: str
    target: dict[str, Any]  # {agent_id, model?} | {prompt: {name, version}, model}
    evaluators: list[str]
    concurrency: int
    status: Literal["queued", "running", "stopping", "stopped", "completed"]
    total: int
    done: int = Field(description="items with a result, failed ones included")
    failed: int
    progress: int = Field(description="+1 with every change; events carry it")
    cost: float | None
    created_by: str | None
    created_at: str
    started_at: str | None
    ended_at: str | None


class ExperimentItem(BaseModel):
    id: str
    experiment_id: str
    item_id: str
    position: int
    status: Literal["pending", "running", "scoring", "done", "failed", "stopped"]
    attempt: int
    chat_id: str | None
    reply_id: str | None
    trace_id: str | None
    input: dict[str, Any] | None
    expected: str | None
    metadata: dict[str, Any]
    output: str | None
    cost: float | None
    tokens: int | None
    duration_ms: int | None
    error: dict[str, Any] | None
    scores: list[dict[str, Any]]  # evaluator Results
    started_at: str | None
    ended_at: str | None


class ExperimentDetail(Experiment):
    items: list[ExperimentItem]


class ExperimentList(BaseModel):
    experiments: list[Experiment]


def _experiments(runtime: Runtime) -> Experiments:
    return Experiments(runtime.context, runtime.runner, runtime.chats.check_model)


@router.get("/api/experiments", responses=answers(ExperimentList))
async def list_experiments(
    runtime: RuntimeDep,
    caller: CallerDep,
    dataset_id: str | None = Query(default=None, max_length=40),
) -> dict[str, Any]:
    """The caller's experiments, newest first (of one dataset, when given)."""
    return {"experiments": await _experiments(runtime).visible(caller, dataset_id)}


@router.post("/api/experiments", status_code=201, responses=answers(Experiment, 201))
async def create_experiment(
    body: NewExperiment, runtime: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    """Start running the dataset's active items; progress follows on the account stream
    (`experiment.updated`). 422 for an empty dataset or an unknown agent, prompt,
    evaluator or model."""
    fields = body.model_dump(exclude_none=True)
    return await _experiments(runtime).create(caller, fields)


@router.get("/api/experiments/{experiment_id}", responses=answers(ExperimentDetail))
async def get_experiment(
    experiment_id: str, runtime: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    """The experiment and its items, each with its dataset item's input and expected output,
    its output, figures, scores and trace."""
    return await _experiments(runtime).detail(caller, experiment_id)


@router.post("/api/experiments/{experiment_id}/stop", responses=answers(Experiment))
async def stop_experiment(
    experiment_id: str, runtime: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    """Pending items are stopped and running items' replies cancelled; answers the
    experiment (`stopped`, or `stopping` while an item's scores are being written)."""
    return await _experiments(runtime).stop(caller, experiment_id)


@router.delete("/api/experiments/{experiment_id}", status_code=204)
async def delete_experiment(experiment_id: str, runtime: RuntimeDep, caller: CallerDep) -> Response:
    """The experiment, its items and their chats (409 while it runs)."""
    await _experiments(runtime).delete(caller, experiment_id)
    return Response(status_code=204)
