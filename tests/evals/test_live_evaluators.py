"""Evaluators on live traces, on a real server: a reply is scored by the account's evaluators
whose sample and filter take it (the judge too, its call traced), each score once on the
reply's trace; replies of experiments, failed replies and other accounts are left alone;
an evaluator error stores nothing; a low score puts the trace in a review queue."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from gapless.db.tables import chats
from gapless.evals import live
from gapless.observe.recorder import trace_id_of
from gapless.providers.base import Usage
from tests.conftest import client_for
from tests.evals.conftest import outsider
from tests.support.scripted import Fail
from tests.support.server import LiveServer
from tests.test_streaming import send, start_chat

PRICES = {"scripted:default": (1.0, 2.0)}


@pytest.fixture
def priced(make_live_server: Any) -> LiveServer:
    server: LiveServer = make_live_server(settings={"prices": PRICES})
    return server


@pytest.fixture(params=["sqlite", "postgresql"])
def priced_any(request: pytest.FixtureRequest, make_live_server: Any) -> LiveServer:
    """A priced server on each database engine."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else ""
    server: LiveServer = make_live_server(database_url=url, settings={"prices": PRICES})
    return server


async def evaluator(api: httpx.AsyncClient, name: str, kind: str, **fields: Any) -> str:
    created = await api.post("/api/evaluators", json={"name": name, "kind": kind, **fields})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def answered(
    server: LiveServer,
    api: httpx.AsyncClient,
    chat_id: str,
    *script: Any,
    question: str = "What is the capital of France?",
) -> str:
    """A reply that ran to its end, its after-reply hook (live scoring) included."""
    server.script(*script)
    reply_id = await send(api, chat_id, question)
    await server.adrain()
    return reply_id


async def scores_of(api: httpx.AsyncClient, reply_id: str) -> dict[str, dict[str, Any]]:
    found = await api.get("/api/scores", params={"trace_id": trace_id_of(reply_id)})
    return {s["name"]: s for s in found.json()["scores"]}


async def test_a_reply_is_scored_by_the_live_evaluators_that_take_it(
    priced_any: LiveServer,
) -> None:
    priced = priced_any
    async with client_for(priced) as api:
        chat_id = await start_chat(api)
        paris = await evaluator(
            api, "says paris", "contains", config={"value": "paris"}, sample=1.0
        )
        cheap = await evaluator(api, "cheap", "cost", config={"max": 0.01}, sample=1.0)
        await evaluator(api, "fast", "latency", config={"max_ms": 60_000}, sample=1.0)
        await evaluator(api, "other model", "exact", sample=1.0, filter={"model": "demo:echo"})
        await evaluator(api, "experiments only", "json")  # sample 0
        await evaluator(api, "other prompt", "json", sample=1.0, filter={"prompt_name": "support"})
        reply_id = await answered(
            priced, api, chat_id, "It is Paris.", Usage(input_tokens=1000, output_tokens=100)
        )

        found = await scores_of(api, reply_id)
        assert set(found) == {"says paris", "cheap", "fast"}
        says = found["says paris"]
        assert says["value"] is True and says["data_type"] == "boolean"
        assert says["source"] == "evaluator" and says["author"] == paris
        assert says["comment"] == "the output contains 'paris'"
        assert says["chat_id"] == chat_id and says["message_id"] == reply_id
        assert found["cheap"]["author"] == cheap
        assert found["cheap"]["comment"] == "$0.0012 ≤ $0.01"

        # the hook once more (a second call, or another process): nothing new is stored
        await priced.arun(live.reply_ended(priced.runtime.context, reply_id))
        again = (await api.get("/api/scores", params={"trace_id": trace_id_of(reply_id)})).json()
        assert len(again["scores"]) == 3


async def test_an_evaluator_error_a_failed_reply_and_an_experiments_reply_store_nothing(
    live_server: LiveServer,
) -> None:
    async with client_for(live_server) as api:
        chat_id = await start_chat(api)
        await evaluator(api, "cheap", "cost", config={"max": 0.01}, sample=1.0)  # no price
        await evaluator(api, "answers", "regex", config={"pattern": "."}, sample=1.0)
        plain = await answered(live_server, api, chat_id, "Yes.")
        assert set(await scores_of(api, plain)) == {"answers"}  # cost unknown: an error

        failed = await answered(live_server, api, chat_id, "Par", Fail("boom", "fell over"))
        assert await scores_of(api, failed) == {}

        async def mark(chat: str) -> None:
            async with live_server.runtime.engine.begin() as conn:
                await conn.execute(
                    sa.update(chats).where(chats.c.id == chat).values(experiment_id="exp_x")
                )

        run_chat = await start_chat(api)
        await live_server.arun(mark(run_chat))
        run_reply = await answered(live_server, api, run_chat, "Paris.")
        assert await scores_of(api, run_reply) == {}


async def test_another_accounts_evaluators_do_not_score_my_replies(
    live_server: LiveServer,
) -> None:
    eve = await outsider(live_server)
    async with client_for(live_server) as api, client_for(live_server, eve.token) as other:
        await evaluator(other, "theirs", "regex", config={"pattern": "."}, sample=1.0)
        chat_id = await start_chat(api)
        reply_id = await answered(live_server, api, chat_id, "Hello.")
        assert await scores_of(api, reply_id) == {}
        their_chat = await start_chat(other)
        theirs = await answered(live_server, other, their_chat, "Hello.")
        assert set(await scores_of(other, theirs)) == {"theirs"}


async def test_a_live_judges_low_score_puts_the_trace_in_a_review_queue(
    priced: LiveServer,
) -> None:
    async with client_for(priced) as api:
        await api.post(
            "/api/prompts",
            json={
                "name": "correct",
                "labels": ["production"],
                "content": "Q: {{ input }}\nA: {{ output }}\nIs the answer right?",
            },
        )
        judge = await evaluator(
            api,
            "accuracy",
            "judge",
            sample=1.0,
            config={"prompt": {"name": "correct"}, "model": "scripted:default"},
        )
        queue = (
            await api.post(
                "/api/queues",
                json={
                    "name": "Wrong answers",
                    "rules": [{"kind": "score_below", "name": "accuracy", "value": 0.5}],
                },
            )
        ).json()
        chat_id = await start_chat(api)
        # the reply's model call, then the judge's: the scripted model answers them in turn
        priced.script("It is Lyon.", Usage(input_tokens=10, output_tokens=5))
        priced.script(
            '{"score": 0.1, "label": "wrong", "explanation": "Paris, not Lyon."}',
            Usage(input_tokens=60, output_tokens=15),
        )
        wrong = await send(api, chat_id, "What is the capital of France?")
        await priced.adrain()
        priced.script("It is Paris.", Usage(input_tokens=10, output_tokens=5))
        priced.script(
            '{"score": 1, "explanation": "Right."}', Usage(input_tokens=60, output_tokens=15)
        )
        right = await send(api, chat_id, "And again?")
        await priced.adrain()

        judged = (await scores_of(api, wrong))["accuracy"]
        assert judged["value"] == 0.1 and judged["data_type"] == "numeric"
        assert judged["comment"] == "Paris, not Lyon." and judged["author"] == judge
        assert (await scores_of(api, right))["accuracy"]["value"] == 1.0
        rubric = priced.provider.prompts[1].turns[0].content
        assert rubric == "Q: What is the capital of France?\nA: It is Lyon.\nIs the answer right?"

        items = (await api.get(f"/api/queues/{queue['id']}/items")).json()["items"]
        assert [(i["trace_id"], i["reason"]) for i in items] == [
            (trace_id_of(wrong), "accuracy below 0.5")
        ]
        await priced.arun(priced.runtime.recorder.flush())
        traces = (await api.get("/api/traces")).json()["traces"]
        calls = [t for t in traces if t["agent_name"] == "judge accuracy"]
        assert len(calls) == 2 and all(t["chat_id"] == judge for t in calls)
        assert all(t["cost"] == pytest.approx((60 + 15 * 2) / 1e6) for t in calls)


def test_the_draw_takes_the_share_asked_for_and_is_fixed_per_trace() -> None:
    draws = [live.draw(f"trc_{i}", "evl_a") for i in range(4000)]
    assert all(0 <= d < 1 for d in draws)
    assert 0.47 < sum(d < 0.5 for d in draws) / len(draws) < 0.53
    assert 0.08 < sum(d < 0.1 for d in draws) / len(draws) < 0.12
    assert live.draw("trc_1", "evl_a") == draws[1] != live.draw("trc_1", "evl_b")


@pytest.mark.parametrize(
    ("wanted", "taken"),
    [
        ({}, True),
        ({"agent_id": "agt_1"}, True),
        ({"agent_id": "agt_2"}, False),
        ({"model": "scripted:default"}, True),
        ({"model": "demo:echo"}, False),
        ({"prompt_name": "support"}, True),
        ({"prompt_name": "support", "model": "demo:echo"}, False),
        ({"prompt_name": "sales"}, False),
    ],
)
def test_a_filter_takes_the_replies_it_names(wanted: dict[str, str], taken: bool) -> None:
    reply = {
        "agent_id": "agt_1",
        "model": None,
        "chat_model": "scripted:default",
        "prompt": {"name": "support", "version": 3},
    }
    assert live.matches(wanted, reply) is taken
