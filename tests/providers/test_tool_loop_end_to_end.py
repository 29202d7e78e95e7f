"""The demo and the embedded model run a real tool loop through the whole service: the call
streams as deltas, the built-in calculator runs, and the next step answers from its result."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import client_for
from tests.support.clients import Tab, converge_sse, fetch_state
from tests.test_streaming import send


async def agent_chat(http: httpx.AsyncClient, model: str, tools: list[str]) -> str:
    agent = await http.post("/api/agents", json={"name": "maths", "model": model, "tools": tools})
    assert agent.status_code == 201, agent.text
    chat = await http.post("/api/chats", json={"title": "t", "agent_id": agent.json()["id"]})
    assert chat.status_code == 201, chat.text
    return str(chat.json()["id"])


async def test_the_demo_model_calls_the_calculator_and_answers_with_its_result(
    make_live_server: Any,
) -> None:
    server = make_live_server(settings={"providers": ("demo",), "default_model": "demo:default"})
    async with client_for(server) as http:
        chat_id = await agent_chat(http, "demo:default", ["calculator", "current_time"])
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))
        reply_id = await send(http, chat_id, "What is 12*7?", model="demo:default")
        await converge_sse(http, tab, [reply_id])
        stored = await server.amessage(reply_id)
        assert stored["status"] == "complete", stored["error"]
        assert tab.replica.messages[reply_id] == stored
        tab.assert_prefixes(reply_id, stored)
        assert [p["type"] for p in stored["parts"]] == ["thinking", "text", "tool", "text"]
        call = stored["parts"][2]
        assert (call["name"], call["status"]) == ("calculator", "complete")
        assert json.loads(call["arguments"]) == {"expression": "12*7"}
        assert json.loads(call["output"])["result"] == 84
        assert stored["content"] == "Let me calculate 12*7.\n\nThe result is 84."
        pieces = [d["tool"]["arguments"] for t, d, _ in tab.events
                  if t == "message.delta" and "arguments" in d.get("tool", {})]
        assert pieces == ['{"expression": ', '"12*7"', "}"]  # over several deltas
        generations = (await http.get("/api/generations", params={"chat_id": chat_id})).json()
        assert sorted(g["step"] for g in generations["generations"]) == [1, 2]


async def test_the_embedded_model_runs_a_real_tool_loop(make_live_server: Any) -> None:
    settings = {"providers": ("local",), "default_model": "local:smollm2",
                "local_max_tokens": 64}
    server = make_live_server(settings=settings)
    # The 135M model chooses poorly: force the call, as a `tool_choice` would, to test the
    # mechanics (its arguments are whatever it writes within the schema's grammar).
    server.runtime.context.providers["local"].tool_choice = "required"
    async with client_for(server) as http:
        chat_id = await agent_chat(http, "local:smollm2", ["calculator"])
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))
        reply_id = await send(http, chat_id, "What is 12*7?", model="local:smollm2")
        await converge_sse(http, tab, [reply_id])
        stored = await server.amessage(reply_id)
        assert stored["status"] == "complete", stored["error"]
        assert tab.replica.messages[reply_id] == stored
        tab.assert_prefixes(reply_id, stored)
        call, *answer = stored["parts"]
        assert call["type"] == "tool" and call["name"] == "calculator"
        assert isinstance(json.loads(call["arguments"])["expression"], str)  # schema-valid
        assert call["status"] in {"complete", "failed"}  # nonsense arithmetic fails, told so
        assert [p["type"] for p in answer] == ["text"] and answer[0]["text"].strip()
        generations = (await http.get("/api/generations", params={"chat_id": chat_id})).json()
        assert sorted(g["step"] for g in generations["generations"]) == [1, 2]
        print(f"embedded model: called calculator({call['arguments']}) -> {call['status']}; "
              f"answered {answer[0]['text']!r}")
