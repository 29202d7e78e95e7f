"""Roll-ups of model calls: hourly sums and histograms per dimension, each chat's totals.

Every write is an additive upsert (`x = x + excluded.x`), so processes that end
runs at once never lose one another's counts. The dashboard reads sums of hourly
rows, grouped into its buckets in SQL; `exact_*` reads the model calls
themselves (filters the roll-ups cannot answer). Imports `db.tables`, `db.traces`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from gapless.db import Connection, Engine
from gapless.db.tables import HISTOGRAM_BUCKETS, chat_usage, observations, traces, usage_hourly
from gapless.db.traces import dialect, upsert

USAGE_KEYS = ("dim", "hour", "account_id", "key")
USAGE_SUMS = [c.name for c in usage_hourly.c if c.name not in USAGE_KEYS]
DURATIONS = [f"d{i}" for i in range(HISTOGRAM_BUCKETS)]
TTFTS = [f"t{i}" for i in range(HISTOGRAM_BUCKETS)]
HISTOGRAMS = frozenset(DURATIONS + TTFTS)
ZEROS = dict.fromkeys(HISTOGRAMS, 0)
SUMMED = frozenset(USAGE_SUMS)
CHAT_SUMS = ["traces", "generations", "tools", "input_tokens", "output_tokens", "cost"]
CHAT_SUMS += ["duration_ms"]
ERRORS = ("failed", "interrupted")  # a cancelled (stopped) call is no error


def _adding(name: str, table: sa.Table, keys: Sequence[str], sums: Sequence[str]) -> Any:
    statement = upsert(name, table)
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={c: table.c[c] + statement.excluded[c] for c in sums}
    )


async def add_usage(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Add hourly rows to what the table holds (histogram buckets not given are 0)."""
    if rows:
        statement = _statement(dialect(conn), "usage")
        await conn.execute(statement, [{**ZEROS, **row} for row in rows])


_BUILT: dict[tuple[str, str], Any] = {}


def _statement(name: str, which: str) -> Any:
    """The additive upserts, built once per dialect (a 120-column statement costs to build)."""
    found = _BUILT.get((name, which))
    if found is None:
        if which == "usage":
            found = _adding(name, usage_hourly, USAGE_KEYS, USAGE_SUMS)
        else:
            found = upsert(name, chat_usage)
            found = found.on_conflict_do_update(
                index_elements=["chat_id"],
                set_={
                    **{c: chat_usage.c[c] + found.excluded[c] for c in CHAT_SUMS},
                    "last_at": found.excluded.last_at,
                },
            )
        _BUILT[(name, which)] = found
    return found


async def add_chat_usage(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(_statement(dialect(conn), "chat"), list(rows))


async def chat_totals(engine: Engine, chat_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(sa.select(chat_usage).where(chat_usage.c.chat_id == chat_id))
        ).first()
    return dict(row._mapping) if row is not None else None


async def hourly(
    engine: Engine,
    account_ids: list[str] | None,
    *,
    dim: str,
    since_hour: int,
    until_hour: int,
    bucket_hours: int,
    histograms: bool = True,
) -> list[dict[str, Any]]:
    """Sums per bucket (hours from `since_hour`, `bucket_hours` wide) and key of `dim`
    (`model.day`...: rows per UTC day); `bucket_hours=0`: per key over the whole range;
    without `histograms`, only the scalar sums (a top-N list needs no percentiles)."""
    u = usage_hourly.c
    sums = USAGE_SUMS if histograms else [c for c in USAGE_SUMS if c not in HISTOGRAMS]
    if bucket_hours:
        bucket: Any = ((u.hour - since_hour) // bucket_hours) * bucket_hours + since_hour
    else:
        bucket = sa.literal(since_hour)
    query = (
        sa.select(bucket.label("bucket"), u.key, *[sa.func.sum(u[c]).label(c) for c in sums])
        .where(u.dim == dim, u.hour >= since_hour, u.hour < until_hour)
        .group_by(*((bucket, u.key) if bucket_hours else (u.key,)))
    )
    if account_ids is not None:
        query = query.where(u.account_id.in_(account_ids))
    async with engine.connect() as conn:
        return [dict(row._mapping) for row in await conn.execute(query)]


def _generations(
    account_ids: list[str] | None, since: datetime, until: datetime, filters: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    o, t = observations.c, traces.c
    keys = {"model": o.model, "agent": t.agent_id, "user": t.user_id, "all": sa.literal("")}
    where = [o.kind == "generation", o.started_at >= since, o.started_at < until]
    if account_ids is not None:
        where.append(o.account_id.in_(account_ids))
    if filters.get("model"):
        where.append(o.model == filters["model"])
    if filters.get("agent_id"):
        where.append(t.agent_id == filters["agent_id"])
    if filters.get("user_id"):
        where.append(t.user_id == filters["user_id"])
    if filters.get("chat_id"):
        where.append(t.chat_id == filters["chat_id"])
    return sa.and_(*where), keys


async def exact_rows(
    engine: Engine,
    account_ids: list[str] | None,
    *,
    dim: str,
    since: datetime,
    until: datetime,
    filters: dict[str, Any],
) -> list[Any]:
    """Each model call of the range (SQLite: percentiles are taken in Python)."""
    where, keys = _generations(account_ids, since, until, filters)
    o = observations.c
    query = (
        sa.select(
            o.started_at,
            keys[dim].label("key"),
            o.status,
            o.input_tokens,
            o.output_tokens,
            o.reasoning_tokens,
            o.cached_tokens,
            o.cost,
            o.duration_ms,
            o.ttft_ms,
        )
        .select_from(observations.join(traces, traces.c.id == o.trace_id))
        .where(where)
    )
    async with engine.connect() as conn:
        return list(await conn.execute(query))


async def exact_postgres(
    engine: Engine,
    account_ids: list[str] | None,
    *,
    dim: str,
    since: datetime,
    until: datetime,
    bucket_seconds: int,
    filters: dict[str, Any],
) -> list[dict[str, Any]]:
    """The same, aggregated by PostgreSQL itself, percentiles with `percentile_cont`."""
    where, keys = _generations(account_ids, since, until, filters)
    o = observations.c
    offset = sa.func.extract("epoch", o.started_at) - since.timestamp()
    bucket = sa.func.floor(offset / bucket_seconds).label("bucket")
    errors = sa.func.sum(sa.case((o.status.in_(ERRORS), 1), else_=0))

    def pct(column: Any, q: float, label: str) -> Any:
        return sa.func.percentile_cont(q).within_group(column).label(label)

    query = (
        sa.select(
            bucket,
            keys[dim].label("key"),
            sa.func.count().label("count"),
            errors.label("errors"),
            *[
                sa.func.coalesce(sa.func.sum(o[c]), 0).label(c)
                for c in (
                    "input_tokens",
                    "output_tokens",
                    "reasoning_tokens",
                    "cached_tokens",
                    "cost",
                )
            ],
            pct(o.duration_ms, 0.5, "duration_p50"),
            pct(o.duration_ms, 0.95, "duration_p95"),
            pct(o.duration_ms, 0.99, "duration_p99"),
            pct(o.ttft_ms, 0.5, "ttft_p50"),
            pct(o.ttft_ms, 0.95, "ttft_p95"),
            pct(o.ttft_ms, 0.99, "ttft_p99"),
        )
        .select_from(observations.join(traces, traces.c.id == o.trace_id))
        .where(where)
        .group_by(sa.text("bucket"), sa.text("key"))
    )
    async with engine.connect() as conn:
        return [dict(row._mapping) for row in await conn.execute(query)]
