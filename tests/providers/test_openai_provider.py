"""`OpenAIProvider` against the scripted wire server: the real SDK parses real bytes."""

from __future__ import annotations

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


def test_models_are_named_after_the_instance() -> None:
    ollama = OpenAIProvider(name="ollama", models=["llama3.2", "qwen3:8b"])

    assert [m.id for m in ollama.models()] == ["ollama:llama3.2", "ollama:qwen3:8b"]
    assert {m.provider for m in ollama.models()} == {"ollama"}


async def test_error_message_is_the_servers_own_words(wire: Wire) -> None:
    _, error = await drain(provider(wire.url).stream("no-such-model", PROMPT))

    assert error is not None
    assert error.message == (
        "ollama: HTTP 404: "
        "The model `no-such-model` does not exist or you do not have access to it."
    )
