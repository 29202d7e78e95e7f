"""`AnthropicProvider` against the scripted wire server: the real SDK parses real bytes."""

from __future__ import annotations

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


def test_models_are_the_configured_ones() -> None:
    assert [m.id for m in provider("http://unused").models()] == ["anthropic:claude-wire"]


@pytest.mark.parametrize(
    ("model", "code", "message"),
    [
        ("forbidden", "auth",
         "anthropic: HTTP 403: Your API key does not have permission to use this resource."),
        ("overloaded", "server_error", "anthropic: HTTP 529: Overloaded"),
        ("error-event", "server_error", "anthropic: error in the stream: Overloaded"),
    ],
)
async def test_errors_by_type_keep_the_apis_own_words(
    wire: Wire, model: str, code: str, message: str
) -> None:
    _, error = await drain(provider(wire.url).stream(model, PROMPT))

    assert error is not None
    assert (error.code, error.message) == (code, message)
