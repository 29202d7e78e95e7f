"""An agent that takes its instructions from a prompt, through the whole service: moving
`production` changes what new replies use and not a reply in progress (a second step after
a tool call keeps the version its reply started with); the reply and its trace record the
version, and the trace list filters by it.
"""

from __future__ import annotations

import json

from gapless.observe.recorder import trace_id_of
from tests.conftest import client_for
from tests.support.scripted import Call, Gate
from tests.support.server import LiveServer
from tests.test_agent_loop import make_agent
from tests.test_streaming import send

TEXT = json.dumps({"text": "hello"})


async def test_moving_production_changes_new_replies_and_not_a_reply_in_progress(
    live_server: LiveServer,
) -> None:
    async with client_for(live_server) as http:
        await http.post(
            "/api/prompts",
            json={"name": "voice", "content": "Speak as {{ who }}.", "labels": ["production"]},
        )
        await http.post(
            "/api/prompts/voice/versions", json={"content": "Speak plainly, {{ who }}."}
        )
        ref = {"name": "voice", "label": "production", "variables": {"who": "a pirate"}}
        agent = await make_agent(http, tools=["echo"], prompt=ref)
        assert agent["prompt"] == ref
        chat = (await http.post("/api/chats", json={"title": "t", "agent_id": agent["id"]})).json()

        held = Gate()
        live_server.script(Call("c1", "echo", (TEXT,)), held)  # step 1 calls a tool, then waits
        live_server.script("Done.")  # step 2, after the tool
        first = await send(http, chat["id"])
        await held.wait_reached()
        moved = await http.put("/api/prompts/voice/labels/production", json={"version": 2})
        assert moved.status_code == 200
        held.set()
        await live_server.adrain()
        step_one, step_two = live_server.provider.prompts[-2:]
        assert step_one.system == step_two.system == "Speak as a pirate."

        live_server.script("Ahoy.")
        second = await send(http, chat["id"])
        await live_server.adrain()
        assert live_server.provider.prompts[-1].system == "Speak plainly, a pirate."

        stored = [(await http.get(f"/api/messages/{m}")).json()["message"] for m in (first, second)]
        assert [m["prompt"] for m in stored] == [
            {"name": "voice", "version": 1},
            {"name": "voice", "version": 2},
        ]


async def test_a_trace_records_the_prompt_version_and_the_trace_list_filters_by_it(
    live_server: LiveServer,
) -> None:
    async with client_for(live_server) as http:
        await http.post(
            "/api/prompts", json={"name": "voice", "content": "v1", "labels": ["production"]}
        )
        await http.post("/api/prompts/voice/versions", json={"content": "v2"})
        agent = await make_agent(http, tools=[], prompt={"name": "voice"})
        chat = (await http.post("/api/chats", json={"title": "t", "agent_id": agent["id"]})).json()
        first = await send(http, chat["id"])
        await live_server.adrain()
        await http.put("/api/prompts/voice/labels/production", json={"version": 2})
        second = await send(http, chat["id"])
        await live_server.adrain()
        await live_server.arun(live_server.runtime.recorder.flush())
        trace = (await http.get(f"/api/traces/{trace_id_of(first)}")).json()
        assert (trace["prompt_name"], trace["prompt_version"]) == ("voice", 1)
        listed = (await http.get("/api/traces?prompt_name=voice&prompt_version=2")).json()
        assert [t["reply_id"] for t in listed["traces"]] == [second]


async def test_an_agent_naming_a_prompt_it_cannot_resolve_is_refused(
    live_server: LiveServer,
) -> None:
    async with client_for(live_server) as http:
        refused = await http.post(
            "/api/agents",
            json={"name": "a", "model": "scripted:default", "prompt": {"name": "missing"}},
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "unknown_prompt"
