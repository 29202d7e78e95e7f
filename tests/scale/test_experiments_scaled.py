"""An experiment scaled out: an API process, a worker, PostgreSQL and Redis, all real, with the
agent's tool a real MCP server (`mcp.hold`, which blocks until the test opens its gate)
and its model served over the wire (`agent_wire.py`). The worker is SIGKILLed while
items hold mid-run: the reaper ends their replies `interrupted`, the sweep gives each a
new attempt, a second worker finishes the run. Each item has exactly one result and one
score per evaluator; only interrupted replies were run again.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from gapless.db import engine as db_engine
from gapless.db.tables import messages, scores
from tests.evals.test_experiments import ENDED, Progress, dataset, most_in_flight
from tests.scale.cluster import Cluster, until
from tests.scale.test_agents_scaled import make_agent, rigged

ITEMS = 10
CONCURRENCY = 3
RUN = 120.0  # seconds the whole run may take after the kill (a reaper's look, a new worker)


async def replies_of(cluster: Cluster, chat_id: str) -> list[tuple[str, str | None]]:
    """(status, error code) of every reply in the chat, oldest first."""
    async with cluster.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(messages.c.status, messages.c.error_code)
            .where(messages.c.chat_id == chat_id, messages.c.role == "assistant")
            .order_by(messages.c.created_at, messages.c.id)
        )
        return [(row.status, row.error_code) for row in rows]


async def test_a_worker_killed_mid_run_loses_nothing_and_repeats_no_finished_item(
    any_queue_cluster: Cluster,
) -> None:
    cluster = any_queue_cluster
    async with rigged(cluster) as rig:
        url = await cluster.api()
        victim = await cluster.worker()
        cluster.engine = db_engine.create(cluster.database_url)
        async with cluster.client(url) as http:
            agent = await make_agent(http, "mcp.hold", approval={"mcp.hold": "never"})
            lines = [{"input": f"hold {n}", "expected": "opened"} for n in range(ITEMS)]
            dataset_id = await dataset(http, "held", lines)
            created = await http.post(
                "/api/evaluators",
                json={"name": "opened", "kind": "contains", "config": {}, "sample": 0},
            )
            assert created.status_code == 201, created.text
            evaluator_id = created.json()["id"]
            async with Progress(http) as progress:
                started = await http.post(
                    "/api/experiments",
                    json={
                        "dataset_id": dataset_id,
                        "target": {"agent_id": agent["id"]},
                        "evaluators": [evaluator_id],
                        "concurrency": CONCURRENCY,
                    },
                )
                assert started.status_code == 201, started.text
                experiment_id = started.json()["id"]

                async def holding() -> int:
                    return rig.calls()

                await until(holding, lambda n: n == CONCURRENCY, 60)  # three items mid-run
                victim.kill()

                async def detail() -> dict[str, Any]:
                    found: dict[str, Any] = (
                        await http.get(f"/api/experiments/{experiment_id}")
                    ).json()
                    return found

                def retried(found: dict[str, Any]) -> bool:
                    return sum(i["attempt"] == 2 for i in found["items"]) == CONCURRENCY

                await until(detail, retried, 60)  # the reaper and the sweep, with no worker
                rig.open()
                await cluster.worker()
                await progress.until(lambda p: p["id"] == experiment_id and p["status"] in ENDED)
            final = await detail()
        assert (final["status"], final["done"], final["failed"]) == ("completed", ITEMS, 0), (
            final,
            cluster.logs(),
        )
        again = [i for i in final["items"] if i["attempt"] == 2]
        assert len(again) == CONCURRENCY
        assert all(i["attempt"] == 1 for i in final["items"] if i not in again)
        for item in final["items"]:
            assert item["status"] == "done", item
            assert (
                item["output"].startswith("Calling it.The tool said ")
                and "opened" in item["output"]
            ), item
            assert [s["passed"] for s in item["scores"]] == [True]
            shown = await replies_of(cluster, item["chat_id"])
            interrupted = [("failed", "interrupted")] * (item["attempt"] - 1)
            assert shown == [*interrupted, ("complete", None)], (item, shown)
        assert rig.calls() == ITEMS + CONCURRENCY  # every attempt held once; none ran twice

        async with cluster.engine.connect() as conn:
            keys = list(
                await conn.scalars(sa.select(scores.c.key).where(scores.c.source == "evaluator"))
            )
        assert sorted(keys) == sorted(f"eval:{i['id']}:{evaluator_id}" for i in final["items"])

        events = progress.of(experiment_id)
        numbers = [p["progress"] for p in events]
        assert numbers == sorted(set(numbers)), numbers  # in order across processes
        assert most_in_flight(events) <= CONCURRENCY
        results = [p["item"]["id"] for p in events if p.get("item", {}).get("status") == "done"]
        assert sorted(results) == sorted(i["id"] for i in final["items"])  # each once
