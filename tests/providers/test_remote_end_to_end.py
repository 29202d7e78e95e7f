"""OpenAI-compatible and Anthropic models through the whole service, against a local server
speaking each API's wire format: replies, thinking, usage, cost, and readable failures."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import client_for
from tests.providers.wire import Wire
from tests.support.clients import Tab, converge_sse, fetch_state
from tests.test_streaming import send, start_chat


def remote_settings(wire: Wire) -> dict[str, Any]:
    return {
        "providers": ("openai", "anthropic"),
        "default_model": "openai:chat",
        "openai_base_url": f"{wire.url}/v1",
        "openai_api_key": "sk-test",
        "openai_models": ("chat", "error-event"),
        "anthropic_base_url": wire.url,
        "anthropic_api_key": "sk-ant-test",
        "anthropic_models": ("chat", "error-event"),
        "prices": {"openai:chat": (1_000_000.0, 2_000_000.0), "anthropic:chat": (0.0, 1e6)},
        "provider_timeout": 10.0,
    }


@pytest.mark.parametrize(
    ("model", "usage", "cost"),
    [("openai:chat", (12, 9, 3), 30.0), ("anthropic:chat", (25, 30, 0), 30.0)],
)
async def test_a_remote_reply_streams_with_thinking_usage_and_cost(
    make_live_server: Any, wire: Wire, model: str, usage: tuple[int, int, int], cost: float
) -> None:
    server = make_live_server(settings=remote_settings(wire))
    async with client_for(server) as http:
        models = (await http.get("/api/models")).json()["models"]
        assert model in {m["id"] for m in models}
        chat_id = await start_chat(http)
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))
        reply_id = await send(http, chat_id, "hi", model=model)
        await converge_sse(http, tab, [reply_id])
        stored = await server.amessage(reply_id)
        assert stored["status"] == "complete"
        assert stored["content"] == "Hello, world" and stored["thinking"] == "Let me think."
        assert tab.replica.messages[reply_id] == stored
        (generation,) = (await http.get("/api/generations")).json()["generations"]
        got = (
            generation["input_tokens"],
            generation["output_tokens"],
            generation["reasoning_tokens"],
        )
        assert got == usage
        assert generation["cost"] == pytest.approx(cost)
        assert generation["model"] == model and generation["status"] == "complete"


@pytest.mark.parametrize("model", ["openai:error-event", "anthropic:error-event"])
async def test_a_remote_failure_mid_stream_keeps_the_partial_text_and_says_why(
    make_live_server: Any, wire: Wire, model: str
) -> None:
    server = make_live_server(settings=remote_settings(wire))
    async with client_for(server) as http:
        chat_id = await start_chat(http)
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))
        reply_id = await send(http, chat_id, "hi", model=model)
        await converge_sse(http, tab, [reply_id])
        stored = await server.amessage(reply_id)
        assert stored["status"] == "failed"
        assert stored["content"]  # what streamed before the error is kept
        assert stored["error"]["code"] == "server_error"
        assert "rror" in stored["error"]["message"] or "verloaded" in stored["error"]["message"]
        assert tab.replica.messages[reply_id] == stored
        (generation,) = (await http.get("/api/generations")).json()["generations"]
        assert generation["status"] == "failed"
        assert generation["error"] == stored["error"]


async def test_an_unknown_model_is_refused_at_post_time(make_live_server: Any, wire: Wire) -> None:
    server = make_live_server(settings=remote_settings(wire))
    async with client_for(server) as http:
        chat_id = await start_chat(http)
        response = await http.post(
            f"/api/chats/{chat_id}/messages",
            json={"content": "hi", "model": "openai:not-configured"},
        )
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "unknown_model"
        assert (await fetch_state(http, chat_id))["messages"] == []
