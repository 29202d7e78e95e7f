"""`AnthropicProvider` against the scripted wire server: the real SDK parses real bytes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncGenerator

import pytest

from gapless.providers.anthropic import AnthropicProvider
from gapless.providers.base import Prompt, Text, Thinking, Turn, Usage
from tests.providers.conftest import drain
from tests.providers.wire import Wire

PROMPT = Prompt(turns=(Turn("user", "Say hello"),), system="Be brief.")
OPENED = Usage(input_tokens=25, output_tokens=1)  # from message_start


def provider(url: str, timeout: float = 5.0, budget: int | None = None) -> AnthropicProvider:
    return AnthropicProvider(api_key="sk-ant-test", base_url=url, models=["claude-wire"],
                             timeout=timeout, thinking_budget=budget)


async def test_stream_yields_thinking_then_text_with_usage_from_start_and_delta(wire: Wire) -> None:
    chunks, error = await drain(provider(wire.url, budget=2048).stream("chat", PROMPT))

    assert error is None
    assert chunks == [
        OPENED,
        Thinking("Let me"),
        Thinking(" think."),
        Text("Hello"),
        Text(", world"),
        Usage(input_tokens=25, output_tokens=30),
    ]


async def test_request_carries_key_system_turns_and_thinking_budget(wire: Wire) -> None:
    prompt = Prompt(turns=(Turn("user", "Hi"), Turn("assistant", "Yo"), Turn("user", "Go")),
                    system="Be brief.", max_tokens=100)
    await drain(provider(wire.url, budget=2048).stream("chat", prompt))

    [request] = wire.seen
    assert request.path == "/v1/messages"
    assert request.headers["authorization"] == "Bearer sk-ant-test"  # SDK 2.x sends keys as bearer
    assert request.body["stream"] is True
    assert request.body["system"] == "Be brief."
    assert request.body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert request.body["max_tokens"] == 100 + 2048  # the budget must stay below max_tokens
    assert request.body["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Yo"},
        {"role": "user", "content": "Go"},
    ]


async def test_without_budget_no_thinking_is_requested(wire: Wire) -> None:
    await drain(provider(wire.url).stream("chat", Prompt(turns=(Turn("user", "Hi"),))))

    [request] = wire.seen
    assert "thinking" not in request.body
    assert "system" not in request.body
    assert request.body["max_tokens"] == 4096


@pytest.mark.parametrize(
    ("model", "code", "words"),
    [
        ("unauthorized", "auth", "invalid x-api-key"),
        ("forbidden", "auth", "does not have permission"),
        ("rate-limited", "rate_limit", "rate limit"),
        ("claude-nope", "model_not_found", "model: claude-nope"),
        ("bad", "bad_request", "max_tokens: Field required"),
        ("overloaded", "server_error", "Overloaded"),
    ],
)
async def test_http_errors_map_to_stable_codes(
    wire: Wire, model: str, code: str, words: str
) -> None:
    chunks, error = await drain(provider(wire.url).stream(model, PROMPT))

    assert chunks == []
    assert error is not None
    assert error.code == code
    assert error.message.startswith("anthropic: HTTP ")
    assert words in error.message
    assert len(wire.seen) == 1  # never retried: a retry could repeat chunks


async def test_error_event_mid_stream_is_server_error_after_the_partial_text(wire: Wire) -> None:
    chunks, error = await drain(provider(wire.url).stream("error-event", PROMPT))

    assert chunks == [OPENED, Text("Hel")]
    assert error is not None
    assert error.code == "server_error"
    assert error.message == "anthropic: error in the stream: Overloaded"


async def test_connection_dropped_mid_stream_is_dropped_after_the_partial_text(wire: Wire) -> None:
    chunks, error = await drain(provider(wire.url).stream("drop", PROMPT))

    assert chunks == [OPENED, Text("Hel"), Text("lo")]
    assert error is not None
    assert error.code == "dropped"


async def test_stall_past_the_timeout_is_timeout_after_the_partial_text(wire: Wire) -> None:
    chunks, error = await drain(provider(wire.url, timeout=0.5).stream("stall", PROMPT))

    assert chunks == [OPENED, Text("Hel")]
    assert error is not None
    assert error.code == "timeout"


async def test_closing_the_stream_hangs_up_on_the_server(wire: Wire) -> None:
    stream = provider(wire.url).stream("stall", PROMPT)
    assert isinstance(stream, AsyncGenerator)
    assert [await anext(stream), await anext(stream)] == [OPENED, Text("Hel")]

    await stream.aclose()  # what `stop` does

    await asyncio.wait_for(wire.hung_up.wait(), 1.0)


async def test_refused_connection_is_connection() -> None:
    with socket.socket() as free:  # bound, never listening: connecting is refused
        free.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{free.getsockname()[1]}"
        chunks, error = await drain(provider(url).stream("chat", PROMPT))

    assert chunks == []
    assert error is not None
    assert error.code == "connection"


def test_models_are_the_configured_ones() -> None:
    assert [m.id for m in provider("http://unused").models()] == ["anthropic:claude-wire"]
