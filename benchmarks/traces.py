"""Dashboard and trace list at 10k, 100k and 1M model calls, on SQLite and PostgreSQL.

For each engine: a fresh database, seeded through the storage layer
(`gapless.observe.seed`) up to each size in turn (10k, then 90k more, then 900k
more: the same database grows), then the real service (`create_app`, uvicorn
on 127.0.0.1) is asked over HTTP, `--repeat` times each, as a site admin (all
accounts) and as a member of one account:

- `metrics_30d_model`: `/api/metrics?period=30d&group_by=model` (series, percentiles);
- `metrics_30d_agents`, `metrics_30d_users`: the dashboard's top lists (`detail=totals`);
- `metrics_24h_model`: the 24-hour dashboard (hourly buckets);
- `traces_filtered`: `/api/traces?status=failed&model=...` (a filtered first page);
- `traces_page2`: the page after it (cursor);
- `traces_search`: `/api/traces?q=tokyo&since=<7 days ago>`;
- `floor`: `/api/session`, an authenticated request that reads no trace (the machine's floor).

Prints p50/p95 (ms) per query, the seeding time, and the machine's load
average; writes JSON to `benchmarks/results/traces-<UTC time>.json`.

    .venv/bin/python -m benchmarks.traces                      # both engines, 10k,100k,1M
    .venv/bin/python -m benchmarks.traces --engines sqlite --sizes 10000,100000
    .venv/bin/python -m benchmarks.traces --measure sqlite:////tmp/.../traces.db  # again
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn

from gapless.config import Settings
from gapless.db import accounts as db_accounts
from gapless.observe.seed import Plan, seed
from gapless.runtime import build
from gapless.web.app import create_app

RESULTS = Path(__file__).parent / "results"
PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def queries(since_7d: str) -> dict[str, str]:
    return {
        "floor": "/api/session",  # an authenticated request that reads no trace: the floor
        "metrics_30d_model": "/api/metrics?period=30d&group_by=model",
        "metrics_30d_agents": "/api/metrics?period=30d&group_by=agent&detail=totals",
        "metrics_30d_users": "/api/metrics?period=30d&group_by=user&detail=totals",
        "metrics_24h_model": "/api/metrics?period=24h&group_by=model",
        "traces_filtered": "/api/traces?status=failed&model=openai:gpt-4o&limit=50",
        "traces_search": f"/api/traces?q=tokyo&since={since_7d}&limit=50",
    }


async def timed(client: httpx.AsyncClient, url: str, repeat: int) -> tuple[list[float], Any]:
    times, body = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        response = await client.get(url)
        times.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
        body = response.json()
    return times, body


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 1), "p95": round(p95, 1)}


async def measure(url: str, repeat: int, tokens: dict[str, str]) -> dict[str, Any]:
    """Serve the database at `url` and time every query as each caller."""
    settings = Settings(
        data_dir=Path(tempfile.mkdtemp(prefix="gapless-traces-")),
        database_url=url,
        providers=("demo",),
        trace_retention_days=0,  # keep the 90 seeded days (the janitor would trim to 30)
    )
    runtime = build(settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), log_level="warning", lifespan="off")
    )
    await runtime.start()
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 (uvicorn has no event)
        await asyncio.sleep(0.01)
    since = (datetime.now(UTC) - timedelta(days=7)).isoformat().replace("+00:00", "Z")
    found: dict[str, Any] = {}
    try:
        for who, token in tokens.items():
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=120
            ) as client:
                await client.get("/api/metrics?period=30d")  # warm caches once
                for name, path in queries(since).items():
                    times, body = await timed(client, path, repeat)
                    found[f"{who}.{name}"] = summary(times)
                    if name == "traces_filtered" and body["next"]:
                        times, _ = await timed(client, f"{path}&cursor={body['next']}", repeat)
                        found[f"{who}.traces_page2"] = summary(times)
                    if name == "metrics_30d_model":
                        found[f"{who}.calls_30d"] = body["totals"]["count"]
    finally:
        server.should_exit = True
        await serving
        await runtime.close()
    return found


async def run_engine(
    engine: str, sizes: list[int], repeat: int, keep: bool = False
) -> list[dict[str, Any]]:
    name = f"gapless_traces_{uuid.uuid4().hex[:8]}"
    if engine == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="gapless-traces-db-"))
        url = f"sqlite:///{folder / 'traces.db'}"
    else:
        conn = await asyncpg.connect(PG)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    rows: list[dict[str, Any]] = []
    try:
        from gapless.db import engine as db_engine

        handle = db_engine.create(url)
        await db_engine.migrate(handle)
        seeded, tokens = 0, {}
        for number, size in enumerate(sizes):
            began = time.perf_counter()
            done = await seed(handle, Plan(size - seeded, seed=100 + number))
            seeding = time.perf_counter() - began
            seeded += done["generations"]
            if not tokens:
                admin = await db_accounts.create_user(
                    handle, f"admin-{name}@b.test", "A", None, site_admin=True
                )
                member = await db_accounts.create_user(handle, f"m-{name}@b.test", "M", None)
                tokens = {
                    "admin": (await db_accounts.issue_token(handle, admin))[0],
                    "member": (await db_accounts.issue_token(handle, member))[0],
                }
            # The member belongs to one account of every seeding: a quarter of all calls.
            await db_accounts.add_member(handle, done["accounts"][0], member)
            await analyze(handle)
            load = os.getloadavg()[0]
            print(
                f"[{engine}] {seeded} generations seeded (+{seeding:.0f} s), load {load:.2f}",
                flush=True,
            )
            found = await measure(url, repeat, tokens)
            row = {
                "engine": engine,
                "generations": seeded,
                "seed_s": round(seeding, 1),
                "load_before": round(load, 2),
                "load_after": round(os.getloadavg()[0], 2),
                **found,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        await handle.dispose()
    finally:
        print(f"[{engine}] database: {url}", flush=True)
        if engine == "postgresql" and not keep:
            conn = await asyncpg.connect(PG)
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.close()
    return rows


async def analyze(handle: Any) -> None:
    """Fresh planner statistics after a bulk load (what autovacuum, or the janitor's hourly
    `PRAGMA optimize`, would give a database that grew by itself)."""
    from sqlalchemy import text

    async with handle.begin() as conn:
        await conn.execute(text("ANALYZE"))


async def remeasure(url: str, repeat: int) -> dict[str, Any]:
    """Time the queries again on a database an earlier run seeded (`--measure URL`): its
    schema brought up to date, new callers (an admin, a member of each seeding's first
    account), then the same figures."""
    from gapless.db import engine as db_engine

    handle = db_engine.create(url)
    await db_engine.migrate(handle)
    await analyze(handle)
    mark = uuid.uuid4().hex[:8]
    admin = await db_accounts.create_user(handle, f"a-{mark}@b.test", "A", None, site_admin=True)
    member = await db_accounts.create_user(handle, f"m-{mark}@b.test", "M", None)
    for number in range(3):
        account = await db_accounts.find_account(handle, f"seed-{100 + number}-0")
        if account is not None:
            await db_accounts.add_member(handle, account, member)
    tokens = {
        "admin": (await db_accounts.issue_token(handle, admin))[0],
        "member": (await db_accounts.issue_token(handle, member))[0],
    }
    await handle.dispose()
    found = await measure(url, repeat, tokens)
    return {
        "engine": url.partition(":")[0].partition("+")[0],
        "generations": "seeded",
        "load_before": round(os.getloadavg()[0], 2),
        **found,
    }


def table(rows: list[dict[str, Any]]) -> str:
    names = [
        "metrics_30d_model",
        "metrics_30d_agents",
        "metrics_30d_users",
        "metrics_24h_model",
        "traces_filtered",
        "traces_page2",
        "traces_search",
    ]
    lines = [
        "| engine | calls | caller | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for row in rows:
        for who in ("admin", "member"):
            cells = [
                f"{row[f'{who}.{n}']['p50']:.0f} / {row[f'{who}.{n}']['p95']:.0f}"
                if f"{who}.{n}" in row
                else "-"
                for n in names
            ]
            lines.append(
                f"| {row['engine']} | {row['generations']:,} | {who} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description="traces and dashboard at scale")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--measure", default="", help="time an already seeded database URL")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[dict[str, Any]] = []
    if args.measure:
        row = await remeasure(args.measure, args.repeat)
        print(json.dumps(row), flush=True)
        return
    for engine in args.engines.split(","):
        rows.extend(await run_engine(engine, sizes, args.repeat, args.keep))
    print("\np50 / p95 ms\n" + table(rows))
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"traces-{stamp}.json"
    out.write_text(json.dumps({"rows": rows, "cpus": os.cpu_count()}, indent=1))
    print(f"written to {out}")


if __name__ == "__main__":
    asyncio.run(main())
