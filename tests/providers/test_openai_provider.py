"""`OpenAIProvider` against the scripted wire server: the real SDK parses real bytes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncGenerator

import pytest

from gapless.providers.base import Prompt, Text, Thinking, Turn, Usage
from gapless.providers.openai import OpenAIProvider
from tests.providers.conftest import drain
from tests.providers.wire import Wire

PROMPT = Prompt(turns=(Turn("user", "Say hello"),), system="Be brief.")


def provider(url: str, timeout: float = 5.0) -> OpenAIProvider:
    return OpenAIProvider(name="ollama", base_url=f"{url}/v1", api_key="sk-test", timeout=timeout)


async def test_stream_yields_reasoning_from_both_fields_then_text_then_usage(wire: Wire) -> None:
    chunks, error = await drain(provider(wire.url).stream("chat", PROMPT))

    assert error is None
    assert chunks == [
        Thinking("Let me"),
        Thinking(" think."),
        Text("Hello"),
        Text(", world"),
        Usage(input_tokens=12, output_tokens=9, reasoning_tokens=3),
    ]


async def test_request_asks_for_usage_and_carries_system_and_turns(wire: Wire) -> None:
    prompt = Prompt(turns=(Turn("user", "Hi"), Turn("assistant", "Yo"), Turn("user", "Go")),
                    system="Be brief.", max_tokens=7)
    await drain(provider(wire.url).stream("chat", prompt))

    [request] = wire.seen
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.body["max_tokens"] == 7
    assert request.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Yo"},
        {"role": "user", "content": "Go"},
    ]


async def test_server_without_usage_gets_counted_usage(wire: Wire) -> None:
    prompt = Prompt(turns=(Turn("user", "x" * 21),), system="abc")  # 24 characters

    chunks, error = await drain(provider(wire.url).stream("quiet", prompt))

    assert error is None
    assert chunks == [Text("One"), Text(" two"), Usage(input_tokens=6, output_tokens=2)]


@pytest.mark.parametrize(
    ("model", "code", "words"),
    [
        ("unauthorized", "auth", "Incorrect API key"),
        ("rate-limited", "rate_limit", "Rate limit reached"),
        ("no-such-model", "model_not_found", "`no-such-model` does not exist"),
        ("bad", "bad_request", "at least one message"),
        ("broken", "server_error", "had an error"),
    ],
)
async def test_http_errors_map_to_stable_codes(
    wire: Wire, model: str, code: str, words: str
) -> None:
    chunks, error = await drain(provider(wire.url).stream(model, PROMPT))

    assert chunks == []
    assert error is not None
    assert error.code == code
    assert error.message.startswith("ollama: HTTP ")
    assert words in error.message
    assert len(wire.seen) == 1  # never retried: a retry could repeat chunks


async def test_error_event_mid_stream_is_server_error_after_the_partial_text(wire: Wire) -> None:
    chunks, error = await drain(provider(wire.url).stream("error-event", PROMPT))

    assert chunks == [Text("Hel")]
    assert error is not None
    assert error.code == "server_error"
    assert "had an error" in error.message


async def test_connection_dropped_mid_stream_is_dropped_after_the_partial_text(wire: Wire) -> None:
    chunks, error = await drain(provider(wire.url).stream("drop", PROMPT))

    assert chunks == [Text("Hel"), Text("lo")]
    assert error is not None
    assert error.code == "dropped"


async def test_stall_past_the_timeout_is_timeout_after_the_partial_text(wire: Wire) -> None:
    chunks, error = await drain(provider(wire.url, timeout=0.5).stream("stall", PROMPT))

    assert chunks == [Text("Hel")]
    assert error is not None
    assert error.code == "timeout"


async def test_closing_the_stream_hangs_up_on_the_server(wire: Wire) -> None:
    stream = provider(wire.url).stream("stall", PROMPT)
    assert isinstance(stream, AsyncGenerator)
    assert await anext(stream) == Text("Hel")

    await stream.aclose()  # what `stop` does

    await asyncio.wait_for(wire.hung_up.wait(), 1.0)


async def test_cancelling_a_waiting_read_hangs_up_on_the_server(wire: Wire) -> None:
    stream = provider(wire.url).stream("stall", PROMPT)
    assert await anext(stream) == Text("Hel")
    waiting = asyncio.ensure_future(anext(stream))  # `generation` cancels this on stop
    await asyncio.sleep(0)  # one loop step: the task starts, and blocks reading the socket

    waiting.cancel()

    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.wait_for(wire.hung_up.wait(), 1.0)


async def test_refused_connection_is_connection() -> None:
    with socket.socket() as free:  # bound, never listening: connecting is refused
        free.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{free.getsockname()[1]}"
        chunks, error = await drain(provider(url).stream("chat", PROMPT))

    assert chunks == []
    assert error is not None
    assert error.code == "connection"


def test_models_are_named_after_the_instance() -> None:
    ollama = OpenAIProvider(name="ollama", models=["llama3.2", "qwen3:8b"])

    assert [m.id for m in ollama.models()] == ["ollama:llama3.2", "ollama:qwen3:8b"]
    assert {m.provider for m in ollama.models()} == {"ollama"}
