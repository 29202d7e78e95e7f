"""The traces API on a real server: filters, pages, the tree, metrics, exports, and
authorisation (another account's traces are 404 or absent, never in an aggregate)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx

from gapless.db import accounts as db_accounts
from gapless.observe.seed import Plan, seed
from tests.conftest import client_for
from tests.support.server import LiveServer


async def seeded(server: LiveServer) -> tuple[dict[str, Any], str]:
    """Two seeded accounts; a member of the first one, and their API token."""

    async def make() -> tuple[dict[str, Any], str]:
        engine = server.runtime.engine
        done = await seed(engine, Plan(generations=400, accounts=2, seed=3, days=20))
        user = await db_accounts.create_user(engine, "mia@example.com", "Mia", None)
        await db_accounts.add_member(engine, done["accounts"][0], user)
        token, _ = await db_accounts.issue_token(engine, user)
        return done, token

    return await server.arun(make())


async def every_trace(client: httpx.AsyncClient, query: str = "") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        url = f"/api/traces?limit=37{query}" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(url)).json()
        found.extend(page["traces"])
        cursor = page["next"]
        if cursor is None:
            return found


async def test_a_member_sees_only_their_accounts_traces_metrics_and_exports(
    live_server: LiveServer,
) -> None:
    done, token = await seeded(live_server)
    mine, theirs = done["accounts"]
    async with client_for(live_server) as admin, client_for(live_server, token) as mia:
        everything = await every_trace(admin)
        assert {t["account_id"] for t in everything} == {mine, theirs}
        assert len({t["id"] for t in everything}) == len(everything) == done["traces"]
        starts = [t["started_at"] for t in everything]
        assert starts == sorted(starts, reverse=True)
        visible = await every_trace(mia)
        assert {t["account_id"] for t in visible} == {mine}
        assert len(visible) == sum(1 for t in everything if t["account_id"] == mine)

        foreign = next(t for t in everything if t["account_id"] == theirs)
        assert (await admin.get(f"/api/traces/{foreign['id']}")).status_code == 200
        refused = await mia.get(f"/api/traces/{foreign['id']}")
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
        for url in (
            f"/api/traces?chat_id={foreign['chat_id']}",
            f"/api/metrics?chat_id={foreign['chat_id']}",
            f"/api/traces/export?chat_id={foreign['chat_id']}",
            f"/api/chats/{foreign['chat_id']}/usage",
        ):
            assert (await mia.get(url)).status_code == 404, url

        period = "?period=30d&group_by=model"
        all_calls = (await admin.get("/api/metrics" + period)).json()["totals"]["count"]
        my_calls = (await mia.get("/api/metrics" + period)).json()["totals"]["count"]
        assert my_calls == sum(t["generations"] for t in visible)
        assert all_calls == sum(t["generations"] for t in everything) > my_calls

        lines = (await mia.get("/api/traces/export?format=jsonl")).text.splitlines()
        exported = [json.loads(line) for line in lines]
        assert {t["account_id"] for t in exported} == {mine}
        assert len(exported) == len(visible)
        assert all(len(t["observations"]) == t["generations"] + t["tools"] for t in exported)
        table = list(
            csv.DictReader(io.StringIO((await mia.get("/api/traces/export?format=csv")).text))
        )
        assert len(table) == len(visible) and {r["account_id"] for r in table} == {mine}


async def test_filters_and_search_narrow_the_list(live_server: LiveServer) -> None:
    await seeded(live_server)
    async with client_for(live_server) as admin:
        everything = await every_trace(admin)
        failed = await every_trace(admin, "&status=failed")
        assert failed and all(t["status"] == "failed" for t in failed)
        assert len(failed) == sum(1 for t in everything if t["status"] == "failed")
        model = "anthropic:claude-sonnet-4-5"
        assert {t["model"] for t in await every_trace(admin, f"&model={model}")} == {model}
        costly = await every_trace(admin, "&min_cost=0.01")
        assert len(costly) == sum(1 for t in everything if t["cost"] >= 0.01)
        slow = await every_trace(admin, "&min_duration_ms=5000")
        assert all(t["duration_ms"] >= 5000 for t in slow)
        tokyo = await every_trace(admin, "&q=TOKYO")
        assert tokyo and all("tokyo" in t["input"].lower() for t in tokyo)
        assert len(tokyo) == sum(1 for t in everything if "Tokyo" in t["input"])
        middle = everything[len(everything) // 2]["started_at"]
        recent = await every_trace(admin, f"&since={middle}")
        assert all(t["started_at"] >= middle for t in recent)
        bad = await admin.get("/api/traces?cursor=nonsense")
        assert bad.status_code == 400 or bad.status_code == 422


async def test_a_trace_is_its_tree_and_metrics_group_by_model_agent_and_user(
    live_server: LiveServer,
) -> None:
    await seeded(live_server)
    async with client_for(live_server) as admin:
        everything = await every_trace(admin)
        multi = next(t for t in everything if t["steps"] >= 2 and t["tools"] >= 1)
        tree = (await admin.get(f"/api/traces/{multi['id']}")).json()
        kinds = [o["kind"] for o in tree["observations"]]
        assert kinds[0] == "generation" and "tool" in kinds
        assert sum(o["output_tokens"] or 0 for o in tree["observations"]) == tree["output_tokens"]
        metrics = (await admin.get("/api/metrics?period=30d&group_by=model")).json()
        assert metrics["source"] == "rollup" and metrics["bucket_seconds"] == 86400
        assert sum(g["count"] for g in metrics["groups"]) == metrics["totals"]["count"]
        assert sum(s["count"] for s in metrics["series"]) == metrics["totals"]["count"]
        p = metrics["totals"]["duration_ms"]
        assert p["p50"] <= p["p95"] <= p["p99"]
        for by in ("agent", "user"):
            top = (await admin.get(f"/api/metrics?period=30d&group_by={by}&detail=totals")).json()
            assert top["series"] == [] and top["groups"]
            assert sum(g["count"] for g in top["groups"]) == metrics["totals"]["count"]
            assert any(g["label"] not in (g["key"], "(none)") for g in top["groups"])
        exact = (await admin.get("/api/metrics?period=30d&group_by=model&exact=true")).json()
        assert exact["source"] == "exact"
        for name in ("p50", "p95"):  # the histogram's reading is within one bucket (20 %)
            assert abs(exact["totals"]["duration_ms"][name] - p[name]) <= 0.2 * p[name]
        schema = (await admin.get("/openapi.json")).json()["paths"]
        assert {
            "/api/traces",
            "/api/traces/{trace_id}",
            "/api/metrics",
            "/api/traces/export",
        } <= set(schema)
