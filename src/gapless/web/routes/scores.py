"""Feedback on replies (thumbs) and scores (`/api/scores`, their exports). Thin: parse,
call `evals.feedback`, answer JSON (or stream an export). Included by `web.routes.evals`.
Imports `evals.feedback`, `web.deps`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import Field

from gapless.errors import InvalidError
from gapless.evals.feedback import Scores
from gapless.web.api import Strict
from gapless.web.deps import CallerDep, RuntimeDep
from gapless.web.routes import EXPORT, Whole

router = APIRouter(tags=["evaluations"])


class Feedback(Strict):
    value: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=5_000)


class NewScore(Strict):
    """A score on one target: a trace (or one of its observations), a chat, or a reply."""

    name: str = Field(min_length=1, max_length=100)
    data_type: Literal["numeric", "boolean", "categorical"]
    value: bool | Whole | float | str = Field(
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


async def score_filters(
    trace_id: Id = None,
    observation_id: Id = None,
    chat_id: Id = None,
    message_id: Id = None,
    name: Id = None,
    source: Source | None = None,
    since: Annotated[str | None, Query(max_length=40, description="ISO 8601")] = None,
) -> dict[str, Any]:
    """The filters of a score list or export, from the query."""
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


Filters = Annotated[dict[str, Any], Depends(score_filters)]


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
    filters: Filters,
    cursor: Id = None,
    limit: int = Query(default=50, ge=1, le=500),
) -> dict[str, Any]:
    """Scores newest first (the caller's accounts); `next` is the following page's cursor."""
    return await Scores(runtime.engine).page(caller, filters, cursor, limit)


@router.get("/api/scores/export", response_class=Response, responses=EXPORT)
async def export_scores(
    runtime: RuntimeDep,
    caller: CallerDep,
    filters: Filters,
    format: Literal["jsonl", "csv"] = "jsonl",
    limit: int = Query(default=10_000, ge=1, le=100_000),
) -> StreamingResponse:
    """The scores (thumbs and annotations among them) the filters select, as JSONL or CSV."""
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
