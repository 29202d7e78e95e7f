"""Traces and their observations: the writes the recorder batches, and the reads of the API.

A trace is one run of a reply; its roll-ups (tokens, cost, steps, time to first
chunk) are recomputed from its observations whenever a batch touched it, so a
repeated or late write never counts twice. Upserts are per dialect (SQLite and
PostgreSQL both have ON CONFLICT). Imports `db.tables`, `db.rows`.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from gapless.db import Connection, Engine
from gapless.db.rows import aware, iso, new_id, now
from gapless.db.tables import chats, messages, observations, traces

TRACE_COLUMNS = [c.name for c in traces.c]
ROLLED = ("generations", "tools", "steps", "input_tokens", "output_tokens", "reasoning_tokens")
CONTENT_CHARS = 2000  # of a trace's question and answer kept on its row (lists, search)


def dialect(engine: Engine | Connection) -> str:
    return str(engine.sync_engine.dialect.name) if hasattr(engine, "sync_engine") else "sqlite"


def upsert(name: str, table: sa.Table) -> Any:
    """`INSERT ... ON CONFLICT` for this dialect (both have it, with different classes)."""
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(table)


# ---- writes ------------------------------------------------------------------


async def save_runs(conn: Connection, name: str, rows: Sequence[dict[str, Any]]) -> None:
    """Traces as their runs start: a resumed run keeps its start and totals, runs again."""
    if not rows:
        return
    statement = _BUILT.get((name, "runs"))
    if statement is None:
        statement = upsert(name, traces)
        statement = _BUILT[(name, "runs")] = statement.on_conflict_do_update(
            index_elements=["id"],
            set_={"status": statement.excluded.status, "ended_at": None, "error_code": None},
        )
    await conn.execute(statement, [{**_zero_trace(), **row} for row in rows])


_BUILT: dict[tuple[str, str], Any] = {}  # upserts per dialect, built once (they cost to build)


def _zero_trace() -> dict[str, Any]:
    values: dict[str, Any] = {c: None for c in TRACE_COLUMNS}
    values.update({c: 0 for c in (*ROLLED, "cached_tokens")}, cost=0.0)
    return values


OBSERVATION_COLUMNS = [c.name for c in observations.c]


async def save_observations(conn: Connection, name: str, rows: Sequence[dict[str, Any]]) -> None:
    """Observations in their latest state (a start, or its end: the end overwrites)."""
    if not rows:
        return
    statement = _BUILT.get((name, "observations"))
    if statement is None:
        statement = _BUILT[(name, "observations")] = _observation_upsert(name)
    await conn.execute(statement, [{c: row.get(c) for c in OBSERVATION_COLUMNS} for row in rows])


def _observation_upsert(name: str) -> Any:
    statement = upsert(name, observations)
    return statement.on_conflict_do_update(
        index_elements=["id"],
        # The first start stands: an end told by another run (or built anew) keeps it.
        set_={
            c: statement.excluded[c] for c in OBSERVATION_COLUMNS if c not in ("id", "started_at")
        },
    )


async def open_observations(conn: Connection, trace_ids: Iterable[str]) -> list[dict[str, Any]]:
    """The observations of these traces that never ended (their run died or was stopped)."""
    found = await conn.execute(
        sa.select(observations).where(
            observations.c.trace_id.in_(list(trace_ids)), observations.c.ended_at.is_(None)
        )
    )
    return [dict(row._mapping) for row in found]


async def askers(conn: Connection, reply_ids: Iterable[str]) -> dict[str, str]:
    """Who asked for each reply (`messages.user_id`), for runs told without it."""
    wanted = list(reply_ids)
    if not wanted:
        return {}
    found = await conn.execute(
        sa.select(messages.c.id, messages.c.user_id).where(
            messages.c.id.in_(wanted), messages.c.user_id.is_not(None)
        )
    )
    return {row.id: row.user_id for row in found}


async def starts(conn: Connection, ids: Iterable[str]) -> dict[str, datetime]:
    """When these observations started, as stored (their end is told without it)."""
    wanted = list(ids)
    if not wanted:
        return {}
    found = await conn.execute(
        sa.select(observations.c.id, observations.c.started_at).where(observations.c.id.in_(wanted))
    )
    return {row.id: row.started_at.replace(tzinfo=row.started_at.tzinfo or UTC) for row in found}


async def trace_info(conn: Connection, trace_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Who and where of each trace (a process that did not see its run start asks here)."""
    columns = [traces.c[c] for c in ("id", "chat_id", "account_id", "user_id", "agent_id")]
    found = await conn.execute(
        sa.select(*columns, traces.c.started_at).where(traces.c.id.in_(list(trace_ids)))
    )
    return {row.id: {**row._mapping, "started_at": aware(row.started_at)} for row in found}


def _rollup() -> sa.Update:
    o = observations

    def total(column: str, kind: str = "generation") -> Any:
        return (
            sa.select(sa.func.coalesce(sa.func.sum(o.c[column]), 0))
            .where(o.c.trace_id == traces.c.id, o.c.kind == kind)
            .scalar_subquery()
        )

    def count(kind: str) -> Any:
        return (
            sa.select(sa.func.count())
            .where(o.c.trace_id == traces.c.id, o.c.kind == kind)
            .scalar_subquery()
        )

    first_ttft = (
        sa.select(o.c.ttft_ms)
        .where(o.c.trace_id == traces.c.id, o.c.kind == "generation")
        .order_by(o.c.started_at)
        .limit(1)
        .scalar_subquery()
    )
    steps = (
        sa.select(sa.func.coalesce(sa.func.max(o.c.step), sa.func.count()))
        .where(o.c.trace_id == traces.c.id, o.c.kind == "generation")
        .scalar_subquery()
    )
    return (
        traces.update()
        .where(traces.c.id == sa.bindparam("b_id"))
        .values(
            generations=count("generation"),
            tools=count("tool"),
            steps=steps,
            input_tokens=total("input_tokens"),
            output_tokens=total("output_tokens"),
            reasoning_tokens=total("reasoning_tokens"),
            cached_tokens=total("cached_tokens"),
            cost=total("cost"),
            ttft_ms=first_ttft,
            input=sa.func.coalesce(traces.c.input, sa.bindparam("b_input")),
            output=sa.func.coalesce(sa.bindparam("b_output"), traces.c.output),
        )
    )


_ROLLUP = _rollup()


async def roll_up(conn: Connection, touched: dict[str, tuple[str | None, str | None]]) -> None:
    """Recompute each touched trace's totals from its observations; `touched` maps a trace
    to the question and answer text this batch learnt (None: unchanged)."""
    if touched:
        await conn.execute(
            _ROLLUP,
            [
                {"b_id": trace_id, "b_input": _cut(question), "b_output": _cut(answer)}
                for trace_id, (question, answer) in touched.items()
            ],
        )


_TOTALS = (
    traces.update()
    .where(traces.c.id == sa.bindparam("b_id"))
    .values(
        **{c: sa.bindparam(c) for c in (*ROLLED, "cached_tokens", "cost", "ttft_ms")},
        input=sa.func.coalesce(traces.c.input, sa.bindparam("b_input")),
        output=sa.func.coalesce(sa.bindparam("b_output"), traces.c.output),
    )
)


async def set_totals(conn: Connection, totals: Sequence[dict[str, Any]]) -> None:
    """Totals a recorder counted itself (it saw the whole run): no recomputation."""
    columns = (*ROLLED, "cached_tokens", "cost", "ttft_ms")
    if totals:
        await conn.execute(
            _TOTALS,
            [
                {
                    **{c: t[c] for c in columns},
                    "b_id": t["b_id"],
                    "b_input": _cut(t["b_input"]),
                    "b_output": _cut(t["b_output"]),
                }
                for t in totals
            ],
        )


def _cut(text: str | None) -> str | None:
    return None if text is None else text[:CONTENT_CHARS]


_END = (
    traces.update()
    .where(traces.c.id == sa.bindparam("b_id"))
    .values(
        status=sa.bindparam("b_status"),
        error_code=sa.bindparam("b_code"),
        error_message=sa.bindparam("b_message"),
        ended_at=sa.bindparam("b_ended"),
        duration_ms=sa.bindparam("b_duration"),
    )
)


async def end_runs(conn: Connection, ends: Sequence[dict[str, Any]]) -> None:
    if ends:
        await conn.execute(_END, list(ends))


async def optimize(engine: Engine) -> None:
    """Keep the query planner's statistics fresh (SQLite's `PRAGMA optimize`; PostgreSQL's
    autovacuum analyses by itself)."""
    if dialect(engine) == "sqlite":
        async with engine.connect() as conn:
            await conn.execute(sa.text("PRAGMA optimize"))


async def delete_before(engine: Engine, cutoff: datetime, chunk: int = 2000) -> int:
    """Delete traces that started before `cutoff` with their observations, a chunk per
    transaction (SQLite's writer is shared: never hold it for long). Roll-ups stay."""
    deleted = 0
    while True:
        async with engine.begin() as conn:
            ids = list(
                await conn.scalars(
                    sa.select(traces.c.id).where(traces.c.started_at < cutoff).limit(chunk)
                )
            )
            if not ids:
                return deleted
            await conn.execute(observations.delete().where(observations.c.trace_id.in_(ids)))
            await conn.execute(traces.delete().where(traces.c.id.in_(ids)))
        deleted += len(ids)


async def insert_seeded(
    engine: Engine, trace_rows: Sequence[dict[str, Any]], obs_rows: Sequence[dict[str, Any]]
) -> None:
    """Whole runs at once, roll-ups already computed (`observe.seed`: no recorder between)."""
    async with engine.begin() as conn:
        if trace_rows:
            await conn.execute(traces.insert(), [{**_zero_trace(), **r} for r in trace_rows])
        if obs_rows:
            await conn.execute(
                observations.insert(),
                [{c: r.get(c) for c in OBSERVATION_COLUMNS} for r in obs_rows],
            )


async def insert_seed_chats(engine: Engine, account_id: str, count: int, model: str) -> list[str]:
    """Empty chats for seeded traces to belong to (titles only)."""
    stamp = now()
    ids = [new_id("chat") for _ in range(count)]
    async with engine.begin() as conn:
        await conn.execute(
            chats.insert(),
            [
                {
                    "id": i,
                    "account_id": account_id,
                    "title": f"Seeded chat {n}",
                    "model": model,
                    "system_prompt": "",
                    "created_at": stamp,
                    "updated_at": stamp,
                }
                for n, i in enumerate(ids)
            ],
        )
    return ids


# ---- reads -------------------------------------------------------------------


def trace_json(row: Any) -> dict[str, Any]:
    values = dict(row._mapping)
    values["started_at"] = iso(values["started_at"])
    values["ended_at"] = iso(values["ended_at"])
    values["error"] = (
        {"code": values.pop("error_code"), "message": values.pop("error_message") or ""}
        if values.get("error_code")
        else None
    )
    values.pop("error_code", None)
    values.pop("error_message", None)
    return values


def encode_cursor(row: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(f"{row['started_at']}|{row['id']}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str] | None:
    try:
        stamp, _, trace_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        when = aware(datetime.fromisoformat(stamp.replace("Z", "+00:00")))
    except (ValueError, UnicodeDecodeError):
        return None
    return (when, trace_id) if when is not None and trace_id else None


async def list_traces(
    engine: Engine,
    account_ids: list[str] | None,
    *,
    filters: dict[str, Any],
    after: tuple[datetime, str] | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Newest first. `filters`: chat_id, agent_id, user_id, model, status, prompt_name,
    prompt_version, since, until, min_cost, min_duration_ms, q (text in question or answer)."""
    t = traces.c
    query = sa.select(traces).order_by(t.started_at.desc(), t.id.desc()).limit(limit)
    if account_ids is not None:
        query = query.where(t.account_id.in_(account_ids))
    for column in ("chat_id", "agent_id", "user_id", "model", "status", "prompt_name"):
        if filters.get(column):
            query = query.where(t[column] == filters[column])
    if filters.get("since"):
        query = query.where(t.started_at >= filters["since"])
    if filters.get("until"):
        query = query.where(t.started_at < filters["until"])
    if filters.get("prompt_version") is not None:
        query = query.where(t.prompt_version == filters["prompt_version"])
    if filters.get("min_cost") is not None:
        query = query.where(t.cost >= filters["min_cost"])
    if filters.get("min_duration_ms") is not None:
        query = query.where(t.duration_ms >= filters["min_duration_ms"])
    if filters.get("q"):
        pattern = "%" + _escape(filters["q"]) + "%"
        query = query.where(
            sa.or_(t.input.ilike(pattern, escape="\\"), t.output.ilike(pattern, escape="\\"))
        )
    if after is not None:
        when, trace_id = after
        # The first condition bounds an index range (an OR alone would not).
        query = query.where(t.started_at <= when, sa.or_(t.started_at < when, t.id < trace_id))
    async with engine.connect() as conn:
        return [trace_json(row) for row in await conn.execute(query)]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def get_trace(engine: Engine, trace_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(traces).where(traces.c.id == trace_id))).first()
        if row is None:
            return None
        found = await conn.execute(
            sa.select(observations)
            .where(observations.c.trace_id == trace_id)
            .order_by(observations.c.started_at, observations.c.id)
        )
        return {**trace_json(row), "observations": [observation_json(o) for o in found]}


async def observations_of(engine: Engine, trace_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Observations of several traces at once (exports)."""
    grouped: dict[str, list[dict[str, Any]]] = {trace_id: [] for trace_id in trace_ids}
    if not trace_ids:
        return grouped
    async with engine.connect() as conn:
        found = await conn.execute(
            sa.select(observations)
            .where(observations.c.trace_id.in_(trace_ids))
            .order_by(observations.c.started_at, observations.c.id)
        )
        for row in found:
            grouped[row.trace_id].append(observation_json(row))
    return grouped


def observation_json(row: Any) -> dict[str, Any]:
    values = dict(row._mapping)
    values.pop("account_id", None)
    values["started_at"] = iso(values["started_at"])
    values["ended_at"] = iso(values["ended_at"])
    code, message = values.pop("error_code"), values.pop("error_message")
    values["error"] = {"code": code, "message": message or ""} if code else None
    values["attributes"] = json.loads(values["attributes"]) if values["attributes"] else {}
    for key in ("input", "output"):  # JSON (messages, arguments, parts) shown as such
        if values[key] and values[key][:1] in ("[", "{"):
            with contextlib.suppress(ValueError):
                values[key] = json.loads(values[key])
    return values
