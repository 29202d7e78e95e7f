"""`AnthropicProvider` against the scripted wire server: the real SDK parses real bytes."""

from __future__ import annotations

import pytest

from gapless.providers.anthropic import AnthropicProvider
from gapless.providers.base import (
    Finish,
    Prompt,
    Text,
    Thinking,
    ToolCall,
    ToolCallArgs,
    ToolCallEnd,
    ToolCallStart,
    ToolSpec,
    Turn,
    Usage,
)
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
        Thinking("", signature="EqQBCgIYAhIM1gbcDa9GJwZA"),  # at the thinking block's end
        Text("Hello"),
        Text(", world"),
        Finish("end_turn"),
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


# --- tools ---------------------------------------------------------------------------------

CALCULATOR = ToolSpec("calculator", "Evaluate arithmetic.",
                      {"type": "object", "properties": {"expression": {"type": "string"}}})
READ = ToolSpec("files.read", "Read a file.",
                {"type": "object", "properties": {"path": {"type": "string"}}})
TOOLS = Prompt(turns=(Turn("user", "12*7?"),), tools=(CALCULATOR, READ))


async def test_tool_use_streams_its_input_json_as_arguments(wire: Wire) -> None:
    chunks, error = await drain(provider(wire.url).stream("tools", TOOLS))

    assert error is None
    assert chunks == [
        Usage(input_tokens=25 + 20, output_tokens=1, cached_tokens=20),
        Text("Let me compute."),
        ToolCallStart("toolu_01A", "calculator"),
        ToolCallArgs("toolu_01A", '{"expression": '),  # the empty first partial_json: nothing
        ToolCallArgs("toolu_01A", '"12*7"}'),
        ToolCallEnd("toolu_01A"),
        Finish("tool_use"),
        Usage(input_tokens=45, output_tokens=40, cached_tokens=20),
    ]


async def test_thinking_between_two_calls_keeps_each_blocks_signature(wire: Wire) -> None:
    chunks, error = await drain(provider(wire.url, budget=2048).stream("tools-interleaved", TOOLS))

    assert error is None
    assert chunks == [
        Usage(input_tokens=30, output_tokens=1),
        Thinking("First, compute."),
        Thinking("", signature="sig-one"),
        ToolCallStart("toolu_01", "calculator"),
        ToolCallArgs("toolu_01", '{"expression": "1+1"}'),
        ToolCallEnd("toolu_01"),
        Thinking("Then read."),
        Thinking("", signature="sig-two"),
        ToolCallStart("toolu_02", "files.read"),  # the API's files__read, read back
        ToolCallArgs("toolu_02", "{}"),  # no input streamed: an empty object
        ToolCallEnd("toolu_02"),
        Finish("tool_use"),
        Usage(input_tokens=30, output_tokens=60),
    ]
    [request] = wire.seen
    assert request.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"


async def test_an_error_event_mid_arguments_leaves_the_call_unended(wire: Wire) -> None:
    chunks, error = await drain(provider(wire.url).stream("tools-error", TOOLS))

    assert chunks == [
        Usage(input_tokens=25, output_tokens=1),
        ToolCallStart("toolu_01A", "calculator"),
        ToolCallArgs("toolu_01A", '{"expr'),
    ]
    assert error is not None
    assert (error.code, error.message) == ("server_error",
                                           "anthropic: error in the stream: Overloaded")


async def test_request_renders_tools_and_earlier_calls_and_results_natively(wire: Wire) -> None:
    prompt = Prompt(
        turns=(
            Turn("user", "12*7, and read /tmp/a.txt"),
            Turn("assistant", "Checking.", tool_calls=(
                ToolCall("toolu_1", "calculator", '{"expression": "12*7"}'),
                ToolCall("toolu_2", "files.read", '{"path": "/tmp/a.txt"'),  # invalid JSON
            ), thinking="I should compute.", signature="sig-1"),
            Turn("tool", "84", tool_call_id="toolu_1", name="calculator"),
            Turn("tool", "bad arguments", tool_call_id="toolu_2", name="files.read",
                 is_error=True),
            Turn("assistant", "", tool_calls=(ToolCall("toolu_3", "calculator", "{}"),),
                 thinking="unsigned thinking is not handed back"),
            Turn("tool", "0", tool_call_id="toolu_3", name="calculator"),
        ),
        tools=(CALCULATOR, READ),
        temperature=0.3,
    )
    await drain(provider(wire.url).stream("chat", prompt))

    [request] = wire.seen
    assert "temperature" not in request.body  # refused by the API version the SDK speaks
    assert "anthropic-beta" not in request.headers  # no thinking budget: nothing to interleave
    assert request.body["tools"] == [
        {"name": "calculator", "description": "Evaluate arithmetic.",
         "input_schema": CALCULATOR.schema},
        {"name": "files__read", "description": "Read a file.", "input_schema": READ.schema},
    ]
    assert request.body["messages"] == [
        {"role": "user", "content": "12*7, and read /tmp/a.txt"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should compute.", "signature": "sig-1"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "calculator",
             "input": {"expression": "12*7"}},
            {"type": "tool_use", "id": "toolu_2", "name": "files__read", "input": {}},
        ]},
        {"role": "user", "content": [  # both results in ONE user message
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "84",
             "is_error": False},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "bad arguments",
             "is_error": True},
        ]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_3", "name": "calculator", "input": {}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_3", "content": "0", "is_error": False},
        ]},
    ]


async def test_one_step_given_as_turns_per_thinking_block_is_one_message(wire: Wire) -> None:
    prompt = Prompt(
        turns=(
            Turn("user", "go"),
            Turn("assistant", "", tool_calls=(ToolCall("t1", "calculator", "{}"),),
                 thinking="one", signature="s1"),
            Turn("assistant", "", tool_calls=(ToolCall("t2", "calculator", "{}"),),
                 thinking="two", signature="s2"),
            Turn("tool", "1", tool_call_id="t1"),
            Turn("tool", "2", tool_call_id="t2"),
        ),
    )
    await drain(provider(wire.url).stream("chat", prompt))

    [request] = wire.seen
    assert [m["role"] for m in request.body["messages"]] == ["user", "assistant", "user"]
    assert [b["type"] for b in request.body["messages"][1]["content"]] == [
        "thinking", "tool_use", "thinking", "tool_use"
    ]


async def test_a_question_right_after_results_joins_their_user_message(wire: Wire) -> None:
    prompt = Prompt(
        turns=(
            Turn("user", "go"),
            Turn("assistant", "", tool_calls=(ToolCall("t1", "calculator", "{}"),)),
            Turn("tool", "1", tool_call_id="t1"),  # the step limit ended the reply here
            Turn("user", "and then?"),
        ),
    )
    await drain(provider(wire.url).stream("chat", prompt))

    [request] = wire.seen
    assert request.body["messages"][-1] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": "1", "is_error": False},
        {"type": "text", "text": "and then?"},
    ]}
