"""Traces the real generation job records, exactly: a plain reply, two steps with two
parallel tool calls, a failed tool, a provider error, a stop; time to first chunk; cost
per step and roll-ups against the price table."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from gapless.observe.recorder import trace_id_of
from gapless.providers.base import Usage
from tests.conftest import client_for
from tests.support.scripted import Call, Fail, Gate
from tests.support.server import LiveServer
from tests.test_agent_loop import agent_chat
from tests.test_streaming import send, start_chat, wait_until

PRICES = {"scripted:default": (1.0, 2.0)}  # USD per million input / output tokens


@pytest.fixture
def priced(make_live_server: Any) -> LiveServer:
    server: LiveServer = make_live_server(settings={"prices": PRICES})
    return server


async def ended(server: LiveServer, http: httpx.AsyncClient, reply_id: str) -> dict[str, Any]:
    """The reply's trace once the run ended and the recorder wrote it."""
    await server.adrain()

    async def read() -> dict[str, Any]:
        await server.arun(server.runtime.recorder.flush())
        response = await http.get(f"/api/traces/{trace_id_of(reply_id)}")
        return response.json() if response.status_code == 200 else {}

    trace: dict[str, Any] = await wait_until(
        read, lambda t: t.get("status") not in (None, "running")
    )
    return trace


def tree(trace: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(o["kind"], o["name"], o["step"], o["status"]) for o in trace["observations"]]


async def test_a_plain_reply_is_one_model_call(priced: LiveServer) -> None:
    priced.script("Hello", " there.", Usage(input_tokens=100, output_tokens=50))
    async with client_for(priced) as http:
        chat_id = await start_chat(http)
        reply_id = await send(http, chat_id, "Say hello")
        trace = await ended(priced, http, reply_id)
    assert trace["status"] == "complete" and trace["chat_id"] == chat_id
    assert tree(trace) == [("generation", "chat default", 1, "complete")]
    [call] = trace["observations"]
    assert call["model"] == "scripted:default" and call["provider"] == "scripted"
    assert call["input"][-1] == {"role": "user", "content": "Say hello"}
    assert (call["input_tokens"], call["output_tokens"]) == (100, 50)
    assert call["cost"] == pytest.approx((100 * 1.0 + 50 * 2.0) / 1e6)
    assert trace["input"] == "Say hello" and trace["output"] == "Hello there."
    assert trace["reply_id"] == reply_id and trace["user_id"] is not None  # who asked


async def test_two_steps_with_two_parallel_tool_calls_and_their_cost(priced: LiveServer) -> None:
    priced.script(
        "Checking. ",
        Call("c1", "echo", ('{"text": "a"}',)),
        Call("c2", "boom", ('{"text": "b"}',)),
        Usage(input_tokens=200, output_tokens=20),
    )
    priced.script("One worked.", Usage(input_tokens=400, output_tokens=10))
    async with client_for(priced) as http:
        chat_id = await agent_chat(http, tools=["echo", "boom"])
        reply_id = await send(http, chat_id, "two tools")
        trace = await ended(priced, http, reply_id)
        usage = (await http.get(f"/api/chats/{chat_id}/usage")).json()
    assert trace["status"] == "complete" and trace["agent_name"] == "helper"
    assert tree(trace) == [
        ("generation", "chat default", 1, "complete"),
        ("tool", "execute_tool echo", 1, "complete"),
        ("tool", "execute_tool boom", 1, "failed"),
        ("generation", "chat default", 2, "complete"),
    ]
    echo, boom = trace["observations"][1:3]
    assert echo["input"] == {"text": "a"} and echo["output"] == {"echo": "a"}
    assert boom["error"]["code"] == "boom" and echo["attributes"]["call_id"] == "c1"
    first, second = trace["observations"][0], trace["observations"][3]
    assert first["finish_reason"] in (None, "tool_calls", "tool_use")
    assert first["cost"] == pytest.approx((200 + 20 * 2) / 1e6)
    assert second["cost"] == pytest.approx((400 + 10 * 2) / 1e6)
    assert (trace["steps"], trace["generations"], trace["tools"]) == (2, 2, 2)
    assert (trace["input_tokens"], trace["output_tokens"]) == (600, 30)
    assert trace["cost"] == pytest.approx(first["cost"] + second["cost"])
    assert usage["traces"] == 1 and usage["generations"] == 2 and usage["tools"] == 2
    assert usage["cost"] == pytest.approx(trace["cost"])
    assert "echo" in second["attributes"]["tools"]


async def test_a_provider_error_fails_the_call_and_the_trace(priced: LiveServer) -> None:
    priced.script("Part", Fail("upstream_down", "the model is down"))
    async with client_for(priced) as http:
        reply_id = await send(http, await start_chat(http), "hi")
        trace = await ended(priced, http, reply_id)
    assert trace["status"] == "failed"
    assert trace["error"] == {"code": "upstream_down", "message": "the model is down"}
    assert tree(trace) == [("generation", "chat default", 1, "failed")]
    assert trace["observations"][0]["error"]["code"] == "upstream_down"


async def test_a_stop_cancels_the_open_call_and_the_trace(priced: LiveServer) -> None:
    gate = Gate()
    priced.script("Long", gate, " answer")
    async with client_for(priced) as http:
        reply_id = await send(http, await start_chat(http), "hi")
        await gate.wait_reached()
        await http.post(f"/api/messages/{reply_id}/stop")
        gate.set()
        trace = await ended(priced, http, reply_id)
    assert trace["status"] == "cancelled"
    assert tree(trace) == [("generation", "chat default", 1, "cancelled")]
    assert all(o["ended_at"] is not None for o in trace["observations"])


async def test_time_to_first_token_is_the_first_chunks_time(priced: LiveServer) -> None:
    gate = Gate()
    priced.script(gate, "Late", " answer")
    held = 0.4
    async with client_for(priced) as http:
        reply_id = await send(http, await start_chat(http), "hi")
        await gate.wait_reached()
        began = time.monotonic()
        await asyncio.sleep(held)  # the first chunk is held this long, on purpose
        gate.set()
        trace = await ended(priced, http, reply_id)
        waited = time.monotonic() - began
    [call] = trace["observations"]
    assert call["ttft_ms"] >= held * 1000
    assert call["ttft_ms"] <= call["duration_ms"]
    assert trace["ttft_ms"] == call["ttft_ms"]
    assert waited >= held
