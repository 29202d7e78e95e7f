"""Review queues (`/api/queues`) and the reviewer's page. Thin: parse, call `evals.review`,
answer JSON. Included by `web.routes.evals`. Imports `evals.review`, `web.deps`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse
from pydantic import Field, model_validator

from gapless.evals.review import Review
from gapless.web.api import Strict
from gapless.web.deps import CallerDep, RuntimeDep
from gapless.web.routes import Whole

router = APIRouter(tags=["evaluations"])
STATIC = Path(__file__).resolve().parents[1] / "static"
DataType = Literal["numeric", "boolean", "categorical"]


class Rule(Strict):
    """What adds a trace to the queue: `thumbs_down`, `error`, `cost_above` (USD),
    `latency_above` (ms), `score_below` (a score `name` below `value`)."""

    kind: Literal["thumbs_down", "error", "cost_above", "latency_above", "score_below"]
    value: float | None = Field(default=None, ge=0)
    name: str | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def complete(self) -> Rule:
        if self.kind in ("cost_above", "latency_above", "score_below") and self.value is None:
            raise ValueError(f"{self.kind} needs a value")
        if self.kind == "score_below" and not self.name:
            raise ValueError("score_below needs the score's name")
        return self


class ScoreConfig(Strict):
    """A score the reviewer gives each item."""

    name: str = Field(min_length=1, max_length=100)
    data_type: DataType
    categories: list[str] | None = Field(default=None, max_length=50)


class NewQueue(Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2_000)
    rules: list[Rule] = Field(default_factory=list, max_length=20)
    scores: list[ScoreConfig] = Field(default_factory=list, max_length=20)
    backfill_days: int = Field(default=0, ge=0, le=90, description="rules also look this far back")
    account_id: str | None = Field(default=None, max_length=40)


class NewItem(Strict):
    trace_id: str = Field(max_length=40)


class GivenScore(Strict):
    name: str = Field(min_length=1, max_length=100)
    data_type: DataType
    value: bool | Whole | float | str
    comment: str | None = Field(default=None, max_length=5_000)


class Decision(Strict):
    action: Literal["done", "skip"]
    scores: list[GivenScore] = Field(default_factory=list, max_length=20)


@router.get("/api/queues")
async def list_queues(runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """The caller's review queues, with how many items are pending, skipped and done."""
    return {"queues": await Review(runtime.engine).visible(caller)}


@router.post("/api/queues", status_code=201)
async def create_queue(body: NewQueue, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    fields = body.model_dump(exclude_none=True)
    fields["rules"] = [rule.model_dump(exclude_none=True) for rule in body.rules]
    fields["scores"] = [score.model_dump(exclude_none=True) for score in body.scores]
    return await Review(runtime.engine).create(caller, fields)


@router.get("/api/queues/{queue_id}")
async def get_queue(queue_id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """The queue and its counts (its rules run first)."""
    return await Review(runtime.engine).detail(caller, queue_id)


@router.delete("/api/queues/{queue_id}", status_code=204)
async def delete_queue(queue_id: str, runtime: RuntimeDep, caller: CallerDep) -> Response:
    await Review(runtime.engine).delete(caller, queue_id)
    return Response(status_code=204)


@router.post("/api/queues/{queue_id}/refresh")
async def refresh(queue_id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """Run the rules now; how many traces they added."""
    return await Review(runtime.engine).refresh(caller, queue_id)


@router.get("/api/queues/{queue_id}/items")
async def list_items(
    queue_id: str,
    runtime: RuntimeDep,
    caller: CallerDep,
    status: Literal["pending", "skipped", "done"] | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> dict[str, Any]:
    return await Review(runtime.engine).items(caller, queue_id, status, limit)


@router.post("/api/queues/{queue_id}/items", status_code=201)
async def add_item(
    queue_id: str, body: NewItem, runtime: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    """Put a trace in the queue by hand; answers its item (the same one if it was there)."""
    return await Review(runtime.engine).add(caller, queue_id, body.trace_id)


@router.post("/api/queues/{queue_id}/next")
async def next_item(queue_id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """The next item to review (pending first, then skipped), held for this reviewer for five
    minutes, with its trace and the scores it has; `item` is null when none is left."""
    return await Review(runtime.engine).next(caller, queue_id)


@router.post("/api/queues/{queue_id}/items/{item_id}")
async def review_item(
    queue_id: str, item_id: str, body: Decision, runtime: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    """Skip the item or mark it done with scores (annotation scores on its trace); answers
    the next item as `next` does."""
    given = [score.model_dump() for score in body.scores]
    return await Review(runtime.engine).review(caller, queue_id, item_id, body.action, given)


async def _page() -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


for _path in ("/queues", "/queues/{queue_id}"):
    router.add_api_route(_path, _page, include_in_schema=False)
