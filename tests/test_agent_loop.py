"""Agents on a real server: tool calls stream, resume and end exactly like text.

Interleavings are forced with the scripted model's gates and the gated tool
(`tests/support/tools.py`); every test checks what a client showed against
the database, part by part.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import client_for
from tests.support import server as live
from tests.support.clients import Tab, converge_sse, converge_ws, fetch_state, follow_sse
from tests.support.scripted import Args, Call, End, Gate, Start
from tests.test_access import outsider
from tests.test_streaming import send, wait_until

TEXT = json.dumps({"text": "hello"})


async def make_agent(http: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "helper", "model": "scripted:default", "tools": ["echo"], **fields}
    response = await http.post("/api/agents", json=body)
    assert response.status_code == 201, response.text
    agent: dict[str, Any] = response.json()
    return agent


async def agent_chat(http: httpx.AsyncClient, **fields: Any) -> str:
    agent = await make_agent(http, **fields)
    response = await http.post("/api/chats", json={"title": "t", "agent_id": agent["id"]})
    assert response.status_code == 201, response.text
    assert response.json()["agent_id"] == agent["id"]
    return str(response.json()["id"])


def tools_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in message["parts"] if p["type"] == "tool"]


async def converge(
    server: live.LiveServer, http: httpx.AsyncClient, tab: Tab, reply_id: str, transport: str
) -> dict[str, Any]:
    if transport == "sse":
        await converge_sse(http, tab, [reply_id])
    else:
        await converge_ws(server.url, server.token, http, tab, [reply_id])
    stored = await server.amessage(reply_id)
    assert tab.replica.messages[reply_id] == stored
    tab.assert_prefixes(reply_id, stored)
    return stored


async def until_status(http: httpx.AsyncClient, tab: Tab, reply_id: str, status: str) -> None:
    """Follow the chat until the reply shows `status` (requires_action: not final)."""
    for _ in range(50):
        if tab.replica.messages.get(reply_id, {}).get("status") == status:
            return

        async def seen(_: int) -> None:
            if tab.replica.messages.get(reply_id, {}).get("status") == status:
                raise _Seen

        try:
            outcome = await follow_sse(http, tab, [reply_id], on_event=seen)
        except _Seen:
            return
        if outcome == "refetch":
            tab.load(await fetch_state(http, tab.chat_id))
    raise AssertionError(f"the reply never showed {status}")


class _Seen(Exception):
    pass


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_a_tool_call_streams_its_arguments_runs_and_the_next_step_answers(
    live_server: live.LiveServer, transport: str
) -> None:
    live_server.script("Let me check. ", Call("call_1", "echo", ('{"te', 'xt": "hel', 'lo"}')))
    live_server.script("It said hello.")
    async with client_for(live_server) as http:
        chat_id = await agent_chat(http)
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))
        reply_id = await send(http, chat_id, "echo hello")
        stored = await converge(live_server, http, tab, reply_id, transport)
        assert stored["error"] is None and stored["status"] == "complete"
        assert stored["content"] == "Let me check. It said hello."
        assert [p["type"] for p in stored["parts"]] == ["text", "tool", "text"]
        assert stored["parts"][1] == {
            "id": "call_1",
            "type": "tool",
            "name": "echo",
            "arguments": TEXT.replace(" ", " "),
            "status": "complete",
            "output": '{\n  "echo": "hello"\n}',
            "error": None,
        }
        assert stored["parts"][2]["id"] == "p2"
        assert stored["agent_id"] is not None
        # the arguments arrived in three deltas, and the client saw them grow
        arguments = [
            d["tool"]["arguments"]
            for t, d, _ in tab.events
            if t == "message.delta" and "arguments" in d.get("tool", {})
        ]
        assert arguments == ['{"te', 'xt": "hel', 'lo"}']
        # the second model call saw the first step, its call and its result, natively
        second = live_server.provider.prompts[-1]
        assert [t.role for t in second.turns] == ["user", "assistant", "tool"]
        assert second.turns[1].tool_calls[0].name == "echo"
        assert second.turns[2].tool_call_id == "call_1" and "hello" in second.turns[2].content
        assert [s.name for s in second.tools] == ["echo"]
        generations = (await http.get("/api/generations", params={"chat_id": chat_id})).json()
        assert sorted(g["step"] for g in generations["generations"]) == [1, 2]
        assert live_server.kit.calls["echo"] == 1
        (context,) = live_server.kit.contexts  # the call ran for the user who asked
        session = (await http.get("/api/session")).json()["user"]
        assert context.user_id == session["id"] and context.chat_id == chat_id
        assert context.account_ids is None  # a site admin sees every account, as in the API


async def test_a_client_joining_mid_arguments_before_any_write_sees_each_piece_once(
    make_live_server: Any,
) -> None:
    server = make_live_server(debounce=0.0)
    gate = Gate()
    server.script(
        Start("c1", "echo"), Args("c1", '{"text": '), gate, Args("c1", '"hi"}'), End("c1")
    )
    server.script("done")
    server.flush_gate.clear()  # no debounced write: the row lags every delta
    async with client_for(server) as http:
        chat_id = await agent_chat(http)
        reply_id = await send(http, chat_id)
        await gate.wait_reached()
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))
        assert tab.replica.messages[reply_id]["parts"] == []  # the row has nothing yet
        server.flush_gate.set()
        gate.set()
        stored = await converge(server, http, tab, reply_id, "sse")
        assert tools_of(stored)[0]["arguments"] == '{"text": "hi"}'
        assert stored["content"] == "done"


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_a_client_resuming_while_a_tool_runs_converges(
    live_server: live.LiveServer, transport: str
) -> None:
    live_server.script(Call("c1", "gated", (TEXT,)))
    live_server.script("after")
    kit = live_server.kit
    async with client_for(live_server) as http:
        chat_id = await agent_chat(http, tools=["gated"])
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))
        reply_id = await send(http, chat_id)
        await until_status(http, tab, reply_id, "streaming")
        await wait_until(lambda: _async(kit.reached.is_set()), bool)
        running = await fetch_state(http, chat_id)
        reloaded = Tab(chat_id)
        reloaded.load(running)  # a page reloaded while the tool runs
        kit.opened.set()
        stored = await converge(live_server, http, reloaded, reply_id, transport)
        await converge(live_server, http, tab, reply_id, transport)
        assert tools_of(stored)[0]["status"] == "complete"
        assert kit.calls["gated"] == 1


async def _async(value: Any) -> Any:
    return value


async def test_two_calls_in_one_step_run_together_and_both_reach_the_model(
    live_server: live.LiveServer,
) -> None:
    live_server.script(Call("a", "gated", (TEXT,)), Call("b", "echo", (TEXT,)))
    live_server.script("both done")
    async with client_for(live_server) as http:
        chat_id = await agent_chat(http, tools=["gated", "echo"])
        reply_id = await send(http, chat_id)
        await wait_until(lambda: _async(live_server.kit.reached.is_set()), bool)
        # echo ends while gated still runs: its result is published first
        seen = await wait_until(
            lambda: live_server.amessage(reply_id),
            lambda m: any(p["id"] == "b" and p["status"] == "complete" for p in tools_of(m)),
        )
        assert next(p for p in tools_of(seen) if p["id"] == "a")["status"] == "running"
        live_server.kit.opened.set()
        tab = Tab(chat_id)
        stored = await converge(live_server, http, tab, reply_id, "sse")
        assert [p["status"] for p in tools_of(stored)] == ["complete", "complete"]
        prompt = live_server.provider.prompts[-1]
        assert [t.tool_call_id for t in prompt.turns if t.role == "tool"] == ["a", "b"]


@pytest.mark.parametrize(
    ("tool", "code"),
    [("boom", "boom"), ("crash", "tool_crashed"), ("stall", "timeout")],
)
async def test_a_failing_tool_ends_its_part_failed_and_the_model_is_told(
    make_live_server: Any, tool: str, code: str
) -> None:
    server = make_live_server(settings={"tool_timeout": 0.5})
    server.script(Call("c1", tool, (TEXT,)))
    server.script("sorry")
    async with client_for(server) as http:
        chat_id = await agent_chat(http, tools=[tool])
        reply_id = await send(http, chat_id)
        stored = await converge(server, http, Tab(chat_id), reply_id, "sse")
        part = tools_of(stored)[0]
        assert part["status"] == "failed" and part["error"]["code"] == code
        assert stored["status"] == "complete" and stored["content"] == "sorry"
        told = [t for t in server.provider.prompts[-1].turns if t.role == "tool"]
        assert told[0].is_error and code in told[0].content


async def test_a_flood_of_output_is_cut_and_says_so(make_live_server: Any) -> None:
    server = make_live_server(settings={"tool_output_max": 1000})
    server.script(Call("c1", "flood", (TEXT,)))
    server.script("ok")
    async with client_for(server) as http:
        chat_id = await agent_chat(http, tools=["flood"])
        reply_id = await send(http, chat_id)
        stored = await converge(server, http, Tab(chat_id), reply_id, "sse")
        output = tools_of(stored)[0]["output"]
        assert output.startswith("hellohello") and len(output) < 1200
        assert "[output truncated: 500000 characters, the first 1000 kept]" in output


async def test_invalid_arguments_go_back_to_the_model_which_repairs_the_call(
    live_server: live.LiveServer,
) -> None:
    live_server.script(Call("c1", "echo", ('{"txt": 1}',)))
    live_server.script(Call("c2", "echo", (TEXT,)))
    live_server.script("fixed")
    async with client_for(live_server) as http:
        chat_id = await agent_chat(http)
        reply_id = await send(http, chat_id)
        stored = await converge(live_server, http, Tab(chat_id), reply_id, "sse")
        first, second = tools_of(stored)
        assert first["status"] == "failed" and first["error"]["code"] == "invalid_arguments"
        assert "'text' is a required property" in first["error"]["message"]
        assert second["status"] == "complete"
        assert live_server.kit.calls["echo"] == 1  # the invalid call never ran
        assert stored["content"] == "fixed"


async def test_the_step_limit_ends_the_reply_clearly_keeping_its_text(
    live_server: live.LiveServer,
) -> None:
    for n in range(3):
        live_server.script(f"step {n}. ", Call(f"c{n}", "echo", (TEXT,)))
    async with client_for(live_server) as http:
        chat_id = await agent_chat(http, step_limit=2)
        reply_id = await send(http, chat_id)
        stored = await converge(live_server, http, Tab(chat_id), reply_id, "sse")
        assert stored["status"] == "failed" and stored["error"]["code"] == "step_limit"
        assert stored["content"] == "step 0. step 1. "
        assert [p["status"] for p in tools_of(stored)] == ["complete", "failed"]
        assert live_server.kit.calls["echo"] == 1


async def test_approval_from_a_second_client_runs_the_call_the_first_one_watches(
    live_server: live.LiveServer,
) -> None:
    live_server.script("I will. ", Call("c1", "danger", (TEXT,)))
    live_server.script("Done.")
    async with client_for(live_server) as http, client_for(live_server) as other:
        chat_id = await agent_chat(http, tools=["danger"])
        watcher = Tab(chat_id)
        watcher.load(await fetch_state(http, chat_id))
        reply_id = await send(http, chat_id)
        await until_status(http, watcher, reply_id, "requires_action")
        paused = watcher.replica.messages[reply_id]
        assert tools_of(paused)[0]["status"] == "awaiting_approval"
        assert live_server.kit.calls["danger"] == 0  # nothing runs before the decision
        assert ("message.updated", reply_id) in [(t, d.get("id")) for t, d, _ in watcher.events]
        approved = await other.post(
            f"/api/messages/{reply_id}/tools/c1", json={"decision": "approve"}
        )
        assert approved.status_code == 200, approved.text
        again = await other.post(f"/api/messages/{reply_id}/tools/c1", json={"decision": "deny"})
        assert again.status_code == 409
        stored = await converge(live_server, http, watcher, reply_id, "sse")
        assert tools_of(stored)[0]["status"] == "complete"
        assert stored["content"] == "I will. Done."
        assert live_server.kit.calls["danger"] == 1


async def test_a_denied_call_never_runs_and_the_model_hears_why(
    live_server: live.LiveServer,
) -> None:
    live_server.script(Call("c1", "echo", (TEXT,)))
    live_server.script("Understood.")
    async with client_for(live_server) as http:
        chat_id = await agent_chat(http, approval={"echo": "always"})
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))
        reply_id = await send(http, chat_id)
        await until_status(http, tab, reply_id, "requires_action")
        denied = await http.post(
            f"/api/messages/{reply_id}/tools/c1", json={"decision": "deny", "reason": "not now"}
        )
        assert denied.status_code == 200
        stored = await converge(live_server, http, tab, reply_id, "sse")
        part = tools_of(stored)[0]
        assert part["status"] == "denied" and part["error"]["message"] == "not now"
        assert live_server.kit.calls["echo"] == 0
        told = next(t for t in live_server.provider.prompts[-1].turns if t.role == "tool")
        assert told.is_error and "not now" in told.content


async def test_a_reply_whose_agent_was_deleted_fails_instead_of_running_without_it(
    live_server: live.LiveServer,
) -> None:
    live_server.script("Asking. ", Call("c1", "danger", (TEXT,)))
    live_server.script("Done without my tools.")  # what a bare model call would have said
    async with client_for(live_server) as http:
        chat_id = await agent_chat(http, tools=["danger"])
        agent_id = (await http.get(f"/api/chats/{chat_id}")).json()["chat"]["agent_id"]
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))
        reply_id = await send(http, chat_id)
        await until_status(http, tab, reply_id, "requires_action")
        assert (await http.delete(f"/api/agents/{agent_id}")).status_code == 204
        approved = await http.post(
            f"/api/messages/{reply_id}/tools/c1", json={"decision": "approve"}
        )
        assert approved.status_code == 200, approved.text
        stored = await converge(live_server, http, tab, reply_id, "sse")
        assert stored["status"] == "failed" and stored["error"]["code"] == "unknown_agent"
        assert stored["content"] == "Asking. "
        assert live_server.kit.calls["danger"] == 0
        assert len(live_server.provider.prompts) == 1  # no model call without the agent


async def test_stop_while_awaiting_approval_cancels_the_reply_and_its_call(
    live_server: live.LiveServer,
) -> None:
    live_server.script("Asking. ", Call("c1", "danger", (TEXT,)))
    async with client_for(live_server) as http:
        chat_id = await agent_chat(http, tools=["danger"])
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))
        reply_id = await send(http, chat_id)
        await until_status(http, tab, reply_id, "requires_action")
        stopped = (await http.post(f"/api/messages/{reply_id}/stop")).json()
        assert stopped["status"] == "cancelled" and stopped["content"] == "Asking. "
        assert tools_of(stopped)[0]["status"] == "cancelled"
        late = await http.post(f"/api/messages/{reply_id}/tools/c1", json={"decision": "approve"})
        assert late.status_code == 409
        stored = await converge(live_server, http, tab, reply_id, "sse")
        assert stored == stopped
        assert live_server.kit.calls["danger"] == 0


async def test_stop_while_a_tool_runs_cancels_it_and_keeps_the_text(
    live_server: live.LiveServer,
) -> None:
    live_server.script("Working. ", Call("c1", "gated", (TEXT,)))
    async with client_for(live_server) as http:
        chat_id = await agent_chat(http, tools=["gated"])
        reply_id = await send(http, chat_id)
        await wait_until(lambda: _async(live_server.kit.reached.is_set()), bool)
        stopped = (await http.post(f"/api/messages/{reply_id}/stop")).json()
        assert stopped["status"] == "cancelled" and stopped["content"] == "Working. "
        assert tools_of(stopped)[0]["status"] == "cancelled"
        assert live_server.kit.cancelled.is_set()  # the tool's work was really ended
        stored = await converge(live_server, http, Tab(chat_id), reply_id, "sse")
        assert stored == stopped


async def test_agents_approvals_and_tool_parts_of_another_account_are_404(
    live_server: live.LiveServer,
) -> None:
    live_server.script(Call("c1", "danger", (TEXT,)))
    async with client_for(live_server) as http:
        agent = await make_agent(http, tools=["danger"])
        chat_id = (await http.post("/api/chats", json={"agent_id": agent["id"]})).json()["id"]
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))
        reply_id = await send(http, chat_id)
        await until_status(http, tab, reply_id, "requires_action")
        token = await outsider(live_server)
        async with client_for(live_server, token) as stranger:
            assert (await stranger.get(f"/api/agents/{agent['id']}")).status_code == 404
            assert (await stranger.patch(f"/api/agents/{agent['id']}", json={})).status_code == 404
            assert (await stranger.delete(f"/api/agents/{agent['id']}")).status_code == 404
            assert (await stranger.get("/api/agents")).json()["agents"] == []
            decided = await stranger.post(
                f"/api/messages/{reply_id}/tools/c1", json={"decision": "approve"}
            )
            assert decided.status_code == 404
            own = (await stranger.post("/api/chats", json={})).json()["id"]
            borrowed = await stranger.patch(f"/api/chats/{own}", json={"agent_id": agent["id"]})
            assert borrowed.status_code == 422
        assert live_server.kit.calls["danger"] == 0
        # a call id that awaits nothing, on the owner's own message: 409, not a run
        wrong = await http.post(
            f"/api/messages/{reply_id}/tools/nope", json={"decision": "approve"}
        )
        assert wrong.status_code == 409
        await http.post(f"/api/messages/{reply_id}/stop")


async def test_an_agent_checks_its_fields(live_server: live.LiveServer) -> None:
    async with client_for(live_server) as http:
        bad_tool = await http.post(
            "/api/agents", json={"name": "a", "model": "scripted:default", "tools": ["nope"]}
        )
        assert bad_tool.status_code == 422 and "nope" in bad_tool.text
        bad_model = await http.post("/api/agents", json={"name": "a", "model": "x:y"})
        assert bad_model.status_code == 422
        too_many = await http.post(
            "/api/agents", json={"name": "a", "model": "scripted:default", "step_limit": 999}
        )
        assert too_many.status_code == 422
        agent = await make_agent(http, tools=["echo", "danger"])
        assert agent["approval"] == {"echo": "never", "danger": "always"}  # destructive
        assert agent["step_limit"] == 10
        changed = await http.patch(f"/api/agents/{agent['id']}", json={"name": "renamed"})
        assert changed.json()["name"] == "renamed" and changed.json()["tools"] == agent["tools"]
        listed = (await http.get("/api/tools")).json()["tools"]
        assert {"echo", "calculator", "current_time"} <= {t["name"] for t in listed}


async def test_a_call_cannot_be_approved_through_a_message_of_another_chat(
    live_server: live.LiveServer,
) -> None:
    live_server.script(Call("c1", "danger", (TEXT,)))
    live_server.script("other")
    async with client_for(live_server) as http:
        chat_id = await agent_chat(http, tools=["danger"])
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))
        reply_id = await send(http, chat_id)
        await until_status(http, tab, reply_id, "requires_action")
        other_chat = await agent_chat(http, tools=["danger"])
        other_reply = await send(http, other_chat)
        await live_server.adrain()
        decided = await http.post(
            f"/api/messages/{other_reply}/tools/c1", json={"decision": "approve"}
        )
        assert decided.status_code == 409
        assert (await live_server.amessage(reply_id))["status"] == "requires_action"
        assert live_server.kit.calls["danger"] == 0
        await http.post(f"/api/messages/{reply_id}/stop")
