"""Experiment runs compared (`GET /api/compare?ids=a,b`) and the pages of datasets' runs.

Thin: parse, call `evals.compare`, answer JSON. The path is `/api/compare`, not
`/api/experiments/compare`: this router is included after the experiments one,
whose `/api/experiments/{id}` would take that path first. Included by
`web.routes.evals`. Imports `evals.compare`, `web.deps`, `web.shapes`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from gapless.evals.compare import MAX_RUNS, comparison, parse_ids
from gapless.web.deps import CallerDep, RuntimeDep
from gapless.web.shapes import answers

router = APIRouter(tags=["evaluations"])
STATIC = Path(__file__).resolve().parents[1] / "static"


class ScoreFigures(BaseModel):
    mean: float | None
    pass_rate: float | None
    count: int = Field(description="results with a value (errors left out)")
    errors: int


class Summary(BaseModel):
    pass_rate: float | None = Field(description="of ended items: done, no score failed or erred")
    passed: int
    ended: int
    scores: dict[str, ScoreFigures] = Field(description="by score (evaluator) name")
    cost: float | None
    latency_p50: float | None
    latency_p95: float | None
    failed: int
    regressed: int = Field(description="items worse than in the reference run")
    improved: int


class Run(BaseModel):
    """An experiment (as `GET /api/experiments/{id}` without its items) and its summary."""

    model_config = {"extra": "allow"}
    id: str
    dataset_id: str
    name: str
    status: str
    summary: Summary


class Result(BaseModel):
    status: str
    output: str | None
    scores: list[dict[str, Any]]
    cost: float | None
    duration_ms: float | None
    trace_id: str | None
    error: dict[str, Any] | None
    passed: bool | None = Field(description="null while the item has not ended")


class ComparedItem(BaseModel):
    item_id: str
    position: int
    input: dict[str, Any] | None
    expected: str | None
    results: dict[str, Result] = Field(description="by experiment id")
    regressed: list[str] = Field(description="runs this item got worse in")
    improved: list[str]


class Comparison(BaseModel):
    dataset_id: str
    baseline_id: str | None
    reference_id: str = Field(description="the baseline when among the runs, else the first")
    experiments: list[Run]
    items: list[ComparedItem]


@router.get("/api/compare", responses=answers(Comparison))
async def compare_runs(
    runtime: RuntimeDep,
    caller: CallerDep,
    ids: str = Query(max_length=MAX_RUNS * 41, description=f"2 to {MAX_RUNS} experiment ids, a,b"),
) -> dict[str, Any]:
    """Runs of one dataset side by side: each run's pass rate, scores, cost and latency, and
    per dataset item every run's output and scores and the runs it regressed in (422 for
    runs of different datasets or a wrong count, 404 for a run not the caller's)."""
    return await comparison(runtime.engine, caller, parse_ids(ids))


async def _page() -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


# `/datasets`, `/datasets/{id}` and `/evaluators` are served by their own routers
for _path in ("/experiments/{experiment_id}", "/compare"):
    router.add_api_route(_path, _page, include_in_schema=False)
