"""How a reply ends: complete, failed, stopped (in any state, twice), retried, edited, lost."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import client_for
from tests.support import server as live
from tests.support.clients import Tab, converge_sse, fetch_state
from tests.support.scripted import Fail, Gate, Think
from tests.test_streaming import send, start_chat, wait_until


async def test_provider_failure_mid_stream_keeps_partial_text_and_says_why(
    live_server: live.LiveServer,
) -> None:
    live_server.script(Think("let me see "), "partial ", "text", Fail("server_error", "It broke."))
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))
        reply_id = await send(http, chat_id)
        await converge_sse(http, tab, [reply_id])
        stored = await live_server.amessage(reply_id)
        assert stored["status"] == "failed"
        assert stored["content"] == "partial text" and stored["thinking"] == "let me see "
        assert stored["error"] == {"code": "server_error", "message": "It broke."}
        assert tab.replica.messages[reply_id] == stored
        assert [t for t, _, _ in tab.events][-1] == "message.failed"


async def stop(http: httpx.AsyncClient, reply_id: str) -> dict[str, Any]:
    response = await http.post(f"/api/messages/{reply_id}/stop")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_stop_while_streaming_keeps_the_partial_text_and_is_idempotent(
    live_server: live.LiveServer,
) -> None:
    gate = Gate()
    live_server.script("kept ", "text ", gate, "never sent")
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))
        reply_id = await send(http, chat_id)
        await gate.wait_reached()
        stopped = await stop(http, reply_id)
        assert stopped["status"] == "cancelled"
        assert stopped["content"] == "kept text " and stopped["seq"] == 2
        assert live_server.provider.closed.is_set()  # the model's work was really ended
        again = await stop(http, reply_id)
        assert again == stopped
        await converge_sse(http, tab, [reply_id])
        assert tab.replica.messages[reply_id] == stopped
        types = [t for t, d, _ in tab.events if d.get("message_id", d.get("id")) == reply_id]
        assert types[-1] == "message.cancelled"
        assert "message.delta" not in types[types.index("message.cancelled") :]
        gate.set()


async def test_stop_while_pending_ends_the_reply_before_the_model_runs(
    live_server: live.LiveServer,
) -> None:
    gate = Gate()
    live_server.script("first", gate, " reply")
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        first = await send(http, chat_id, "one")
        await gate.wait_reached()
        waiting = await send(http, chat_id, "two")  # pending behind the first
        stopped = await stop(http, waiting)
        assert stopped["status"] == "cancelled" and stopped["content"] == "" and stopped["seq"] == 0
        gate.set()
        await live_server.adrain()
        assert (await live_server.amessage(first))["status"] == "complete"
        assert (await live_server.amessage(waiting))["status"] == "cancelled"
        assert len(live_server.provider.prompts) == 1


async def test_stop_after_the_end_answers_the_final_message(live_server: live.LiveServer) -> None:
    live_server.script("all done")
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        reply_id = await send(http, chat_id)
        await live_server.adrain()
        ended = await stop(http, reply_id)
        assert ended["status"] == "complete" and ended["content"] == "all done"


async def test_stopping_a_user_message_is_a_conflict(live_server: live.LiveServer) -> None:
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        response = await http.post(f"/api/chats/{chat_id}/messages", json={"content": "hi"})
        user_id = response.json()["user_message"]["id"]
        refused = await http.post(f"/api/messages/{user_id}/stop")
        assert refused.status_code == 409


async def test_retry_makes_a_sibling_and_keeps_the_old_reply(live_server: live.LiveServer) -> None:
    live_server.script("first try")
    live_server.script("second try")
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        reply_id = await send(http, chat_id, "question")
        await live_server.adrain()
        response = await http.post(f"/api/messages/{reply_id}/retry")
        assert response.status_code == 201
        retried = response.json()
        assert retried["parent_id"] == (await live_server.amessage(reply_id))["parent_id"]
        await live_server.adrain()
        assert (await live_server.amessage(reply_id))["content"] == "first try"
        assert (await live_server.amessage(retried["id"]))["content"] == "second try"
        prompt = live_server.provider.prompts[1]
        assert [(t.role, t.content) for t in prompt.turns] == [("user", "question")]


async def test_edit_posts_a_sibling_user_message_and_the_model_sees_only_its_path(
    live_server: live.LiveServer,
) -> None:
    for answer in ("a1", "a2", "a3"):
        live_server.script(answer)
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        await send(http, chat_id, "q1")
        await live_server.adrain()
        second = (await http.post(f"/api/chats/{chat_id}/messages", json={"content": "q2"})).json()
        await live_server.adrain()
        edited = await http.post(
            f"/api/chats/{chat_id}/messages",
            json={"content": "q2 edited", "parent_id": second["user_message"]["parent_id"]},
        )
        assert edited.status_code == 201
        await live_server.adrain()
        prompt = live_server.provider.prompts[2]
        assert [(t.role, t.content) for t in prompt.turns] == [
            ("user", "q1"),
            ("assistant", "a1"),
            ("user", "q2 edited"),
        ]
        # Posting without parent_id follows the newest branch: the edited one.
        await send(http, chat_id, "q3")
        await live_server.adrain()
        assert [t.content for t in live_server.provider.prompts[3].turns] == [
            "q1",
            "a1",
            "q2 edited",
            "a3",
            "q3",
        ]


async def test_system_prompt_comes_first(live_server: live.LiveServer) -> None:
    async with client_for(live_server) as http:
        chat = (await http.post("/api/chats", json={"system_prompt": "Be brief."})).json()
        await send(http, chat["id"])
        await live_server.adrain()
        assert live_server.provider.prompts[0].system == "Be brief."


async def test_deleting_a_message_removes_its_descendants(live_server: live.LiveServer) -> None:
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))
        first = (await http.post(f"/api/chats/{chat_id}/messages", json={"content": "a"})).json()
        await live_server.adrain()
        await send(http, chat_id, "b")
        await live_server.adrain()
        response = await http.delete(f"/api/messages/{first['user_message']['id']}")
        assert response.status_code == 204
        state = await fetch_state(http, chat_id)
        assert state["messages"] == []
        marker = await send(http, chat_id, "c")
        await live_server.adrain()
        await converge_sse(http, tab, [marker])
        assert set(tab.replica.messages) == {
            m["id"] for m in (await fetch_state(http, chat_id))["messages"]
        }


async def test_database_writes_follow_the_debounce_not_the_tokens(
    make_live_server: Any,
) -> None:
    # With a debounce longer than the reply, a reply costs exactly two row writes:
    # its start (with the log position) and its end.
    server = make_live_server(debounce=3600)
    server.script(*(f"t{i} " for i in range(300)))
    async with client_for(server) as http:
        chat_id = await start_chat(http)
        reply_id = await send(http, chat_id)
        await server.adrain()
        assert (await server.amessage(reply_id))["seq"] == 300
        assert len(server.writes) == 2
        assert server.flushes == []


async def test_database_writes_per_second_stay_within_the_debounce(make_live_server: Any) -> None:
    debounce = 0.05
    server = make_live_server(debounce=debounce)
    gates = [Gate() for _ in range(6)]
    steps: list[Any] = []
    for gate in gates:
        steps += [f"t{len(steps)} " for _ in range(20)] + [gate]
    server.script(*steps)
    async with client_for(server) as http:
        chat_id = await start_chat(http)
        reply_id = await send(http, chat_id)
        started = time.monotonic()
        for gate in gates:
            await gate.wait_reached()
            gate.set()
        await server.adrain()
        elapsed = time.monotonic() - started
        stored = await server.amessage(reply_id)
        assert stored["seq"] == 120
        # One write to start, one to end, and at most one per debounce interval between.
        assert len(server.writes) <= 2 + elapsed / debounce + 1
        assert len(server.writes) < 120 / 2  # never one write per token


async def test_a_reply_interrupted_by_a_restart_ends_failed_interrupted(tmp_path: Path) -> None:
    gate = Gate()
    server, thread, uv = live.start(tmp_path, debounce=0)
    server.script("partial ", "answer ", gate, "never")
    async with client_for(server) as http:
        chat_id = await start_chat(http)
        reply_id = await send(http, chat_id)
        await gate.wait_reached()
        await wait_until(lambda: server.amessage(reply_id), lambda m: m["seq"] == 2)
    live.stop(uv, thread)  # the process goes away mid-stream
    gate.set()
    again, thread2, uv2 = live.start(tmp_path)
    try:
        async with client_for(again) as http:
            state = await fetch_state(http, chat_id)
            reply = next(m for m in state["messages"] if m["id"] == reply_id)
            assert reply["status"] == "failed"
            assert reply["error"]["code"] == "interrupted"
            assert reply["content"] == "partial answer "
    finally:
        live.stop(uv2, thread2)
