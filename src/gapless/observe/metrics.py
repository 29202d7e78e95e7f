"""Dashboard figures: model calls per time bucket, grouped by model, agent or user.

Without filters the figures come from the hourly roll-ups (a month is a few
thousand rows summed in SQL; percentiles read from the summed histograms,
within a bucket's width). With a filter the roll-ups cannot answer (one model,
agent, user or chat) or `exact`, from the model calls themselves: PostgreSQL
computes `percentile_cont`, SQLite's rows are sorted here. Imports `db`,
`observe.histogram`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from gapless.db import Engine
from gapless.db import usage as db
from gapless.db.traces import dialect
from gapless.observe import histogram

GROUPS = ("model", "agent", "user", "all")
HOUR = 3600
DURATIONS = [f"d{i}" for i in range(histogram.BUCKETS)]
TTFTS = [f"t{i}" for i in range(histogram.BUCKETS)]


@dataclass(frozen=True)
class Query:
    since: datetime
    until: datetime
    group_by: str = "model"
    bucket_seconds: int = 0  # 0: chosen from the range
    filters: dict[str, Any] = field(default_factory=dict)  # model, agent_id, user_id, chat_id
    exact: bool = False
    detail: str = "full"  # or "totals": no series, no percentiles per group

    def bucket(self) -> int:
        if self.bucket_seconds:
            return max(HOUR, self.bucket_seconds // HOUR * HOUR)
        span = (self.until - self.since).total_seconds()
        return HOUR if span <= 2 * 86400 else 3 * HOUR if span <= 8 * 86400 else 24 * HOUR


def _hour(when: datetime, up: bool = False) -> int:
    seconds = when.timestamp() / HOUR
    return math.ceil(seconds) if up else math.floor(seconds)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class _Sum:
    """Figures of one (bucket, key) or one key, summed from roll-up rows or model calls."""

    count: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    duration_ms: float = 0.0
    durations: list[int] = field(default_factory=lambda: [0] * histogram.BUCKETS)
    ttfts: list[int] = field(default_factory=lambda: [0] * histogram.BUCKETS)
    exact: dict[str, float | None] | None = None  # percentiles already computed

    def add_row(self, row: dict[str, Any]) -> None:
        for name in ("count", "errors", "input_tokens", "output_tokens", "reasoning_tokens"):
            setattr(self, name, getattr(self, name) + int(row[name] or 0))
        self.cached_tokens += int(row["cached_tokens"] or 0)
        self.cost += float(row["cost"] or 0)
        self.duration_ms += float(row.get("duration_ms") or 0)
        if "d0" in row:  # a roll-up row: its histograms too
            durations, ttfts = self.durations, self.ttfts
            for i, name in enumerate(DURATIONS):
                durations[i] += int(row[name] or 0)
            for i, name in enumerate(TTFTS):
                ttfts[i] += int(row[name] or 0)

    def json(self) -> dict[str, Any]:
        if self.exact is not None:
            duration = {k[9:]: v for k, v in self.exact.items() if k.startswith("duration_")}
            ttft = {k[5:]: v for k, v in self.exact.items() if k.startswith("ttft_")}
        else:
            duration = histogram.percentiles(self.durations)
            ttft = histogram.percentiles(self.ttfts)
        return {
            "count": self.count,
            "errors": self.errors,
            "error_rate": round(self.errors / self.count, 4) if self.count else 0.0,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cached_tokens": self.cached_tokens,
            "tokens": self.input_tokens + self.output_tokens,
            "cost": round(self.cost, 6),
            "duration_ms": duration,
            "ttft_ms": ttft,
        }


async def metrics(engine: Engine, account_ids: list[str] | None, query: Query) -> dict[str, Any]:
    """`{since, until, bucket_seconds, group_by, source, totals, previous, groups, series}`.

    Daily buckets cover whole UTC days (`since` moves back to its midnight: the
    answer's `since` says so). `detail="totals"` leaves out the series and the
    groups' percentiles (a top-N list), which makes it cheaper."""
    exact = query.exact or any(
        query.filters.get(k) for k in ("model", "agent_id", "user_id", "chat_id")
    )
    if not exact and query.bucket() % 86400 == 0:
        day = 86400
        since = datetime.fromtimestamp(query.since.timestamp() // day * day, UTC)
        query = dataclasses.replace(query, since=since)
    span = query.until - query.since
    read = _exact if exact else _rolled
    series, groups, totals = await read(engine, account_ids, query, query.group_by)
    if query.detail == "totals":
        series = {}
    before = Query(
        query.since - span, query.since, "all", query.bucket(), query.filters, exact, "totals"
    )
    _, _, previous = await read(engine, account_ids, before, "all")
    return {
        "since": _iso(query.since.timestamp()),
        "until": _iso(query.until.timestamp()),
        "bucket_seconds": query.bucket(),
        "group_by": query.group_by,
        "source": "exact" if exact else "rollup",
        "totals": totals.json(),
        "previous": previous.json(),
        "groups": [
            {"key": key, **value.json()}
            for key, value in sorted(groups.items(), key=lambda kv: (-kv[1].cost, -kv[1].count))
        ],
        "series": [
            {"bucket": _iso(start), "key": key, **value.json()}
            for (start, key), value in sorted(series.items())
        ],
    }


Figures = tuple[dict[tuple[float, str], _Sum], dict[str, _Sum], _Sum]


async def _rolled(engine: Engine, account_ids: list[str] | None, query: Query, dim: str) -> Figures:
    since_hour, until_hour = _hour(query.since), _hour(query.until, up=True)
    width = query.bucket() // HOUR
    if width % 24 == 0:  # whole days: the daily rows (30 a month, not 720)
        dim, since_hour, until_hour = dim + ".day", since_hour // 24 * 24, until_hour
    if query.detail == "totals":
        found = await db.hourly(
            engine,
            account_ids,
            dim=dim,
            since_hour=since_hour,
            until_hour=until_hour,
            bucket_hours=0,
            histograms=dim.startswith("all"),
        )
        _, groups, totals = _fold((0.0, row["key"], row) for row in found)
        return {}, groups, totals
    found = await db.hourly(
        engine,
        account_ids,
        dim=dim,
        since_hour=since_hour,
        until_hour=until_hour,
        bucket_hours=width,
    )
    return _fold((float(row["bucket"]) * HOUR, row["key"], row) for row in found)


def _fold(rows: Iterable[tuple[float, str, dict[str, Any]]]) -> Figures:
    series: dict[tuple[float, str], _Sum] = {}
    groups: dict[str, _Sum] = {}
    totals = _Sum()
    for start, key, row in rows:
        for target in (
            series.setdefault((start, key), _Sum()),
            groups.setdefault(key, _Sum()),
            totals,
        ):
            target.add_row(row)
    return series, groups, totals


async def _exact(engine: Engine, account_ids: list[str] | None, query: Query, dim: str) -> Figures:
    width = query.bucket()
    if dialect(engine) == "postgresql":
        return await _exact_postgres(engine, account_ids, query, dim, width)
    found = await db.exact_rows(
        engine, account_ids, dim=dim, since=query.since, until=query.until, filters=query.filters
    )
    origin = query.since.timestamp()
    cells: dict[tuple[float, str], list[Any]] = {}
    for row in found:
        started = row.started_at if row.started_at.tzinfo else row.started_at.replace(tzinfo=UTC)
        start = origin + (started.timestamp() - origin) // width * width
        cells.setdefault((start, row.key or ""), []).append(row)
    series = {cell: _exact_sum(rows) for cell, rows in cells.items()}
    groups: dict[str, list[Any]] = {}
    for (_, key), rows in cells.items():
        groups.setdefault(key, []).extend(rows)
    return series, {k: _exact_sum(v) for k, v in groups.items()}, _exact_sum(list(found))


def _exact_sum(rows: list[Any]) -> _Sum:
    total = _Sum()
    durations = [r.duration_ms for r in rows if r.duration_ms is not None]
    ttfts = [r.ttft_ms for r in rows if r.ttft_ms is not None]
    for row in rows:
        total.add_row(
            {
                "count": 1,
                "errors": 1 if row.status in db.ERRORS else 0,
                "input_tokens": row.input_tokens,
                "output_tokens": row.output_tokens,
                "reasoning_tokens": row.reasoning_tokens,
                "cached_tokens": row.cached_tokens,
                "cost": row.cost,
                "duration_ms": row.duration_ms,
            }
        )
    total.exact = {
        **{f"duration_p{int(q * 100)}": histogram.exact(durations, q) for q in (0.5, 0.95, 0.99)},
        **{f"ttft_p{int(q * 100)}": histogram.exact(ttfts, q) for q in (0.5, 0.95, 0.99)},
    }
    return total


async def _exact_postgres(
    engine: Engine, account_ids: list[str] | None, query: Query, dim: str, width: int
) -> Figures:
    found = await db.exact_postgres(
        engine,
        account_ids,
        dim=dim,
        since=query.since,
        until=query.until,
        bucket_seconds=width,
        filters=query.filters,
    )
    origin = query.since.timestamp()
    series: dict[tuple[float, str], _Sum] = {}
    for row in found:
        cell = _Sum()
        cell.add_row(row)
        cell.exact = {
            k: (round(float(v), 1) if v is not None else None)
            for k, v in row.items()
            if k.startswith(("duration_p", "ttft_p"))
        }
        series[(origin + float(row["bucket"]) * width, row["key"] or "")] = cell
    # Percentiles of a group or of the whole range are not sums of the buckets': ask again.
    whole = Query(
        query.since,
        query.until,
        dim,
        int(query.until.timestamp() - origin) + 1,
        query.filters,
        True,
    )
    groups: dict[str, _Sum] = {}
    if dim != "all":
        for row in await db.exact_postgres(
            engine,
            account_ids,
            dim=dim,
            since=whole.since,
            until=whole.until,
            bucket_seconds=whole.bucket_seconds,
            filters=query.filters,
        ):
            groups[row["key"] or ""] = _one(row)
    totals = _Sum()
    for row in await db.exact_postgres(
        engine,
        account_ids,
        dim="all",
        since=whole.since,
        until=whole.until,
        bucket_seconds=whole.bucket_seconds,
        filters=query.filters,
    ):
        totals = _one(row)
    if dim == "all":
        groups = {"": totals}
    return series, groups, totals


def _one(row: dict[str, Any]) -> _Sum:
    cell = _Sum()
    cell.add_row(row)
    cell.exact = {
        k: (round(float(v), 1) if v is not None else None)
        for k, v in row.items()
        if k.startswith(("duration_p", "ttft_p"))
    }
    return cell


def default_range(period: str | None, now: datetime) -> tuple[datetime, datetime]:
    """`24h`, `7d`, `30d` (or `90d`) ending now."""
    days = {"24h": 1, "7d": 7, "30d": 30, "90d": 90}.get(period or "24h", 1)
    return now - timedelta(days=days), now
