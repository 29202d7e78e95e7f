"""Review queues on a real server: rules add the right traces (thumbs down from the chat, an
error, cost or latency above a value, a score below a value), each once; a reviewer steps
through them (next, skip, done with scores); two reviewers never hold one item; 404 across
accounts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from gapless.db.rows import new_id, now
from gapless.db.tables import traces
from gapless.observe.recorder import trace_id_of
from tests.conftest import client_for
from tests.evals.conftest import outsider
from tests.support.scripted import Fail
from tests.support.server import LiveServer


async def reply(server: LiveServer, api: httpx.AsyncClient, chat_id: str, *script: Any) -> str:
    """A finished reply's id (its trace written)."""
    if script:
        server.script(*script)
    posted = await api.post(f"/api/chats/{chat_id}/messages", json={"content": "Q"})
    await server.adrain()
    await server.arun(server.runtime.recorder.flush())
    return str(posted.json()["assistant_message"]["id"])


async def a_trace(server: LiveServer, account_id: str, chat_id: str, **figures: Any) -> str:
    """A finished trace with these figures, written as the recorder leaves one (the scripted
    model has no price, and a run's duration is not ours to choose)."""
    trace_id = new_id("trc")
    stamp = now()
    row = {c.name: None for c in traces.c}
    row.update(
        id=trace_id,
        reply_id=new_id("msg"),
        chat_id=chat_id,
        account_id=account_id,
        status="complete",
        started_at=stamp,
        ended_at=stamp + timedelta(milliseconds=figures.get("duration_ms", 10)),
        steps=1,
        generations=1,
        tools=0,
        input_tokens=0,
        output_tokens=0,
        reasoning_tokens=0,
        cached_tokens=0,
    )
    row.update({"cost": 0.0, "duration_ms": 10.0, **figures})

    async def write() -> None:
        async with server.runtime.engine.begin() as conn:
            await conn.execute(traces.insert().values(**row))

    await server.arun(write())
    return trace_id


RULES = [
    {"kind": "thumbs_down"},
    {"kind": "error"},
    {"kind": "cost_above", "value": 0.05},
    {"kind": "latency_above", "value": 5000},
    {"kind": "score_below", "name": "accuracy", "value": 0.5},
]
SCORES = [
    {"name": "correct", "data_type": "boolean"},
    {"name": "issue", "data_type": "categorical", "categories": ["facts", "tone", "none"]},
]


async def test_rules_add_the_right_traces_once_and_a_reviewer_steps_through_them(
    any_db_server: LiveServer,
) -> None:
    live_server = any_db_server
    async with client_for(live_server) as api:
        chat = (await api.post("/api/chats", json={"title": "Review"})).json()
        account, chat_id = chat["account_id"], chat["id"]
        created = await api.post(
            "/api/queues", json={"name": "Triage", "rules": RULES, "scores": SCORES}
        )
        assert created.status_code == 201, created.text
        queue = created.json()
        assert queue["counts"] == {"pending": 0, "skipped": 0, "done": 0}

        liked = await reply(live_server, api, chat_id)
        disliked = await reply(live_server, api, chat_id)
        failed = await reply(live_server, api, chat_id, Fail("boom", "the model fell over"))
        await api.post(f"/api/messages/{liked}/feedback", json={"value": "up"})
        await api.post(f"/api/messages/{disliked}/feedback", json={"value": "down"})
        cheap = await a_trace(live_server, account, chat_id, cost=0.01, duration_ms=900.0)
        dear = await a_trace(live_server, account, chat_id, cost=0.2, duration_ms=900.0)
        slow = await a_trace(live_server, account, chat_id, cost=0.0, duration_ms=9000.0)
        low = await a_trace(live_server, account, chat_id)
        high = await a_trace(live_server, account, chat_id)
        for trace_id, value in ((low, 0.2), (high, 0.9)):
            await api.post(
                "/api/scores",
                json={
                    "name": "accuracy",
                    "data_type": "numeric",
                    "value": value,
                    "trace_id": trace_id,
                },
            )

        items = (await api.get(f"/api/queues/{queue['id']}/items")).json()["items"]
        reasons = {item["trace_id"]: item["reason"] for item in items}
        assert reasons == {
            trace_id_of(disliked): "thumbs down",
            trace_id_of(failed): "error",
            dear: "cost above $0.05",
            slow: "latency above 5000.0 ms",
            low: "accuracy below 0.5",
        }
        assert trace_id_of(liked) not in reasons and cheap not in reasons and high not in reasons
        again = (await api.post(f"/api/queues/{queue['id']}/refresh")).json()
        assert again["added"] == 0 and again["counts"]["pending"] == 5

        seen = []
        step = (await api.post(f"/api/queues/{queue['id']}/next")).json()
        first = step["item"]
        assert first["trace"]["id"] == first["trace_id"] and first["status"] == "pending"
        seen.append(first["trace_id"])
        skipped = await api.post(
            f"/api/queues/{queue['id']}/items/{first['id']}", json={"action": "skip"}
        )
        step = skipped.json()
        assert step["counts"] == {"pending": 4, "skipped": 1, "done": 0}
        while step["item"] is not None and step["item"]["status"] == "pending":
            item = step["item"]
            seen.append(item["trace_id"])
            done = await api.post(
                f"/api/queues/{queue['id']}/items/{item['id']}",
                json={
                    "action": "done",
                    "scores": [
                        {"name": "correct", "data_type": "boolean", "value": False},
                        {
                            "name": "issue",
                            "data_type": "categorical",
                            "value": "facts",
                            "comment": "tide",
                        },
                    ],
                },
            )
            assert done.status_code == 200, done.text
            step = done.json()
        assert step["item"]["id"] == first["id"]  # the skipped one comes back last
        assert step["counts"] == {"pending": 0, "skipped": 1, "done": 4}
        assert len(set(seen)) == 5

        annotations = (await api.get("/api/scores?source=annotation")).json()["scores"]
        assert len(annotations) == 8 and {s["trace_id"] for s in annotations} == set(seen[1:])
        bad = await api.post(
            f"/api/queues/{queue['id']}/items/{first['id']}",
            json={
                "action": "done",
                "scores": [{"name": "issue", "data_type": "categorical", "value": "spelling"}],
            },
        )
        assert bad.status_code == 422
        assert (await api.get(f"/api/queues/{queue['id']}/items?status=skipped")).json()["items"][
            0
        ]["id"] == first["id"]


async def test_two_reviewers_are_never_handed_the_same_item(any_db_server: LiveServer) -> None:
    live_server = any_db_server
    eve = await outsider(live_server)
    async with client_for(live_server) as admin, client_for(live_server, eve.token) as other:
        chat = (await other.post("/api/chats", json={"title": "Theirs"})).json()
        queue = (
            await other.post(
                "/api/queues",
                json={"name": "Costly", "rules": [{"kind": "cost_above", "value": 0.5}]},
            )
        ).json()
        traces_made = [
            await a_trace(live_server, eve.account_id, chat["id"], cost=1.0) for _ in range(2)
        ]
        url = f"/api/queues/{queue['id']}/next"
        mine = (await other.post(url)).json()["item"]
        theirs = (await admin.post(url)).json()["item"]  # a site admin reviews too
        assert {mine["trace_id"], theirs["trace_id"]} == set(traces_made)
        assert (await admin.post(url)).json()["item"]["id"] == theirs["id"]  # still theirs
        assert (await other.post(url)).json()["item"]["id"] == mine["id"]


async def test_another_accounts_queues_are_404_and_their_traces_stay_out(
    live_server: LiveServer,
) -> None:
    eve = await outsider(live_server)
    async with client_for(live_server) as api, client_for(live_server, eve.token) as other:
        chat = (await api.post("/api/chats", json={"title": "Mine"})).json()
        queue = (
            await api.post("/api/queues", json={"name": "Errors", "rules": [{"kind": "error"}]})
        ).json()
        foreign_chat = (await other.post("/api/chats", json={"title": "Theirs"})).json()
        await a_trace(live_server, eve.account_id, foreign_chat["id"], status="failed")
        assert (await api.get(f"/api/queues/{queue['id']}")).json()["counts"]["pending"] == 0
        mine = await a_trace(live_server, chat["account_id"], chat["id"], status="failed")
        assert (await api.get(f"/api/queues/{queue['id']}")).json()["counts"]["pending"] == 1

        assert (await other.get("/api/queues")).json()["queues"] == []
        base = f"/api/queues/{queue['id']}"
        for method, url, body in [
            ("GET", base, None),
            ("DELETE", base, None),
            ("POST", f"{base}/refresh", None),
            ("GET", f"{base}/items", None),
            ("POST", f"{base}/items", {"trace_id": mine}),
            ("POST", f"{base}/next", None),
            ("POST", f"{base}/items/rvi_x", {"action": "skip"}),
        ]:
            answer = await other.request(method, url, json=body)
            assert answer.status_code == 404, (method, url)
        their_queue = (await other.post("/api/queues", json={"name": "Mine too"})).json()
        adding = await other.post(f"/api/queues/{their_queue['id']}/items", json={"trace_id": mine})
        assert adding.status_code == 404  # a trace of another account cannot be put in


async def test_a_queue_backfills_and_takes_a_trace_by_hand(live_server: LiveServer) -> None:
    async with client_for(live_server) as api:
        chat = (await api.post("/api/chats", json={"title": "Back"})).json()
        old = await a_trace(live_server, chat["account_id"], chat["id"], status="failed")
        fresh = (
            await api.post("/api/queues", json={"name": "New only", "rules": [{"kind": "error"}]})
        ).json()
        assert fresh["counts"]["pending"] == 0  # the rules look from the queue's start on
        back = (
            await api.post(
                "/api/queues",
                json={"name": "Backfilled", "rules": [{"kind": "error"}], "backfill_days": 1},
            )
        ).json()
        assert back["counts"]["pending"] == 1
        by_hand = await api.post(f"/api/queues/{fresh['id']}/items", json={"trace_id": old})
        assert by_hand.status_code == 201
        assert by_hand.json()["trace_id"] == old and by_hand.json()["reason"] == "added by hand"
        twice = await api.post(f"/api/queues/{fresh['id']}/items", json={"trace_id": old})
        assert twice.json()["id"] == by_hand.json()["id"]
        assert (await api.get(f"/api/queues/{fresh['id']}")).json()["counts"]["pending"] == 1
        refused = await api.post(
            "/api/queues", json={"name": "x", "rules": [{"kind": "cost_above"}]}
        )
        assert refused.status_code == 422
