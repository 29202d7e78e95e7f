"""Experiments on a real server: a dataset run against an agent that calls its tools (the demo
model and its calculator), each item a traced reply with its tool call, scored by
evaluators, progress on the account stream in order and under the concurrency limit;
a prompt version as the target; stop mid-run with replies held at the scripted model's
gates; 404 across accounts and 422 for what cannot run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from gapless.evals.judge import FORMAT
from gapless.generation import end_unstarted
from gapless.runtime import INTERRUPTED
from gapless.web.routes.experiments import Experiment, ExperimentDetail, ExperimentList
from tests.conftest import client_for
from tests.evals.conftest import outsider
from tests.support.scripted import Gate
from tests.support.server import LiveServer

DEADLINE = 90.0  # seconds an experiment may take on a loaded machine
ENDED = ("completed", "stopped")


async def dataset(http: httpx.AsyncClient, name: str, lines: list[dict[str, Any]]) -> str:
    created = await http.post("/api/datasets", json={"name": name})
    assert created.status_code == 201, created.text
    dataset_id = str(created.json()["id"])
    if lines:
        text = "\n".join(json.dumps(line) for line in lines)
        imported = await http.post(
            f"/api/datasets/{dataset_id}/import", json={"format": "jsonl", "text": text}
        )
        assert imported.status_code == 201, imported.text
    return dataset_id


async def evaluator(server: LiveServer, http: httpx.AsyncClient, name: str, kind: str) -> str:
    body = {"name": name, "kind": kind, "config": {}, "sample": 0}
    created = await http.post("/api/evaluators", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def agent(http: httpx.AsyncClient, **fields: Any) -> str:
    body = {"name": "calc", "instructions": "Use your tools.", "model": "demo:default", **fields}
    created = await http.post("/api/agents", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def start(
    http: httpx.AsyncClient, dataset_id: str, target: dict[str, Any], **fields: Any
) -> str:
    """A new experiment's id (201)."""
    body = {"dataset_id": dataset_id, "target": target, **fields}
    created = await http.post("/api/experiments", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


class Progress:
    """`experiment.updated` events of the account stream, followed from before the start."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.seen: list[dict[str, Any]] = []
        self.opened = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Progress:
        self.task = asyncio.create_task(self._follow())
        await asyncio.wait_for(self.opened.wait(), 10)
        return self

    async def __aexit__(self, *_: Any) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def _follow(self) -> None:
        async with aconnect_sse(self.http, "GET", "/api/events") as source:
            self.opened.set()
            async for sse in source.aiter_sse():
                if sse.event == "experiment.updated":
                    self.seen.append(json.loads(sse.data))

    async def until(self, ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first event that satisfies `ok` (waiting for it, up to the deadline)."""
        async with asyncio.timeout(DEADLINE):
            while True:
                for payload in self.seen:
                    if ok(payload):
                        return payload
                assert self.task is not None and not self.task.done(), self.task
                await asyncio.sleep(0.02)

    def of(self, experiment_id: str) -> list[dict[str, Any]]:
        return [p for p in self.seen if p["id"] == experiment_id]


def most_in_flight(payloads: list[dict[str, Any]]) -> int:
    """The most items running or scoring at once, replaying the events in order."""
    status: dict[str, str] = {}
    most = 0
    for payload in payloads:
        if "item" in payload:
            status[payload["item"]["id"]] = payload["item"]["status"]
        most = max(most, sum(s in ("running", "scoring") for s in status.values()))
    return most


async def test_an_experiment_runs_an_agent_with_its_tools_over_twenty_items_traced_and_scored(
    any_db_server: LiveServer,
) -> None:
    server = any_db_server
    async with client_for(server) as http:
        lines = [{"input": f"what is {n}*7?", "expected": str(n * 7)} for n in range(1, 21)]
        dataset_id = await dataset(http, "arithmetic", lines)
        contains = await evaluator(server, http, "has_answer", "contains")
        exact = await evaluator(server, http, "exact", "exact")
        agent_id = await agent(http, tools=["calculator"])
        async with Progress(http) as progress:
            created = await http.post(
                "/api/experiments",
                json={
                    "dataset_id": dataset_id,
                    "name": "calc v1",
                    "target": {"agent_id": agent_id},
                    "evaluators": [contains, exact],
                    "concurrency": 3,
                },
            )
            assert created.status_code == 201, created.text
            Experiment.model_validate(created.json())  # as documented
            experiment_id = created.json()["id"]
            assert created.json()["total"] == 20
            await progress.until(lambda p: p["id"] == experiment_id and p["status"] in ENDED)
        detail = (await http.get(f"/api/experiments/{experiment_id}")).json()
        ExperimentDetail.model_validate(detail)
        assert (detail["status"], detail["done"], detail["failed"]) == ("completed", 20, 0)
        assert detail["target"] == {"agent_id": agent_id}
        items = detail["items"]
        assert [i["position"] for i in items] == list(range(20))
        await server.arun(server.runtime.recorder.flush())
        for n, item in enumerate(items, start=1):
            assert item["status"] == "done" and item["attempt"] == 1, item
            assert item["input"]["messages"] == [{"role": "user", "content": f"what is {n}*7?"}]
            assert item["expected"] == str(n * 7)
            assert item["output"].endswith(f"The result is {n * 7}."), item["output"]
            assert item["tokens"] and item["duration_ms"] is not None
            verdicts = {s["name"]: s["passed"] for s in item["scores"]}
            assert verdicts == {"has_answer": True, "exact": False}, item["scores"]
            trace = (await http.get(f"/api/traces/{item['trace_id']}")).json()
            assert trace["reply_id"] == item["reply_id"] and trace["chat_id"] == item["chat_id"]
            tools = [o for o in trace["observations"] if o["kind"] == "tool"]
            assert [o["name"] for o in tools] == ["execute_tool calculator"], trace["observations"]
            assert tools[0]["status"] == "complete"
            scored = (await http.get("/api/scores", params={"trace_id": item["trace_id"]})).json()
            stored = {s["name"]: s["value"] for s in scored["scores"]}
            assert stored == {"has_answer": True, "exact": False}, scored
            assert {s["source"] for s in scored["scores"]} == {"evaluator"}

        events = progress.of(experiment_id)
        numbers = [p["progress"] for p in events]
        assert numbers == sorted(set(numbers)), numbers  # strictly increasing, none repeated
        assert numbers[-1] == detail["progress"]
        assert events[-1]["status"] == "completed" and events[-1]["done"] == 20
        assert most_in_flight(events) == 3  # the limit, reached and never passed
        done = [p["done"] for p in events]
        assert done == sorted(done)
        ended = [p["item"]["id"] for p in events if p.get("item", {}).get("status") == "done"]
        assert sorted(ended) == sorted(i["id"] for i in items)  # each item's result once

        listed = (await http.get("/api/chats")).json()["chats"]
        assert not {c["id"] for c in listed} & {i["chat_id"] for i in items}
        runs = (await http.get("/api/experiments", params={"dataset_id": dataset_id})).json()
        ExperimentList.model_validate(runs)
        assert [e["id"] for e in runs["experiments"]] == [experiment_id]


async def test_a_prompt_version_runs_with_each_items_variables_and_its_traces_name_it(
    live_server: LiveServer,
) -> None:
    server = live_server
    async with client_for(server) as http:
        body = {
            "name": "greeter",
            "content": "Greet {{ who }} warmly.",
            "labels": ["production"],
            "config": {"temperature": 0.3, "max_tokens": 64},
        }
        assert (await http.post("/api/prompts", json=body)).status_code == 201
        lines = [
            {"input": {"messages": [{"role": "user", "content": "hi"}], "variables": {"who": w}}}
            for w in ("Ada", "Linus")
        ] + [{"input": {"messages": [{"role": "user", "content": "hi"}]}}]  # no variable
        dataset_id = await dataset(http, "greetings", lines)
        server.script("Hello Ada!")
        server.script("Hello Linus!")
        async with Progress(http) as progress:
            created = await http.post(
                "/api/experiments",
                json={
                    "dataset_id": dataset_id,
                    "target": {"prompt": {"name": "greeter"}, "model": "scripted:default"},
                    "concurrency": 1,
                },
            )
            assert created.status_code == 201, created.text
            experiment_id = created.json()["id"]
            assert created.json()["target"] == {
                "prompt": {"name": "greeter", "version": 1},
                "model": "scripted:default",
            }
            await progress.until(lambda p: p["id"] == experiment_id and p["status"] in ENDED)
        detail = (await http.get(f"/api/experiments/{experiment_id}")).json()
        assert (detail["status"], detail["done"], detail["failed"]) == ("completed", 3, 1)
        first, second, third = detail["items"]
        assert (first["output"], second["output"]) == ("Hello Ada!", "Hello Linus!")
        assert third["status"] == "failed" and third["error"]["code"] == "missing_variable"
        assert third["reply_id"] is None  # it never ran
        assert [p.system for p in server.provider.prompts] == [
            "Greet Ada warmly.",
            "Greet Linus warmly.",
        ]
        # the version's config is the run's settings (no agent to take them from)
        assert {(p.temperature, p.max_tokens) for p in server.provider.prompts} == {(0.3, 64)}
        await server.arun(server.runtime.recorder.flush())
        trace = (await http.get(f"/api/traces/{first['trace_id']}")).json()
        assert (trace["prompt_name"], trace["prompt_version"]) == ("greeter", 1)
        state = (await http.get(f"/api/chats/{first['chat_id']}")).json()
        assert state["chat"]["experiment_id"] == experiment_id
        assert state["chat"]["system_prompt"] == "Greet Ada warmly."
        assert [m["role"] for m in state["messages"]] == ["user", "assistant"]
        assert state["messages"][1]["prompt"] == {"name": "greeter", "version": 1}
        # deleting the dataset takes its runs and their chats, which no list shows
        assert (await http.delete(f"/api/datasets/{dataset_id}")).status_code == 204
        assert (await http.get(f"/api/experiments/{experiment_id}")).status_code == 404
        assert (await http.get(f"/api/chats/{first['chat_id']}")).status_code == 404


async def test_stop_mid_run_stops_pending_items_and_cancels_running_replies(
    live_server: LiveServer,
) -> None:
    server = live_server
    gates = [Gate(), Gate()]
    for gate in gates:
        server.script("Partial ", gate, "answer.")
    try:
        async with client_for(server) as http:
            lines = [{"input": f"question {n}", "expected": "answer"} for n in range(6)]
            dataset_id = await dataset(http, "held", lines)
            agent_id = await agent(http, model="scripted:default")
            async with Progress(http) as progress:
                experiment_id = await start(http, dataset_id, {"agent_id": agent_id}, concurrency=2)
                for gate in gates:
                    await gate.wait_reached()  # two items run, held mid-reply
                busy = await http.delete(f"/api/experiments/{experiment_id}")
                assert busy.status_code == 409, busy.text
                stopped = await http.post(f"/api/experiments/{experiment_id}/stop")
                assert stopped.status_code == 200, stopped.text
                await progress.until(lambda p: p["id"] == experiment_id and p["status"] in ENDED)
            await server.adrain()
            detail = (await http.get(f"/api/experiments/{experiment_id}")).json()
            assert (detail["status"], detail["done"]) == ("stopped", 0)
            assert detail["ended_at"] is not None
            statuses = [i["status"] for i in detail["items"]]
            assert statuses == ["stopped"] * 6
            held, never = detail["items"][:2], detail["items"][2:]
            for item in held:
                reply = await server.amessage(item["reply_id"])
                assert reply["status"] == "cancelled" and reply["content"] == "Partial "
            assert all(i["reply_id"] is None and i["chat_id"] is None for i in never)
            assert len(server.provider.prompts) == 2  # no item ran after the stop
            again = await http.post(f"/api/experiments/{experiment_id}/stop")
            assert again.json()["status"] == "stopped"  # idempotent
            assert progress.of(experiment_id)[-1]["status"] == "stopped"
            gone = await http.delete(f"/api/experiments/{experiment_id}")
            assert gone.status_code == 204, gone.text
            assert (await http.get(f"/api/experiments/{experiment_id}")).status_code == 404
            assert (await http.get(f"/api/chats/{held[0]['chat_id']}")).status_code == 404
    finally:
        for gate in gates:
            gate.set()


async def test_another_accounts_experiment_is_404_and_what_cannot_run_is_422(
    live_server: LiveServer,
) -> None:
    server = live_server
    eve = await outsider(server)
    async with client_for(server) as http, client_for(server, eve.token) as other:
        empty = await dataset(http, "empty", [])
        dataset_id = await dataset(http, "one", [{"input": "what is 1+1?", "expected": "2"}])
        agent_id = await agent(http, tools=["calculator"])
        run = {"dataset_id": dataset_id, "target": {"agent_id": agent_id}}

        async def refused(body: dict[str, Any], code: str) -> None:
            answer = await http.post("/api/experiments", json=body)
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"]["code"] == code, answer.text

        await refused({**run, "dataset_id": empty}, "empty_dataset")
        await refused({**run, "target": {"agent_id": "agt_nope"}}, "unknown_agent")
        await refused({**run, "target": {"agent_id": agent_id, "model": "nope:x"}}, "unknown_model")
        await refused({**run, "evaluators": ["evl_nope"]}, "unknown_evaluator")
        await refused(
            {**run, "target": {"prompt": {"name": "nope"}, "model": "demo:default"}},
            "unknown_prompt",
        )
        assert (
            await http.post("/api/experiments", json={**run, "concurrency": 21})
        ).status_code == 422
        assert (await http.get("/api/experiments")).json()["experiments"] == []  # nothing written

        experiment_id = await start(http, dataset_id, {"agent_id": agent_id})
        for method, path in (
            ("GET", f"/api/experiments/{experiment_id}"),
            ("POST", f"/api/experiments/{experiment_id}/stop"),
            ("DELETE", f"/api/experiments/{experiment_id}"),
        ):
            answer = await other.request(method, path)
            assert answer.status_code == 404, (method, path, answer.text)
        assert (await other.get("/api/experiments")).json()["experiments"] == []
        theirs = await other.post("/api/experiments", json=run)  # our dataset, their call
        assert theirs.status_code == 404, theirs.text
        mine = await http.get(f"/api/experiments/{experiment_id}")
        assert mine.status_code == 200


async def test_a_tool_call_awaiting_approval_fails_its_item_instead_of_holding_the_run(
    live_server: LiveServer,
) -> None:
    server = live_server
    async with client_for(server) as http:
        dataset_id = await dataset(http, "asks", [{"input": "what is 2*3?", "expected": "6"}])
        agent_id = await agent(http, tools=["calculator"], approval={"calculator": "always"})
        async with Progress(http) as progress:
            experiment_id = await start(http, dataset_id, {"agent_id": agent_id})
            await progress.until(lambda p: p["id"] == experiment_id and p["status"] in ENDED)
        detail = (await http.get(f"/api/experiments/{experiment_id}")).json()
        assert (detail["status"], detail["done"], detail["failed"]) == ("completed", 1, 1)
        (item,) = detail["items"]
        assert item["status"] == "failed" and item["error"]["code"] == "approval_required"
        reply = await server.amessage(item["reply_id"])
        assert reply["status"] == "failed" and reply["error"]["code"] == "approval_required"


async def test_an_interrupted_reply_is_run_again_at_most_three_times(
    live_server: LiveServer,
) -> None:
    """What the reaper does to the reply of a worker that died (ended `interrupted`, its run
    fenced), done here to a run held at a gate: the item gets a new reply in its chat."""
    server = live_server
    gates = [Gate() for _ in range(4)]
    server.script("Half ", gates[0])  # the first item's first attempt
    server.script("Done.")  # its second
    for gate in gates[1:]:
        server.script("Half ", gate)  # the second item's three attempts

    async def current(http: httpx.AsyncClient, experiment_id: str) -> dict[str, Any]:
        detail = (await http.get(f"/api/experiments/{experiment_id}")).json()
        return next(i for i in detail["items"] if i["status"] == "running")

    try:
        async with client_for(server) as http:
            lines = [{"input": f"question {n}", "expected": "Done."} for n in range(2)]
            dataset_id = await dataset(http, "fragile", lines)
            agent_id = await agent(http, model="scripted:default")
            async with Progress(http) as progress:
                experiment_id = await start(http, dataset_id, {"agent_id": agent_id}, concurrency=1)
                for gate in gates:
                    await gate.wait_reached()
                    held = await current(http, experiment_id)
                    await server.arun(
                        end_unstarted(
                            server.runtime.context, held["reply_id"], "failed", INTERRUPTED
                        )
                    )
                await progress.until(lambda p: p["id"] == experiment_id and p["status"] in ENDED)
            detail = (await http.get(f"/api/experiments/{experiment_id}")).json()
            assert (detail["status"], detail["done"], detail["failed"]) == ("completed", 2, 1)
            first, second = detail["items"]
            assert (first["status"], first["attempt"], first["output"]) == ("done", 2, "Done.")
            assert (second["status"], second["attempt"]) == ("failed", 3)
            assert second["error"]["code"] == "interrupted"
            for item, ends in ((first, ["failed", "complete"]), (second, ["failed"] * 3)):
                state = (await http.get(f"/api/chats/{item['chat_id']}")).json()
                replies = [m for m in state["messages"] if m["role"] == "assistant"]
                assert [m["status"] for m in replies] == ends
                assert replies[-1]["id"] == item["reply_id"]
                assert len({m["parent_id"] for m in replies}) == 1  # each answers the question
            assert len(server.provider.prompts) == 5  # no attempt ran twice
    finally:
        for gate in gates:
            gate.set()


async def test_a_judge_keeps_the_rubric_its_label_named_when_the_run_started(
    live_server: LiveServer,
) -> None:
    server = live_server
    gate = Gate()
    verdict = json.dumps({"score": 1, "explanation": "fine"})
    for step in (("answer one",), (verdict,), ("answer ", gate, "two"), (verdict,)):
        server.script(*step)  # one item at a time: its reply, then its judge's call
    try:
        async with client_for(server) as http:
            body = {"name": "rubric", "content": "Rubric one: {{ output }}"}
            body["labels"] = ["production"]
            assert (await http.post("/api/prompts", json=body)).status_code == 201
            config = {"prompt": {"name": "rubric"}, "model": "scripted:default"}
            judge = await http.post(
                "/api/evaluators", json={"name": "judged", "kind": "judge", "config": config}
            )
            assert judge.status_code == 201, judge.text
            lines = [{"input": "first", "expected": "a"}, {"input": "second", "expected": "b"}]
            dataset_id = await dataset(http, "judged", lines)
            agent_id = await agent(http, model="scripted:default")
            async with Progress(http) as progress:
                experiment_id = await start(
                    http,
                    dataset_id,
                    {"agent_id": agent_id},
                    evaluators=[judge.json()["id"]],
                    concurrency=1,
                )
                await gate.wait_reached()  # the first item is judged, the second is running
                moved = await http.post(
                    "/api/prompts/rubric/versions",
                    json={"content": "Rubric two: {{ output }}", "labels": ["production"]},
                )
                assert moved.status_code == 201, moved.text
                gate.set()
                await progress.until(lambda p: p["id"] == experiment_id and p["status"] in ENDED)
    finally:
        gate.set()
    rubrics = [p.turns[0].content for p in server.provider.prompts if p.system == FORMAT]
    assert rubrics == ["Rubric one: answer one", "Rubric one: answer two"]
    later = await http_rubric(server)
    assert later == "Rubric two: x"  # new runs and tries take the label as it is now


async def http_rubric(server: LiveServer) -> str:
    async with client_for(server) as http:
        rendered = await http.post(
            "/api/prompts/rubric/render", json={"variables": {"output": "x"}}
        )
        assert rendered.status_code == 200, rendered.text
        return str(rendered.json()["text"])
