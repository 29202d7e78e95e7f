"""Evaluators (`/api/evaluators`): list, create, read, change, delete, and try one on a case.

Thin: parse, call `evals.catalog`, answer JSON. A kind's config is checked by
the use case (422 `bad_config`, `unknown_kind`, `unknown_prompt`, `bad_model`),
not here, so the API and experiments share one rule. Included by
`web.routes.evals`. Imports `evals.catalog`, `web.deps`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from gapless.evals.catalog import Evaluators
from gapless.web.api import Strict
from gapless.web.deps import CallerDep, RuntimeDep
from gapless.web.shapes import answers

router = APIRouter(tags=["evaluations"])
STATIC = Path(__file__).resolve().parents[1] / "static"
Kind = Literal[
    "exact", "contains", "regex", "json", "json_schema", "numeric", "latency", "cost", "judge"
]
KIND_HELP = (
    "exact {case_sensitive?}, contains {value?, case_sensitive?}, regex {pattern}, json {}, "
    "json_schema {schema}, numeric {tolerance, relative?}, latency {max_ms}, cost {max}, "
    "judge {prompt: {name, label? | version?}, model, pass?}"
)


class Filter(Strict):
    """Which live traces it scores (each key given must match)."""

    agent_id: str | None = Field(default=None, max_length=40)
    model: str | None = Field(default=None, max_length=200)
    prompt_name: str | None = Field(default=None, max_length=100)


class NewEvaluator(Strict):
    name: str = Field(min_length=1, max_length=100, description="the name of its scores")
    kind: Kind = Field(description=KIND_HELP)
    config: dict[str, Any] = Field(default_factory=dict)
    sample: float = Field(default=0.0, ge=0, le=1, description="share of live traces; 0: none")
    filter: Filter | None = None
    account_id: str | None = Field(default=None, max_length=40)


class EvaluatorChange(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    kind: Kind | None = Field(default=None, description=KIND_HELP)
    config: dict[str, Any] | None = None
    sample: float | None = Field(default=None, ge=0, le=1)
    filter: Filter | None = None


class Messages(Strict):
    messages: list[dict[str, Any]] = Field(max_length=200)
    variables: dict[str, Any] = Field(default_factory=dict)


class TryCase(Strict):
    """A case by hand: `input` is a text (one user message) or {messages, variables}."""

    output: str = Field(max_length=200_000)
    expected: str | None = Field(default=None, max_length=200_000)
    input: str | Messages | None = None
    metadata: dict[str, Any] | None = None
    duration_ms: float | None = Field(default=None, ge=0)
    cost: float | None = Field(default=None, ge=0)


class Evaluator(BaseModel):
    id: str
    account_id: str
    name: str = Field(description="the name of the scores it gives")
    kind: Kind
    config: dict[str, Any]
    sample: float = Field(description="share of live traces it scores; 0: experiments only")
    filter: dict[str, str]
    created_by: str | None
    created_at: str
    updated_at: str


class EvaluatorList(BaseModel):
    evaluators: list[Evaluator]


class Result(BaseModel):
    """An evaluator's verdict on one case: a score, or an error (then no value)."""

    evaluator_id: str
    name: str
    data_type: Literal["boolean", "numeric", "categorical"]
    value: float | None = Field(description="booleans are 1/0; null with an error")
    label: str | None
    explanation: str | None
    passed: bool | None
    error: str | None


@router.get("/api/evaluators", responses=answers(EvaluatorList))
async def list_evaluators(runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """The caller's evaluators, by name."""
    return {"evaluators": await Evaluators(runtime.context).visible(caller)}


@router.post("/api/evaluators", status_code=201, responses=answers(Evaluator, 201))
async def create_evaluator(
    body: NewEvaluator, runtime: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    """An evaluator (409 `name_taken`; 422 for a config its kind cannot use)."""
    fields = body.model_dump(exclude_none=True)
    fields["config"] = body.config
    return await Evaluators(runtime.context).create(caller, fields)


@router.get("/api/evaluators/{evaluator_id}", responses=answers(Evaluator))
async def get_evaluator(
    evaluator_id: str, runtime: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    return await Evaluators(runtime.context).find(caller, evaluator_id)


@router.patch("/api/evaluators/{evaluator_id}", responses=answers(Evaluator))
async def change_evaluator(
    evaluator_id: str, body: EvaluatorChange, runtime: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    """Change what is given (`filter: null` clears the filter)."""
    fields = body.model_dump(exclude_unset=True)
    for name in ("name", "kind", "config", "sample"):
        if name in fields and fields[name] is None:
            del fields[name]
    return await Evaluators(runtime.context).change(caller, evaluator_id, fields)


@router.delete("/api/evaluators/{evaluator_id}", status_code=204)
async def delete_evaluator(evaluator_id: str, runtime: RuntimeDep, caller: CallerDep) -> Response:
    """The evaluator (the scores it gave stay on their traces)."""
    await Evaluators(runtime.context).delete(caller, evaluator_id)
    return Response(status_code=204)


@router.post("/api/evaluators/{evaluator_id}/try", responses=answers(Result))
async def try_evaluator(
    evaluator_id: str, body: TryCase, runtime: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    """Run it once on the case given: its Result `{evaluator_id, name, data_type, value,
    label, explanation, passed, error}`; nothing is stored (a judge's call is traced)."""
    fields = body.model_dump(exclude_none=True)
    if isinstance(body.input, Messages):
        fields["input"] = body.input.model_dump()
    return await Evaluators(runtime.context).attempt(caller, evaluator_id, fields)


async def _page() -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


router.add_api_route("/evaluators", _page, include_in_schema=False)
