"""A decision that arrives between a tool call's `awaiting_approval` delta and the pause's
write: a client that saw the call await approval may decide it at once, whatever the
reply's row says yet (`db.agents.decide`: "a reply not paused yet ... finds the decision
when it pauses").

Found while writing the scaled-out agent tests (`tests/scale/test_agents_scaled.py`),
where the window is real but cannot be held open from outside; here the debounced
write is held at the live server's flush gate, so the row is still `pending` (no
write has made it `streaming`) while the run waits to write the pause.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import client_for
from tests.support.clients import Tab, fetch_state, follow_sse
from tests.support.scripted import Call, Gate
from tests.test_agent_loop import agent_chat, converge, tools_of
from tests.test_streaming import send, wait_until

TEXT = json.dumps({"text": "hello"})


class _Awaiting(Exception):
    pass


async def test_a_call_approved_as_soon_as_it_awaits_approval_runs_even_before_any_write(
    make_live_server: Any,
) -> None:
    server = make_live_server(debounce=0.0)
    gate = Gate()
    server.script("I will. ", gate, Call("c1", "danger", (TEXT,)))
    server.script("Done.")
    flusher = server.runtime.context.flusher
    server.flush_gate.clear()  # the first debounced write waits, holding the flusher
    async with client_for(server) as http:
        chat_id = await agent_chat(http, tools=["danger"])
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))
        reply_id = await send(http, chat_id)
        await gate.wait_reached()

        async def flushing() -> bool:  # the write of "I will. " is held at the gate
            return bool(flusher._lock.locked())

        await wait_until(flushing, bool)
        gate.set()  # the call streams, is recorded, and its status published; the pause waits

        async def awaiting(_: int) -> None:
            parts = tools_of(tab.replica.messages.get(reply_id, {"parts": []}))
            if parts and parts[0]["status"] == "awaiting_approval":
                raise _Awaiting

        with pytest.raises(_Awaiting):
            await follow_sse(http, tab, [reply_id], on_event=awaiting)
        assert (await server.amessage(reply_id))["status"] == "pending"  # no write yet
        try:
            approved = await http.post(
                f"/api/messages/{reply_id}/tools/c1", json={"decision": "approve"}
            )
        finally:
            server.flush_gate.set()
        assert approved.status_code == 200, approved.text
        stored = await converge(server, http, tab, reply_id, "sse")
        assert tools_of(stored)[0]["status"] == "complete"
        assert stored["content"] == "I will. Done."
        assert server.kit.calls["danger"] == 1
