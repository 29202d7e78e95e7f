"""Prompts (`/api/prompts`), feedback on replies and scores (`/api/scores`), review queues
(`web.routes.review`, included here), and their pages.

Thin: parse, call `evals.prompts` / `evals.feedback`, answer JSON (or stream an
export). A prompt is named in the path; `account_id` picks the account when the
caller has the name in several. Imports `evals`, `web.deps`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gapless.errors import InvalidError
from gapless.evals.feedback import Scores
from gapless.evals.prompts import Prompts
from gapless.web.deps import CallerDep, RuntimeDep
from gapless.web.routes import review

router = APIRouter(tags=["evaluations"])
STATIC = Path(__file__).resolve().parents[1] / "static"
AccountQuery = Annotated[
    str | None, Query(max_length=40, description="the account, when the name is in several")
]
Variables = dict[str, Any]  # any JSON value; the template reads what it needs


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


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
    version: int = Field(ge=1)


class PromptRef(Strict):
    """A prompt an agent takes its instructions from: by label (`production` when neither
    is given) or a pinned version, and the variables its template needs."""

    name: str = Field(min_length=1, max_length=100)
    label: str | None = Field(default=None, max_length=50)
    version: int | None = Field(default=None, ge=1)
    variables: Variables | None = None

    @model_validator(mode="after")
    def one_choice(self) -> PromptRef:
        if self.label is not None and self.version is not None:
            raise ValueError("give a label or a version, not both")
        return self


class Render(Strict):
    label: str | None = Field(default=None, max_length=50)
    version: int | None = Field(default=None, ge=1)
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
    name: str, version: int, runtime: RuntimeDep, caller: CallerDep, account_id: AccountQuery = None
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
    old: int = Query(ge=1),
    new: int = Query(ge=1),
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


# ---- feedback and scores ---------------------------------------------------------------------


class Feedback(Strict):
    value: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=5_000)


class NewScore(Strict):
    """A score on one target: a trace (or one of its observations), a chat, or a reply."""

    name: str = Field(min_length=1, max_length=100)
    data_type: Literal["numeric", "boolean", "categorical"]
    value: bool | int | float | str = Field(
        description="a number (numeric), true/false or 1/0 (boolean), a label (categorical)"
    )
    comment: str | None = Field(default=None, max_length=5_000)
    source: Literal["annotation", "evaluator", "api"] = "api"
    trace_id: str | None = Field(default=None, max_length=40)
    observation_id: str | None = Field(default=None, max_length=100)
    chat_id: str | None = Field(default=None, max_length=40)
    message_id: str | None = Field(default=None, max_length=40)


Id = Annotated[str | None, Query(max_length=100)]
Source = Literal["feedback", "annotation", "evaluator", "api"]


def _score_filters(
    trace_id: str | None,
    observation_id: str | None,
    chat_id: str | None,
    message_id: str | None,
    name: str | None,
    source: str | None,
    since: str | None,
) -> dict[str, Any]:
    when = None
    if since:
        try:
            when = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidError("since must be an ISO 8601 time", code="bad_time") from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return {
        "trace_id": trace_id,
        "observation_id": observation_id,
        "chat_id": chat_id,
        "message_id": message_id,
        "name": name,
        "source": source,
        "since": when,
    }


@router.post("/api/messages/{message_id}/feedback")
async def give_feedback(
    message_id: str, body: Feedback, runtime: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    """Thumbs up or down, with an optional comment, on a reply: one per user and reply
    (sending again changes it). Stored as the boolean score `thumbs` on the reply's trace."""
    return await Scores(runtime.engine).feedback(caller, message_id, body.value, body.comment)


@router.delete("/api/messages/{message_id}/feedback", status_code=204)
async def take_back_feedback(message_id: str, runtime: RuntimeDep, caller: CallerDep) -> Response:
    await Scores(runtime.engine).remove_feedback(caller, message_id)
    return Response(status_code=204)


@router.get("/api/chats/{chat_id}/feedback")
async def chat_feedback(chat_id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """The caller's thumbs on this chat's replies, by reply id."""
    return await Scores(runtime.engine).chat_feedback(caller, chat_id)


@router.post("/api/scores", status_code=201)
async def add_score(body: NewScore, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """A numeric, boolean or categorical score on a trace, an observation, a chat or a reply
    (404 when the target is not the caller's)."""
    return await Scores(runtime.engine).add(caller, body.model_dump())


@router.get("/api/scores")
async def list_scores(
    runtime: RuntimeDep,
    caller: CallerDep,
    trace_id: Id = None,
    observation_id: Id = None,
    chat_id: Id = None,
    message_id: Id = None,
    name: Id = None,
    source: Source | None = None,
    since: Annotated[str | None, Query(max_length=40, description="ISO 8601")] = None,
    cursor: Id = None,
    limit: int = Query(default=50, ge=1, le=500),
) -> dict[str, Any]:
    """Scores newest first (the caller's accounts); `next` is the following page's cursor."""
    filters = _score_filters(trace_id, observation_id, chat_id, message_id, name, source, since)
    return await Scores(runtime.engine).page(caller, filters, cursor, limit)


@router.get("/api/scores/export")
async def export_scores(
    runtime: RuntimeDep,
    caller: CallerDep,
    format: Literal["jsonl", "csv"] = "jsonl",
    trace_id: Id = None,
    observation_id: Id = None,
    chat_id: Id = None,
    message_id: Id = None,
    name: Id = None,
    source: Source | None = None,
    since: Annotated[str | None, Query(max_length=40, description="ISO 8601")] = None,
    limit: int = Query(default=10_000, ge=1, le=100_000),
) -> StreamingResponse:
    """The scores (thumbs and annotations among them) the filters select, as JSONL or CSV."""
    filters = _score_filters(trace_id, observation_id, chat_id, message_id, name, source, since)
    lines = await Scores(runtime.engine).export(caller, filters, format, limit)
    kind = "text/csv" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(
        lines,
        media_type=kind,
        headers={"Content-Disposition": f'attachment; filename="scores.{format}"'},
    )


@router.get("/api/scores/{score_id}")
async def get_score(score_id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    return await Scores(runtime.engine).get(caller, score_id)


@router.delete("/api/scores/{score_id}", status_code=204)
async def delete_score(score_id: str, runtime: RuntimeDep, caller: CallerDep) -> Response:
    await Scores(runtime.engine).delete(caller, score_id)
    return Response(status_code=204)


async def _page() -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


for _path in ("/prompts", "/prompts/{name}", "/playground"):
    router.add_api_route(_path, _page, include_in_schema=False)
router.include_router(review.router)  # review queues: their own module, one router for the app
