"""Experiments when something goes away, fails or takes long mid-run, on a real server: a
reply deleted under a scoring claim, an evaluator or an agent deleted while an item runs, a
dataset item deleted while the run is being created, a judge within its time not taken
over, a sweep's judge not holding the janitor, a database blip while scores are written, a
stop between an ending's reads, a dead scorer's stored scores kept. Interleavings are
forced (gates on the scripted model, hooks on a read or a write, claims written as a dead
process leaves them), never timed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from gapless.db import datasets as db_datasets
from gapless.db import evaluators as db_evaluators
from gapless.db import experiment_moves as moves
from gapless.db import experiments as db_experiments
from gapless.db.rows import aware, now
from gapless.db.tables import experiment_items
from gapless.evals import runs, scoring
from gapless.evals.judge import CALL_SECONDS
from gapless.generation import end_unstarted
from gapless.runtime import INTERRUPTED
from tests.conftest import client_for
from tests.evals.test_experiments import ENDED, Progress, agent, dataset, evaluator, start
from tests.support.scripted import Gate
from tests.support.server import LiveServer


def set_item(server: LiveServer, item_id: str, **values: Any) -> Awaitable[None]:
    """Write an item's row as a process that died mid-move would have left it."""

    async def write() -> None:
        async with server.runtime.engine.begin() as conn:
            await conn.execute(
                experiment_items.update().where(experiment_items.c.id == item_id).values(**values)
            )

    return server.arun(write())


async def claim_of(server: LiveServer, item_id: str) -> tuple[str, datetime | None]:
    """An item's status and claim as stored (the API does not show the claim)."""

    async def read() -> tuple[str, datetime | None]:
        query = sa.select(experiment_items.c.status, experiment_items.c.claimed_at).where(
            experiment_items.c.id == item_id
        )
        async with server.runtime.engine.connect() as conn:
            status, claimed_at = (await conn.execute(query)).one()
        return status, aware(claimed_at)

    return await server.arun(read())


def sweep(server: LiveServer) -> Awaitable[None]:
    runtime = server.runtime
    return server.arun(runs.sweep(runtime.context, runtime.runner))


async def test_a_scoring_claim_whose_reply_was_deleted_fails_the_item_instead_of_holding_it(
    any_db_server: LiveServer,
) -> None:
    """A process died while scoring; the item's chat was deleted since: the sweep that takes
    the claim over ends the item (it used to raise on every sweep, the item scoring forever
    and the run never completing)."""
    server = any_db_server
    gate = Gate()
    server.script("Held ", gate, "answer.")
    server.script("Second.")
    try:
        async with client_for(server) as http:
            lines = [{"input": f"question {n}", "expected": "answer"} for n in range(2)]
            dataset_id = await dataset(http, "vanishing", lines)
            agent_id = await agent(http, model="scripted:default")
            experiment_id = await start(http, dataset_id, {"agent_id": agent_id}, concurrency=1)
            await gate.wait_reached()
            detail = (await http.get(f"/api/experiments/{experiment_id}")).json()
            held = detail["items"][0]
            stale = now() - runs.STALE - timedelta(seconds=1)
            await set_item(server, held["id"], status="scoring", claimed_at=stale)
            gate.set()
            await server.adrain()  # the reply ends; its hook finds the item claimed
            deleted = await http.delete(f"/api/chats/{held['chat_id']}")
            assert deleted.status_code == 204, deleted.text
            await sweep(server)  # takes the claim over: the item fails, the next one starts
            await server.adrain()
            detail = (await http.get(f"/api/experiments/{experiment_id}")).json()
            assert (detail["status"], detail["done"], detail["failed"]) == ("completed", 2, 1)
            first, second = detail["items"]
            assert first["status"] == "failed" and first["error"]["code"] == "reply_deleted"
            assert (second["status"], second["output"]) == ("done", "Second.")
    finally:
        gate.set()


async def test_an_evaluator_deleted_mid_run_is_an_error_result_not_a_missing_one(
    live_server: LiveServer,
) -> None:
    """Its item does not pass on the evaluators that are left: one result per evaluator the
    run was started with, the deleted one's an error."""
    server = live_server
    gate = Gate()
    server.script("Held ", gate, "answer.")
    try:
        async with client_for(server) as http:
            dataset_id = await dataset(http, "judged", [{"input": "q", "expected": "answer"}])
            contains = await evaluator(server, http, "has_answer", "contains")
            exact = await evaluator(server, http, "exact", "exact")
            agent_id = await agent(http, model="scripted:default")
            async with Progress(http) as progress:
                experiment_id = await start(
                    http, dataset_id, {"agent_id": agent_id}, evaluators=[contains, exact]
                )
                await gate.wait_reached()
                assert (await http.delete(f"/api/evaluators/{exact}")).status_code == 204
                gate.set()
                await progress.until(lambda p: p["id"] == experiment_id and p["status"] in ENDED)
            (item,) = (await http.get(f"/api/experiments/{experiment_id}")).json()["items"]
            assert item["status"] == "done"
            results = {s["evaluator_id"]: s for s in item["scores"]}
            assert list(results) == [contains, exact]
            assert results[contains]["passed"] is True
            gone = results[exact]
            assert gone["value"] is None and gone["passed"] is None
            assert "deleted" in gone["error"], gone
    finally:
        gate.set()


async def test_an_item_deleted_while_the_run_is_created_is_not_run(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run takes the dataset's items under its row lock, as a delete decides under it
    whether an item was used: an item deleted after the run listed them is not in it (it
    used to run as an item without input, a reply to nothing)."""
    server = live_server
    listed = db_datasets.list_items
    deleted: list[str] = []

    async def list_then_delete(engine: Any, dataset_id: str, *args: Any) -> Any:
        found = await listed(engine, dataset_id, *args)
        if found and not deleted:  # another request deletes the first item right after
            deleted.append(found[0]["id"])
            assert await db_datasets.remove_item(engine, dataset_id, found[0]["id"]) is None
        return found

    monkeypatch.setattr(db_datasets, "list_items", list_then_delete)
    async with client_for(server) as http:
        lines = [{"input": f"what is {n}*2?", "expected": str(2 * n)} for n in range(2)]
        dataset_id = await dataset(http, "racy", lines)
        agent_id = await agent(http, tools=["calculator"])
        async with Progress(http) as progress:
            experiment_id = await start(http, dataset_id, {"agent_id": agent_id})
            await progress.until(lambda p: p["id"] == experiment_id and p["status"] in ENDED)
        detail = (await http.get(f"/api/experiments/{experiment_id}")).json()
        assert deleted and deleted[0] not in {i["item_id"] for i in detail["items"]}
        assert (detail["total"], detail["done"], detail["failed"]) == (1, 1, 0)
        (item,) = detail["items"]
        assert item["input"]["messages"] == [{"role": "user", "content": "what is 1*2?"}]


async def test_a_scoring_claim_within_a_judges_longest_call_is_not_taken_over(
    live_server: LiveServer,
) -> None:
    """A judge may answer in up to `judge.CALL_SECONDS`: a claim younger than that is a
    scorer at work, not a dead one (taking it over ran the judge twice, and the item's
    result could disagree with the score stored first)."""
    server = live_server
    gate = Gate()
    server.script("Held ", gate, "answer.")
    try:
        async with client_for(server) as http:
            dataset_id = await dataset(http, "slow judge", [{"input": "q", "expected": "a"}])
            agent_id = await agent(http, model="scripted:default")
            experiment_id = await start(http, dataset_id, {"agent_id": agent_id})
            await gate.wait_reached()
            (held,) = (await http.get(f"/api/experiments/{experiment_id}")).json()["items"]
            busy = now() - timedelta(seconds=CALL_SECONDS - 5)  # a judge still within its time
            await set_item(server, held["id"], status="scoring", claimed_at=busy)
            gate.set()
            await server.adrain()
            await sweep(server)
            status, claimed_at = await claim_of(server, held["id"])
            assert status == "scoring"  # left to the scorer at work
            assert claimed_at is not None and abs((claimed_at - busy).total_seconds()) < 1
    finally:
        gate.set()


async def test_the_janitors_sweep_does_not_wait_for_a_judge_it_took_over(
    live_server: LiveServer,
) -> None:
    """The janitor that sweeps experiments also reaps dead runs: a sweep that takes over a
    stale scoring claim scores in a task of its own, so the janitor's next round (and its
    reaping) never waits on a judge's call (up to `judge.CALL_SECONDS`)."""
    server = live_server
    held, judging = Gate(), Gate()
    server.script("Held ", held, "answer.")
    server.script(judging, '{"score": 1, "explanation": "Right."}')
    try:
        async with client_for(server) as http:
            rubric = {"name": "rubric", "labels": ["production"], "content": "{{ output }}?"}
            assert (await http.post("/api/prompts", json=rubric)).status_code == 201
            config = {"prompt": {"name": "rubric"}, "model": "scripted:default"}
            body = {"name": "judged", "kind": "judge", "config": config}
            created = await http.post("/api/evaluators", json=body)
            assert created.status_code == 201, created.text
            dataset_id = await dataset(http, "judged", [{"input": "q", "expected": "a"}])
            agent_id = await agent(http, model="scripted:default")
            async with Progress(http) as progress:
                experiment_id = await start(
                    http, dataset_id, {"agent_id": agent_id}, evaluators=[created.json()["id"]]
                )
                await held.wait_reached()
                detail = (await http.get(f"/api/experiments/{experiment_id}")).json()
                stale = now() - runs.STALE - timedelta(seconds=1)
                await set_item(server, detail["items"][0]["id"], status="scoring", claimed_at=stale)
                held.set()
                await server.adrain()
                runtime = server.runtime
                async with asyncio.timeout(20):  # the judge is held far longer: the bug
                    await server.arun(runtime.sweep())
                await judging.wait_reached()  # the judge runs, in the background
                judging.set()
                await progress.until(lambda p: p["id"] == experiment_id and p["status"] in ENDED)
            (item,) = (await http.get(f"/api/experiments/{experiment_id}")).json()["items"]
            assert item["scores"][0]["value"] == 1.0
    finally:
        held.set()
        judging.set()


async def test_a_database_blip_while_storing_scores_does_not_fail_the_item(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scores' write is retried like a reply's final write: a database away for a moment
    used to end the item `failed` (`scoring_failed`) for good, a failure its run never had."""
    server = live_server
    written = db_evaluators.add_scores
    failures = [ConnectionError("the database is away for a moment")]

    async def away_once(engine: Any, rows: Any) -> None:
        if failures:
            raise failures.pop()
        await written(engine, rows)

    monkeypatch.setattr(db_evaluators, "add_scores", away_once)
    async with client_for(server) as http:
        dataset_id = await dataset(http, "blip", [{"input": "what is 2*3?", "expected": "6"}])
        contains = await evaluator(server, http, "has_answer", "contains")
        agent_id = await agent(http, tools=["calculator"])
        async with Progress(http) as progress:
            experiment_id = await start(
                http, dataset_id, {"agent_id": agent_id}, evaluators=[contains]
            )
            await progress.until(lambda p: p["id"] == experiment_id and p["status"] in ENDED)
        (item,) = (await http.get(f"/api/experiments/{experiment_id}")).json()["items"]
        assert not failures  # the write did fail once
        assert item["status"] == "done" and item["error"] is None, item
        scored = (await http.get("/api/scores", params={"trace_id": item["trace_id"]})).json()
        assert [s["name"] for s in scored["scores"]] == ["has_answer"]


async def test_an_interrupted_item_whose_agent_was_deleted_fails_instead_of_running_bare(
    live_server: LiveServer,
) -> None:
    """A new attempt of an agent's item needs the agent: without it the reply would run as a
    bare model call (no instructions, no tools) and be scored as the agent's answer."""
    server = live_server
    gate = Gate()
    server.script("Half ", gate)
    try:
        async with client_for(server) as http:
            dataset_id = await dataset(http, "orphan", [{"input": "q", "expected": "a"}])
            agent_id = await agent(http, model="scripted:default")
            async with Progress(http) as progress:
                experiment_id = await start(http, dataset_id, {"agent_id": agent_id})
                await gate.wait_reached()
                (held,) = (await http.get(f"/api/experiments/{experiment_id}")).json()["items"]
                assert (await http.delete(f"/api/agents/{agent_id}")).status_code == 204
                context = server.runtime.context
                await server.arun(end_unstarted(context, held["reply_id"], "failed", INTERRUPTED))
                await progress.until(lambda p: p["id"] == experiment_id and p["status"] in ENDED)
            (item,) = (await http.get(f"/api/experiments/{experiment_id}")).json()["items"]
            assert item["status"] == "failed" and item["error"]["code"] == "unknown_agent", item
            assert (item["attempt"], item["reply_id"]) == (1, held["reply_id"])
            assert len(server.provider.prompts) == 1  # no attempt ran without the agent
    finally:
        gate.set()


async def test_a_reply_stopped_while_its_item_ends_is_a_stopped_item_not_a_failed_one(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop lands while a hook or sweep ends the item (forced between its reads): the stop
    marks the run `stopping` before it cancels the replies, so the item is seen cancelled by
    a stop (`stopped`), not failed by a cancel (which counted it in `done` and `failed`)."""
    server = live_server
    gate = Gate()
    server.script("Half ", gate, "answer.")
    read = db_experiments.get_experiment
    armed: list[str] = []

    async def read_then_stop(engine: Any, experiment_id: str) -> Any:
        found = await read(engine, experiment_id)
        if armed:  # the stop, between the ending's reads
            reply_id = armed.pop()
            context = server.runtime.context
            await moves.stop(engine, experiment_id, runs.announcer(context))
            await end_unstarted(context, reply_id, "cancelled", None)
        return found

    try:
        async with client_for(server) as http:
            dataset_id = await dataset(http, "stopped", [{"input": "q", "expected": "a"}])
            agent_id = await agent(http, model="scripted:default")
            experiment_id = await start(http, dataset_id, {"agent_id": agent_id})
            await gate.wait_reached()
            (item,) = (await http.get(f"/api/experiments/{experiment_id}")).json()["items"]
            monkeypatch.setattr(db_experiments, "get_experiment", read_then_stop)
            armed.append(item["reply_id"])
            runtime = server.runtime
            await server.arun(runs.ended(runtime.context, runtime.runner, item))
            monkeypatch.setattr(db_experiments, "get_experiment", read)
            gate.set()
            await server.adrain()
            await sweep(server)  # whatever the hook left, the sweep ends
            detail = (await http.get(f"/api/experiments/{experiment_id}")).json()
            assert not armed
            assert (detail["status"], detail["done"], detail["failed"]) == ("stopped", 0, 0)
            assert detail["items"][0]["status"] == "stopped"
    finally:
        gate.set()


async def test_a_take_over_keeps_the_scores_a_dead_scorer_stored_and_calls_no_judge_again(
    live_server: LiveServer,
) -> None:
    """A scorer died after storing its scores, before the item's result: the sweep that takes
    the claim over answers the item with those scores (one result per item, the same as on
    its trace) instead of asking the judge again for a verdict that may differ."""
    server = live_server
    gate = Gate()
    server.script("Held ", gate, "answer.")
    server.script('{"score": 0.1, "explanation": "Asked again."}')  # must not be asked
    try:
        async with client_for(server) as http:
            rubric = {"name": "rubric", "labels": ["production"], "content": "{{ output }}?"}
            assert (await http.post("/api/prompts", json=rubric)).status_code == 201
            config = {"prompt": {"name": "rubric"}, "model": "scripted:default", "pass": 0.5}
            body = {"name": "judged", "kind": "judge", "config": config}
            judge_id = (await http.post("/api/evaluators", json=body)).json()["id"]
            dataset_id = await dataset(http, "died", [{"input": "q", "expected": "a"}])
            agent_id = await agent(http, model="scripted:default")
            experiment_id = await start(
                http, dataset_id, {"agent_id": agent_id}, evaluators=[judge_id]
            )
            await gate.wait_reached()
            detail = (await http.get(f"/api/experiments/{experiment_id}")).json()
            (item,), account_id = detail["items"], detail["account_id"]
            stale = now() - runs.STALE - timedelta(seconds=1)
            await set_item(server, item["id"], status="scoring", claimed_at=stale)
            gate.set()
            await server.adrain()
            first = {  # what the dead scorer stored
                "evaluator_id": judge_id,
                "name": "judged",
                "data_type": "numeric",
                "value": 0.9,
                "label": "good",
                "explanation": "Asked first.",
                "passed": True,
                "error": None,
            }
            await server.arun(
                scoring.store(
                    server.runtime.engine,
                    account_id,
                    [first],
                    key=item["id"],
                    trace_id=item["trace_id"],
                    chat_id=item["chat_id"],
                    message_id=item["reply_id"],
                )
            )
            asked = len(server.provider.prompts)
            await sweep(server)
            (item,) = (await http.get(f"/api/experiments/{experiment_id}")).json()["items"]
            assert item["status"] == "done"
            assert item["scores"] == [first]
            assert len(server.provider.prompts) == asked  # no judge asked again
    finally:
        gate.set()


async def test_a_sweep_between_a_runs_creation_and_its_first_event_keeps_the_events_in_order(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process's sweep may see a run the moment it is written: the run's first event
    is still the first (its start is a move under the row lock, by whoever comes first), so
    progress on the account stream only goes up."""
    server = live_server
    created = db_experiments.create_experiment

    async def create_then_sweep(engine: Any, values: Any) -> Any:
        found = await created(engine, values)
        runtime = server.runtime
        await runs.sweep(runtime.context, runtime.runner)  # as a janitor elsewhere would
        return found

    monkeypatch.setattr(db_experiments, "create_experiment", create_then_sweep)
    async with client_for(server) as http:
        lines = [{"input": f"what is {n}*2?", "expected": str(2 * n)} for n in range(3)]
        dataset_id = await dataset(http, "swept", lines)
        agent_id = await agent(http, tools=["calculator"])
        async with Progress(http) as progress:
            experiment_id = await start(http, dataset_id, {"agent_id": agent_id})
            await progress.until(lambda p: p["id"] == experiment_id and p["status"] in ENDED)
        numbers = [p["progress"] for p in progress.of(experiment_id)]
        assert numbers == list(range(1, len(numbers) + 1)), numbers
        detail = (await http.get(f"/api/experiments/{experiment_id}")).json()
        assert (detail["status"], detail["done"], detail["progress"]) == (
            "completed",
            3,
            numbers[-1],
        )
