"""Traces, metrics and exports (`/api/traces`, `/api/metrics`), and the pages that show them.

Thin: parse, authorise through `observe.traces`, answer JSON (or stream an
export). Imports `observe`, `web.deps`.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse

from gapless.errors import InvalidError, NotFoundError, UnauthorizedError
from gapless.observe import metrics as figures
from gapless.observe.traces import Traces
from gapless.web.deps import CallerDep, RuntimeDep
from gapless.web.routes import EXPORT, LARGEST

router = APIRouter()
STATIC = Path(__file__).resolve().parents[1] / "static"
Status = Literal["running", "requires_action", "complete", "failed", "cancelled", "interrupted"]


def _when(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        found = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidError(f"{name} must be an ISO 8601 time", code="bad_time") from None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def _filters(
    chat_id: str | None,
    agent_id: str | None,
    user_id: str | None,
    model: str | None,
    status: str | None,
    since: str | None,
    until: str | None,
    min_cost: float | None,
    min_duration_ms: float | None,
    q: str | None,
    prompt_name: str | None = None,
    prompt_version: int | None = None,
) -> dict[str, Any]:
    return {
        "prompt_name": prompt_name,
        "prompt_version": prompt_version,
        "chat_id": chat_id,
        "agent_id": agent_id,
        "user_id": user_id,
        "model": model,
        "status": status,
        "since": _when(since, "since"),
        "until": _when(until, "until"),
        "min_cost": min_cost,
        "min_duration_ms": min_duration_ms,
        "q": (q or "").strip()[:200] or None,
    }


Text = Annotated[str | None, Query(max_length=200)]


@router.get("/api/traces", tags=["traces"])
async def list_traces(
    runtime: RuntimeDep,
    caller: CallerDep,
    chat_id: Text = None,
    agent_id: Text = None,
    user_id: Text = None,
    model: Text = None,
    status: Status | None = None,
    since: str | None = Query(
        default=None, max_length=40, description="ISO 8601; runs that started at or after"
    ),
    until: str | None = Query(
        default=None, max_length=40, description="ISO 8601; runs that started before"
    ),
    min_cost: float | None = Query(default=None, ge=0, description="USD"),
    min_duration_ms: float | None = Query(default=None, ge=0),
    q: str | None = Query(
        default=None, max_length=200, description="text in the question or the answer"
    ),
    prompt_name: Text = None,
    prompt_version: int | None = Query(default=None, ge=1, le=LARGEST),
    cursor: str | None = Query(default=None, max_length=400),
    limit: int = Query(default=50, ge=1, le=200),
) -> dict[str, Any]:
    """Runs newest first (one trace per reply), with their roll-ups; `next` is the cursor
    of the following page."""
    filters = _filters(
        chat_id,
        agent_id,
        user_id,
        model,
        status,
        since,
        until,
        min_cost,
        min_duration_ms,
        q,
        prompt_name,
        prompt_version,
    )
    return await Traces(runtime.engine).page(caller, filters, cursor, limit)


@router.get("/api/traces/export", tags=["traces"], response_class=Response, responses=EXPORT)
async def export_traces(
    runtime: RuntimeDep,
    caller: CallerDep,
    format: Literal["jsonl", "csv"] = "jsonl",
    chat_id: Text = None,
    agent_id: Text = None,
    user_id: Text = None,
    model: Text = None,
    status: Status | None = None,
    since: Text = None,
    until: Text = None,
    min_cost: float | None = Query(default=None, ge=0),
    min_duration_ms: float | None = Query(default=None, ge=0),
    q: Text = None,
    limit: int = Query(default=10_000, ge=1, le=100_000),
) -> StreamingResponse:
    """The traces the same filters list, streamed: JSONL (each with its observations) or
    CSV (one row per trace)."""
    filters = _filters(
        chat_id, agent_id, user_id, model, status, since, until, min_cost, min_duration_ms, q
    )
    lines = await Traces(runtime.engine).export(caller, filters, format, limit)
    kind = "text/csv" if format == "csv" else "application/x-ndjson"
    name = f"traces.{format}"
    return StreamingResponse(
        lines, media_type=kind, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.get("/api/traces/{trace_id}", tags=["traces"])
async def get_trace(trace_id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """The trace with its observations (each with `parent_id`: the tree), oldest first."""
    return await Traces(runtime.engine).trace(caller, trace_id)


@router.get("/api/chats/{chat_id}/usage", tags=["traces"])
async def chat_usage(chat_id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """The chat's totals over all its runs (kept after its traces expire)."""
    return await Traces(runtime.engine).chat_usage(caller, chat_id)


@router.get("/api/metrics", tags=["traces"])
async def metrics(
    runtime: RuntimeDep,
    caller: CallerDep,
    period: Literal["24h", "7d", "30d", "90d"] | None = None,
    since: Text = None,
    until: Text = None,
    group_by: Literal["model", "agent", "user", "all"] = "model",
    bucket: int = Query(default=0, ge=0, le=90 * 86400, description="seconds (whole hours)"),
    model: Text = None,
    agent_id: Text = None,
    user_id: Text = None,
    chat_id: Text = None,
    exact: bool = False,
    detail: Literal["full", "totals"] = "full",
) -> dict[str, Any]:
    """Model calls per time bucket and per group: count, errors and error rate, tokens,
    cost, p50/p95/p99 of duration and of time to first chunk; `totals` and `previous`
    (the period as long before it) for the cards. `detail=totals`: per group only, without
    the series and the groups' percentiles (top lists)."""
    start, end = figures.default_range(period, datetime.now(UTC))
    start = _when(since, "since") or start
    end = _when(until, "until") or end
    if end <= start or (end - start).days > 400:
        raise InvalidError("the range must be positive and at most 400 days", code="bad_range")
    filters = {"model": model, "agent_id": agent_id, "user_id": user_id, "chat_id": chat_id}
    query = figures.Query(start, end, group_by, bucket, filters, exact, detail)
    return await Traces(runtime.engine).metrics(caller, query)


@router.get("/api/delivery", tags=["traces"])
async def delivery(runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """This process's streaming figures (subscribers by transport, events appended and
    delivered, replays, resets by reason, lag p50/p99, slow subscribers ended, reconnects)
    and its busiest chats. Site admins only: the figures span every account."""
    tally = getattr(runtime.log, "tally", None)
    if not caller.site_admin or tally is None:
        raise NotFoundError("not found")
    found: dict[str, Any] = tally.json()
    return found


@router.get("/metrics", include_in_schema=False)
async def prometheus(request: Request, runtime: RuntimeDep) -> Response:
    """Prometheus text format; off unless GAPLESS_METRICS_TOKEN is set, then behind it."""
    token = runtime.settings.metrics_token
    tally = getattr(runtime.log, "tally", None)
    if not token or tally is None:
        raise NotFoundError("not found")
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise UnauthorizedError("a metrics token is required")
    from gapless.observe import prometheus as exposition

    return Response(exposition.render(tally), media_type=exposition.CONTENT_TYPE)


async def _page() -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


for _path in ("/dashboard", "/traces", "/traces/{trace_id}"):
    router.add_api_route(_path, _page, include_in_schema=False)
