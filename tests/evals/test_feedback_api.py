"""Thumbs on replies and scores on traces, observations and chats on a real server: one
thumbs per user and reply (changeable), typed values, exports as CSV and JSONL, and
authorisation (another account's replies, traces, chats and scores are 404 or absent)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx

from gapless.observe.recorder import trace_id_of
from tests.conftest import client_for
from tests.evals.conftest import outsider
from tests.support.server import LiveServer


async def a_reply(server: LiveServer, api: httpx.AsyncClient) -> dict[str, Any]:
    """A chat with one finished reply, its trace written."""
    chat = (await api.post("/api/chats", json={"title": "Tides"})).json()
    posted = (await api.post(f"/api/chats/{chat['id']}/messages", json={"content": "Hi"})).json()
    await server.adrain()
    await server.arun(server.runtime.recorder.flush())
    return {"chat": chat, **posted}


async def test_thumbs_on_a_reply_are_kept_changed_and_taken_back(live_server: LiveServer) -> None:
    async with client_for(live_server) as api:
        made = await a_reply(live_server, api)
        reply, chat = made["assistant_message"], made["chat"]
        url = f"/api/messages/{reply['id']}/feedback"
        up = await api.post(url, json={"value": "up"})
        assert up.status_code == 200, up.text
        assert up.json()["value"] == "up" and up.json()["comment"] is None
        down = await api.post(url, json={"value": "down", "comment": "  wrong tide times "})
        assert down.json()["value"] == "down" and down.json()["comment"] == "wrong tide times"
        assert down.json()["score_id"] == up.json()["score_id"]  # changed, not added

        mine = (await api.get(f"/api/chats/{chat['id']}/feedback")).json()["feedback"]
        assert list(mine) == [reply["id"]] and mine[reply["id"]]["value"] == "down"

        scores = (await api.get(f"/api/scores?message_id={reply['id']}")).json()["scores"]
        assert len(scores) == 1
        score = scores[0]
        assert score["name"] == "thumbs" and score["data_type"] == "boolean"
        assert score["value"] is False and score["source"] == "feedback"
        assert score["trace_id"] == trace_id_of(reply["id"]) and score["chat_id"] == chat["id"]
        assert (await api.get(f"/api/traces/{score['trace_id']}")).status_code == 200

        assert (await api.delete(url)).status_code == 204
        assert (await api.get(f"/api/chats/{chat['id']}/feedback")).json()["feedback"] == {}

        on_question = await api.post(
            f"/api/messages/{made['user_message']['id']}/feedback", json={"value": "up"}
        )
        assert on_question.status_code == 422
        assert on_question.json()["error"]["code"] == "not_a_reply"
        bad = await api.post(url, json={"value": "sideways"})
        assert bad.status_code == 422


async def test_scores_on_traces_observations_and_chats_keep_their_type(
    live_server: LiveServer,
) -> None:
    async with client_for(live_server) as api:
        made = await a_reply(live_server, api)
        trace = (
            await api.get(f"/api/traces/{trace_id_of(made['assistant_message']['id'])}")
        ).json()
        observation = trace["observations"][0]["id"]
        chat_id = made["chat"]["id"]
        cases = [
            {"trace_id": trace["id"], "data_type": "numeric", "value": 0.75, "name": "accuracy"},
            {"observation_id": observation, "data_type": "boolean", "value": True, "name": "ok"},
            {"chat_id": chat_id, "data_type": "categorical", "value": "helpful", "name": "tone"},
            {"trace_id": trace["id"], "data_type": "boolean", "value": 0, "name": "safe"},
        ]
        made_scores = []
        for case in cases:
            answer = await api.post("/api/scores", json={**case, "source": "annotation"})
            assert answer.status_code == 201, answer.text
            made_scores.append(answer.json())
        assert [s["value"] for s in made_scores] == [0.75, True, "helpful", False]
        assert [s["target"] for s in made_scores] == ["trace", "observation", "chat", "trace"]
        assert made_scores[1]["trace_id"] == trace["id"]
        assert all(s["chat_id"] == chat_id for s in made_scores)

        for wrong in [
            {"data_type": "numeric", "value": "high"},
            {"data_type": "numeric", "value": True},
            {"data_type": "boolean", "value": 2},
            {"data_type": "categorical", "value": 3},
            {"data_type": "numeric", "value": 1, "source": "feedback"},
        ]:
            answer = await api.post(
                "/api/scores", json={"name": "x", "trace_id": trace["id"], **wrong}
            )
            assert answer.status_code == 422, wrong
        no_target = await api.post(
            "/api/scores", json={"name": "x", "data_type": "numeric", "value": 1}
        )
        assert no_target.json()["error"]["code"] == "no_target"

        on_trace = (await api.get(f"/api/scores?trace_id={trace['id']}")).json()["scores"]
        assert {s["name"] for s in on_trace} == {"accuracy", "ok", "safe"}
        page = (await api.get("/api/scores?limit=2")).json()
        rest = (await api.get(f"/api/scores?limit=2&cursor={page['next']}")).json()
        assert [s["name"] for s in page["scores"] + rest["scores"]] == [
            "safe",
            "tone",
            "ok",
            "accuracy",
        ]

        assert (await api.delete(f"/api/scores/{made_scores[0]['id']}")).status_code == 204
        assert (await api.get(f"/api/scores/{made_scores[0]['id']}")).status_code == 404


async def test_scores_export_as_csv_and_jsonl(live_server: LiveServer) -> None:
    async with client_for(live_server) as api:
        made = await a_reply(live_server, api)
        reply = made["assistant_message"]
        await api.post(
            f"/api/messages/{reply['id']}/feedback",
            json={"value": "up", "comment": 'a "quote", here'},
        )
        await api.post(
            "/api/scores",
            json={
                "name": "tone",
                "data_type": "categorical",
                "value": "terse",
                "message_id": reply["id"],
            },
        )
        jsonl = await api.get("/api/scores/export?format=jsonl")
        assert jsonl.headers["content-type"].startswith("application/x-ndjson")
        rows = [json.loads(line) for line in jsonl.text.splitlines()]
        assert [(r["name"], r["value"], r["source"]) for r in rows] == [
            ("tone", "terse", "api"),
            ("thumbs", True, "feedback"),
        ]
        answer = await api.get("/api/scores/export?format=csv&source=feedback")
        assert answer.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(answer.text)))
        assert len(table) == 1
        assert table[0]["name"] == "thumbs" and table[0]["value"] == "True"
        assert table[0]["comment"] == 'a "quote", here' and table[0]["message_id"] == reply["id"]


async def test_another_accounts_replies_traces_chats_and_scores_are_404(
    live_server: LiveServer,
) -> None:
    eve = await outsider(live_server)
    async with client_for(live_server) as api, client_for(live_server, eve.token) as other:
        made = await a_reply(live_server, api)
        reply, chat = made["assistant_message"], made["chat"]
        await api.post(f"/api/messages/{reply['id']}/feedback", json={"value": "down"})
        score = (
            await api.post(
                "/api/scores",
                json={"name": "n", "data_type": "numeric", "value": 1, "chat_id": chat["id"]},
            )
        ).json()
        trace_id = trace_id_of(reply["id"])
        observation = (await api.get(f"/api/traces/{trace_id}")).json()["observations"][0]["id"]
        refused = [
            await other.post(f"/api/messages/{reply['id']}/feedback", json={"value": "up"}),
            await other.delete(f"/api/messages/{reply['id']}/feedback"),
            await other.get(f"/api/chats/{chat['id']}/feedback"),
            await other.get(f"/api/scores/{score['id']}"),
            await other.delete(f"/api/scores/{score['id']}"),
        ]
        for target in (
            {"trace_id": trace_id},
            {"chat_id": chat["id"]},
            {"message_id": reply["id"]},
            {"observation_id": observation},
        ):
            refused.append(
                await other.post(
                    "/api/scores", json={"name": "n", "data_type": "numeric", "value": 1, **target}
                )
            )
        assert [r.status_code for r in refused] == [404] * len(refused)
        assert (await other.get("/api/scores")).json()["scores"] == []
        assert (await other.get("/api/scores/export?format=jsonl")).text == ""
        assert (await other.get(f"/api/scores?chat_id={chat['id']}")).json()["scores"] == []
        # their thumbs were never written, ours stayed
        assert (await api.get(f"/api/chats/{chat['id']}/feedback")).json()["feedback"][reply["id"]][
            "value"
        ] == "down"


async def test_a_trace_whose_chat_was_deleted_can_still_be_scored(live_server: LiveServer) -> None:
    async with client_for(live_server) as api:
        made = await a_reply(live_server, api)
        trace_id = trace_id_of(made["assistant_message"]["id"])
        assert (await api.delete(f"/api/chats/{made['chat']['id']}")).status_code == 204
        assert (await api.get(f"/api/traces/{trace_id}")).status_code == 200  # traces stay
        answer = await api.post(
            "/api/scores",
            json={"name": "kept", "data_type": "numeric", "value": 1, "trace_id": trace_id},
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["chat_id"] is None and answer.json()["trace_id"] == trace_id
