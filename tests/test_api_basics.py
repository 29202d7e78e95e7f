"""The HTTP resources: creating, reading, changing, and refusing bad input without side effects."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from gapless.limits import Limiter
from tests.conftest import client_for
from tests.support.server import LiveServer


async def new_chat(http: httpx.AsyncClient, **fields: object) -> dict[str, object]:
    response = await http.post("/api/chats", json=fields)
    assert response.status_code == 201, response.text
    chat: dict[str, object] = response.json()
    return chat


async def test_post_commits_user_message_and_pending_reply_before_answering(
    any_db_server: LiveServer,
) -> None:
    server = any_db_server
    gate_steps = server.provider
    from tests.support.scripted import Gate

    gate = Gate()
    gate_steps.script(gate, "done")
    async with client_for(server) as http:
        chat = await new_chat(http, title="First")
        response = await http.post(f"/api/chats/{chat['id']}/messages", json={"content": "Hi!"})
        assert response.status_code == 201
        body = response.json()
        user, reply = body["user_message"], body["assistant_message"]
        assert user["role"] == "user" and user["content"] == "Hi!"
        assert user["status"] == "complete" and user["seq"] == 0
        assert reply["role"] == "assistant" and reply["status"] == "pending"
        assert reply["parent_id"] == user["id"] and reply["seq"] == 0
        # The model is held before its first chunk: the rows are there all the same.
        await gate.wait_reached()
        assert (await server.amessage(user["id"]))["content"] == "Hi!"
        assert (await server.amessage(reply["id"]))["status"] == "pending"
        gate.set()
        await server.adrain()
        final = await server.amessage(reply["id"])
        assert final["status"] == "complete" and final["content"] == "done"


async def test_chats_are_listed_newest_first_and_can_be_renamed_and_deleted(
    api: httpx.AsyncClient,
) -> None:
    one = await new_chat(api, title="one")
    two = await new_chat(api, title="two")
    listed = (await api.get("/api/chats")).json()["chats"]
    assert [c["id"] for c in listed][:2] == [two["id"], one["id"]]
    renamed = await api.patch(f"/api/chats/{one['id']}", json={"title": "renamed"})
    assert renamed.status_code == 200 and renamed.json()["title"] == "renamed"
    assert (await api.delete(f"/api/chats/{two['id']}")).status_code == 204
    assert (await api.get(f"/api/chats/{two['id']}")).status_code == 404


async def test_models_lists_choices_and_the_default(api: httpx.AsyncClient) -> None:
    body = (await api.get("/api/models")).json()
    assert body["default"] == "scripted:default"
    assert "scripted:default" in {m["id"] for m in body["models"]}


def error_of(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    return str(body["error"]["code"])


async def test_bad_input_is_a_clear_error_and_changes_nothing(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    chat = await new_chat(api)
    url = f"/api/chats/{chat['id']}/messages"
    bad = [
        (dict(content=b"{not json", headers={"content-type": "application/json"}), 400),
        # nested past the JSON parser's depth: refused as JSON it cannot read, not a 500
        (
            dict(content=b"[" * 5000 + b"]" * 5000, headers={"content-type": "application/json"}),
            400,
        ),
        (
            dict(
                content=b"[" * 5000 + b'"\\u0041"' + b"]" * 5000,
                headers={"content-type": "application/json"},
            ),
            400,
        ),
        (dict(json={"content": 5}), 422),
        (dict(json={"content": "hi", "surprise": 1}), 422),
        (dict(json={"content": "   "}), 422),
        (dict(json={}), 422),
        (dict(json={"content": "x" * 32_001}), 413),
        (dict(json={"content": "hi", "parent_id": "msg_nope"}), 422),
        (dict(json={"content": "hi", "model": "nope:nothing"}), 422),
        (dict(json={"content": "hi", "model": "no-colon"}), 422),
    ]
    for kwargs, status in bad:
        response = await api.post(url, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == status, (kwargs, response.text)
        error_of(response)
    # What each mistake is called: the same words as every FastAPI route's (the message
    # POST is served in front of FastAPI, `web.post`).
    said = {
        "content": b'{"content": 5}',
        "surprise": b'{"content": "hi", "surprise": 1}',
        "body": b"",
        "list": b"[]",
        "text": b"content=hi",
    }
    texts = {}
    for name, body in said.items():
        kind = "text/plain" if name == "text" else "application/json"
        response = await api.post(url, content=body, headers={"content-type": kind})
        assert response.status_code == 422, (name, response.text)
        texts[name] = response.json()["error"]["message"]
    assert texts["content"] == "content: Input should be a valid string"
    assert texts["surprise"] == "surprise: Extra inputs are not permitted"
    assert texts["body"] == "body: Field required"
    assert texts["list"].startswith("body: Input should be a valid dictionary")
    assert texts["text"].startswith("body: Input should be a valid dictionary")
    titled = await api.post("/api/chats", json={"title": 3})
    assert titled.json()["error"]["message"] == "title: Input should be a valid string"
    state = (await api.get(f"/api/chats/{chat['id']}")).json()
    assert state["messages"] == []
    assert (await api.post("/api/chats", json={"model": "nope:x"})).status_code == 422
    assert (await api.patch(f"/api/chats/{chat['id']}", json={"title": ""})).status_code == 422
    assert (await api.post("/api/chats", json={"title": 3})).status_code == 422


async def test_a_message_at_the_limit_is_accepted(api: httpx.AsyncClient) -> None:
    chat = await new_chat(api)
    response = await api.post(f"/api/chats/{chat['id']}/messages", json={"content": "x" * 32_000})
    assert response.status_code == 201


async def test_requests_without_credentials_are_refused(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as anonymous:
        response = await anonymous.get("/api/chats")
        assert response.status_code == 401
        assert error_of(response) == "unauthorized"
        bad = await anonymous.get("/api/chats", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401


async def test_the_openapi_document_is_served_and_no_cdn_docs_page(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        assert (await http.get("/docs")).status_code == 404  # Swagger UI would load from a CDN
        spec = (await http.get("/openapi.json")).json()
        assert "/api/chats/{chat_id}/messages" in spec["paths"]
        # The streams are served before FastAPI's stack, and described all the same.
        for stream in ("/api/chats/{chat_id}/events", "/api/events"):
            answers = spec["paths"][stream]["get"]["responses"]
            assert "text/event-stream" in answers["200"]["content"]


async def test_too_many_messages_answer_429_and_change_nothing(make_live_server: Any) -> None:
    server = make_live_server(settings={"rate_limit": 0.001, "rate_burst": 2})
    async with client_for(server) as http:
        chat = await new_chat(http)
        url = f"/api/chats/{chat['id']}/messages"
        assert (await http.post(url, json={"content": "one"})).status_code == 201
        assert (await http.post(url, json={"content": "two"})).status_code == 201
        refused = await http.post(url, json={"content": "three"})
        assert refused.status_code == 429 and error_of(refused) == "rate_limited"
        assert int(refused.headers["retry-after"]) >= 1
        await server.adrain()
        state = (await http.get(f"/api/chats/{chat['id']}")).json()
        assert [m["content"] for m in state["messages"] if m["role"] == "user"] == ["one", "two"]


def test_the_bucket_refills_at_its_rate() -> None:
    limiter = Limiter(rate=1.0, burst=2)
    assert limiter.allow("u", 0.0) and limiter.allow("u", 0.0)
    assert not limiter.allow("u", 0.5)
    assert limiter.allow("u", 1.0)
    assert limiter.allow("v", 1.0)  # buckets are per caller


async def test_a_body_over_the_limit_is_refused_before_it_is_read(api: httpx.AsyncClient) -> None:
    chat = await new_chat(api)
    response = await api.post(
        f"/api/chats/{chat['id']}/messages",
        content=b'{"content": "' + b"x" * 300_000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413 and error_of(response) == "too_large"
    assert (await api.get(f"/api/chats/{chat['id']}")).json()["messages"] == []


async def test_messages_posted_in_one_loop_turn_commit_together_and_each_is_answered(
    live_server: LiveServer, api: httpx.AsyncClient
) -> None:
    """Group commit (`together`): three POSTs reaching the use case in one turn of the
    server's loop are one transaction; the one with a wrong parent is refused alone; the
    two runs they start take their replies in one transaction too. Counted as SQLite runs
    the statements (`InlineEngine.trace`: a row of an executemany is one line)."""
    from gapless.db.accounts import Caller
    from gapless.errors import InvalidError
    from gapless.web.deps import accounts_of

    server = live_server
    server.script("ok")
    chats = [await new_chat(api) for _ in range(3)]
    runtime = server.runtime
    caller: Caller = await server.arun(accounts_of(runtime).by_bearer(server.token))
    seen: list[str] = []  # I: a message inserted, G: a generation record, C: a commit

    def traced(statement: str) -> None:
        kind = statement.lstrip().upper()
        for prefix, mark in (("INSERT INTO MESSAGES", "I"), ("INSERT INTO GENERATIONS", "G")):
            if kind.startswith(prefix):
                seen.append(mark)
        if kind.startswith("COMMIT"):
            seen.append("C")

    async def burst() -> list[Any]:
        runtime.engine.trace(traced)
        try:
            posted = [
                runtime.chats.post(caller, str(chats[0]["id"]), {"content": "one"}),
                runtime.chats.post(
                    caller, str(chats[1]["id"]), {"content": "x", "parent_id": None}
                ),
                runtime.chats.post(
                    caller, str(chats[2]["id"]), {"content": "two", "parent_id": "m"}
                ),
            ]
            answers = await asyncio.gather(*posted, return_exceptions=True)
            await runtime.runner.drain()  # type: ignore[attr-defined]
            return answers
        finally:
            runtime.engine.trace(None)

    one, root, refused = await server.arun(burst())
    # both exchanges (a user message and a reply each) in one transaction
    assert seen[:5] == ["I", "I", "I", "I", "C"] and seen.count("I") == 4
    # and both runs, started in one turn, took their replies together: both generation
    # records inserted in a transaction of their own
    assert seen.count("G") == 2 and seen[5:8] == ["G", "G", "C"]
    assert isinstance(refused, InvalidError) and refused.code == "bad_parent"
    assert one["user_message"]["content"] == "one" and root["user_message"]["parent_id"] is None
    for chat, expected in zip(chats, (["one"], ["x"], []), strict=True):
        state = (await api.get(f"/api/chats/{chat['id']}")).json()
        assert [m["content"] for m in state["messages"] if m["role"] == "user"] == expected
