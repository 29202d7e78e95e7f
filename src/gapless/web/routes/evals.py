"""Prompts (`/api/prompts`) and the evaluation pages; feedback and scores
(`web.routes.scores`) and review queues (`web.routes.review`) are included here.

Thin: parse, call `evals.prompts` / `evals.feedback`, answer JSON (or stream an
export). A prompt is named in the path; `account_id` picks the account when the
caller has the name in several. Imports `evals`, `web.deps`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi import Path as InPath
from fastapi.responses import FileResponse
from pydantic import Field, model_validator

from gapless.evals.prompts import Prompts
from gapless.web.api import Strict
from gapless.web.deps import CallerDep, RuntimeDep
from gapless.web.routes import LARGEST, compare, datasets, evaluators, experiments, review, scores

router = APIRouter(tags=["evaluations"])
STATIC = Path(__file__).resolve().parents[1] / "static"
AccountQuery = Annotated[
    str | None, Query(max_length=40, description="the account, when the name is in several")
]
Variables = dict[str, Any]  # any JSON value; the template reads what it needs


class PromptConfig(Strict):
    model: str | None = Field(default=None, max_length=200)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=200_000)


class NewVersion(Strict):
    content: str = Field(max_length=50_000, description="the template: `{{ variables }}`")
    config: PromptConfig | None = None
    message: str | None = Field(default=None, max_length=2_000, description="commit message")
    labels: list[str] = Field(default_factory=list, max_length=20)


class NewPrompt(NewVersion):
    name: str = Field(min_length=1, max_length=100)
    account_id: str | None = Field(default=None, max_length=40)


class LabelMove(Strict):
    version: int = Field(ge=1, le=LARGEST)


class PromptRef(Strict):
    """A prompt an agent takes its instructions from: by label (`production` when neither
    is given) or a pinned version, and the variables its template needs."""

    name: str = Field(min_length=1, max_length=100)
    label: str | None = Field(default=None, max_length=50)
    version: int | None = Field(default=None, ge=1, le=LARGEST)
    variables: Variables | None = None

    @model_validator(mode="after")
    def one_choice(self) -> PromptRef:
        if self.label is not None and self.version is not None:
            raise ValueError("give a label or a version, not both")
        return self


class Render(Strict):
    label: str | None = Field(default=None, max_length=50)
    version: int | None = Field(default=None, ge=1, le=LARGEST)
    variables: Variables = Field(default_factory=dict)


def _config(body: NewVersion) -> dict[str, Any]:
    fields = body.model_dump()
    fields["config"] = body.config.model_dump(exclude_none=True) if body.config else {}
    return fields


@router.get("/api/prompts")
async def list_prompts(runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """Every prompt the caller may see, with its labels and latest version."""
    return {"prompts": await Prompts(runtime.engine).visible(caller)}


@router.post("/api/prompts", status_code=201)
async def create_prompt(body: NewPrompt, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """A prompt with its version 1 (409 when the account has that name already)."""
    return await Prompts(runtime.engine).create(caller, _config(body))


@router.get("/api/prompts/{name}")
async def get_prompt(
    name: str, runtime: RuntimeDep, caller: CallerDep, account_id: AccountQuery = None
) -> dict[str, Any]:
    """The prompt, its labels and its versions (newest first, without their content)."""
    return await Prompts(runtime.engine).detail(caller, name, account_id)


@router.delete("/api/prompts/{name}", status_code=204)
async def delete_prompt(
    name: str, runtime: RuntimeDep, caller: CallerDep, account_id: AccountQuery = None
) -> Response:
    """The prompt and all its versions, labels and label history."""
    await Prompts(runtime.engine).delete(caller, name, account_id)
    return Response(status_code=204)


@router.post("/api/prompts/{name}/versions", status_code=201)
async def add_version(
    name: str,
    body: NewVersion,
    runtime: RuntimeDep,
    caller: CallerDep,
    account_id: AccountQuery = None,
) -> dict[str, Any]:
    """Save a new version (never changed after); `latest` and the given labels move to it."""
    return await Prompts(runtime.engine).add_version(caller, name, account_id, _config(body))


@router.get("/api/prompts/{name}/versions/{version}")
async def get_version(
    name: str,
    version: Annotated[int, InPath(ge=1, le=LARGEST)],
    runtime: RuntimeDep,
    caller: CallerDep,
    account_id: AccountQuery = None,
) -> dict[str, Any]:
    return await Prompts(runtime.engine).version(caller, name, account_id, {"version": version})


@router.get("/api/prompts/{name}/labels/{label}")
async def get_labelled(
    name: str, label: str, runtime: RuntimeDep, caller: CallerDep, account_id: AccountQuery = None
) -> dict[str, Any]:
    """The version the label points at."""
    return await Prompts(runtime.engine).version(caller, name, account_id, {"label": label})


@router.put("/api/prompts/{name}/labels/{label}")
async def move_label(
    name: str,
    label: str,
    body: LabelMove,
    runtime: RuntimeDep,
    caller: CallerDep,
    account_id: AccountQuery = None,
) -> dict[str, Any]:
    """Point a label at a version (recorded in the history: who, when, from, to)."""
    return await Prompts(runtime.engine).move_label(caller, name, account_id, label, body.version)


@router.delete("/api/prompts/{name}/labels/{label}", status_code=204)
async def remove_label(
    name: str, label: str, runtime: RuntimeDep, caller: CallerDep, account_id: AccountQuery = None
) -> Response:
    await Prompts(runtime.engine).move_label(caller, name, account_id, label, None)
    return Response(status_code=204)


@router.get("/api/prompts/{name}/history")
async def label_history(
    name: str, runtime: RuntimeDep, caller: CallerDep, account_id: AccountQuery = None
) -> dict[str, Any]:
    """Every move of the prompt's labels, newest first."""
    return await Prompts(runtime.engine).history(caller, name, account_id)


@router.get("/api/prompts/{name}/diff")
async def diff(
    name: str,
    runtime: RuntimeDep,
    caller: CallerDep,
    old: int = Query(ge=1, le=LARGEST),
    new: int = Query(ge=1, le=LARGEST),
    account_id: AccountQuery = None,
) -> dict[str, Any]:
    """Two versions whole (content and config), for a side-by-side diff."""
    return await Prompts(runtime.engine).diff(caller, name, account_id, old, new)


@router.post("/api/prompts/{name}/render")
async def render(
    name: str, body: Render, runtime: RuntimeDep, caller: CallerDep, account_id: AccountQuery = None
) -> dict[str, Any]:
    """The version (by `version`, or `label`, `production` by default) rendered with the
    variables in the sandbox; a missing variable is 422 `missing_variable`, naming it."""
    ref = {"version": body.version, "label": body.label}
    return await Prompts(runtime.engine).render(caller, name, account_id, ref, body.variables)


async def _page() -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


for _path in ("/prompts", "/prompts/{name}", "/playground"):
    router.add_api_route(_path, _page, include_in_schema=False)
# feedback, scores and review queues: modules of their own, one router for the app
router.include_router(scores.router)
router.include_router(review.router)
router.include_router(datasets.router)
router.include_router(evaluators.router)
router.include_router(experiments.router)
router.include_router(compare.router)
