"""The comparison on a real server: two runs of a dataset against two versions of a prompt on
the scripted model, scored by an exact-match evaluator; the item the second version gets wrong
is regressed against the first, then the baseline moves and the reference with it; bad id
lists are 422, runs of different datasets 422, another account's runs 404."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from gapless.web.routes.compare import Comparison
from tests.conftest import client_for
from tests.evals.conftest import outsider
from tests.support.server import LiveServer

ITEMS = [("Capital of France?", "Paris"), ("2+2?", "4"), ("Colour of grass?", "green")]


async def until_ended(api: httpx.AsyncClient, experiment_id: str) -> dict[str, Any]:
    """The run once it ended (its items are jobs on the server's runner)."""
    deadline = time.monotonic() + 30
    while True:
        found = (await api.get(f"/api/experiments/{experiment_id}")).json()
        if found["status"] in ("completed", "stopped"):
            return dict(found)
        assert time.monotonic() < deadline, f"the run never ended: {found}"
        await asyncio.sleep(0.05)


async def a_run(
    api: httpx.AsyncClient, dataset_id: str, version: int, evaluators: list[str], name: str
) -> dict[str, Any]:
    """A run of the prompt `quiz` at `version`, one item at a time, once it ended."""
    target = {"prompt": {"name": "quiz", "version": version}, "model": "scripted:default"}
    body = {"dataset_id": dataset_id, "name": name, "target": target, "evaluators": evaluators}
    created = await api.post("/api/experiments", json=body | {"concurrency": 1})
    assert created.status_code == 201, created.text
    return await until_ended(api, created.json()["id"])


async def scene(server: LiveServer, api: httpx.AsyncClient) -> dict[str, Any]:
    """A dataset of three items, an exact evaluator, a prompt with two versions, and a run of
    each version (one item at a time, so the scripted answers go in order)."""
    dataset = (await api.post("/api/datasets", json={"name": "capitals"})).json()
    for question, answer in ITEMS:
        added = await api.post(
            f"/api/datasets/{dataset['id']}/items", json={"input": question, "expected": answer}
        )
        assert added.status_code == 201, added.text
    evaluator = await api.post(
        "/api/evaluators", json={"name": "exact", "kind": "exact", "config": {}}
    )
    assert evaluator.status_code == 201, evaluator.text
    made = await api.post("/api/prompts", json={"name": "quiz", "content": "Answer briefly."})
    assert made.status_code == 201, made.text
    again = await api.post("/api/prompts/quiz/versions", json={"content": "Answer in words."})
    assert again.status_code == 201, again.text
    runs = []
    for version, answers in ((1, ("Paris", "4", "blue")), (2, ("Paris", "four", "green"))):
        for answer in answers:
            server.script(answer)
        ran = await a_run(api, dataset["id"], version, [evaluator.json()["id"]], f"quiz v{version}")
        runs.append(ran)
    return {"dataset": dataset, "runs": runs}


async def test_the_item_the_second_version_gets_wrong_is_regressed(
    any_db_server: LiveServer,
) -> None:
    async with client_for(any_db_server) as api:
        made = await scene(any_db_server, api)
        first, second = (run["id"] for run in made["runs"])
        answer = await api.get("/api/compare", params={"ids": f"{first},{second}"})
        assert answer.status_code == 200, answer.text
        found = answer.json()
        Comparison.model_validate(found)  # the answer is the documented one
        assert found["dataset_id"] == made["dataset"]["id"]
        assert (found["baseline_id"], found["reference_id"]) == (None, first)
        summaries = {e["id"]: e["summary"] for e in found["experiments"]}
        assert summaries[first]["pass_rate"] == summaries[second]["pass_rate"] == 0.6667
        assert summaries[first]["scores"]["exact"]["count"] == 3
        assert (summaries[second]["regressed"], summaries[second]["improved"]) == (1, 1)
        assert summaries[first]["latency_p50"] is not None
        items = {i["expected"]: i for i in found["items"]}
        assert [i["expected"] for i in found["items"]] == ["Paris", "4", "green"]
        assert items["4"]["regressed"] == [second]
        assert items["4"]["results"][first]["output"] == "4"
        assert items["4"]["results"][second]["output"] == "four"
        assert items["4"]["results"][second]["passed"] is False
        assert items["4"]["results"][second]["trace_id"]
        assert items["green"]["improved"] == [second] and items["green"]["regressed"] == []
        assert items["Paris"]["regressed"] == items["Paris"]["improved"] == []
        assert items["4"]["input"]["messages"] == [{"role": "user", "content": "2+2?"}]

        # the second run becomes the baseline: it is the reference, the first is compared to it
        marked = await api.patch(
            f"/api/datasets/{made['dataset']['id']}", json={"baseline_id": second}
        )
        assert marked.status_code == 200, marked.text
        found = (await api.get("/api/compare", params={"ids": f"{first},{second}"})).json()
        assert (found["baseline_id"], found["reference_id"]) == (second, second)
        items = {i["expected"]: i for i in found["items"]}
        assert items["green"]["regressed"] == [first]
        assert items["4"]["improved"] == [first] and items["4"]["regressed"] == []


async def test_bad_id_lists_other_datasets_and_other_accounts_are_refused(
    live_server: LiveServer,
) -> None:
    async with client_for(live_server) as api:
        made = await scene(live_server, api)
        first, second = (run["id"] for run in made["runs"])
        for ids in (first, f"{first},{first}", ",".join([first] * 3), "a,b,c,d,e,f"):
            refused = await api.get("/api/compare", params={"ids": ids})
            assert refused.status_code == 422, ids
        missing = await api.get("/api/compare", params={"ids": f"{first},exp_nothing"})
        assert missing.status_code == 404

        other = (await api.post("/api/datasets", json={"name": "other"})).json()
        await api.post(f"/api/datasets/{other['id']}/items", json={"input": "Hi"})
        live_server.script("Hello")
        elsewhere = await a_run(api, other["id"], 1, [], "elsewhere")
        mixed = await api.get("/api/compare", params={"ids": f"{first},{elsewhere['id']}"})
        assert mixed.status_code == 422
        assert mixed.json()["error"]["code"] == "different_datasets"

        eve = await outsider(live_server)
        async with client_for(live_server, eve.token) as theirs:
            hidden = await theirs.get("/api/compare", params={"ids": f"{first},{second}"})
            assert hidden.status_code == 404
