"""`OpenAIProvider` against the scripted wire server: the real SDK parses real bytes."""

from __future__ import annotations

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
        Finish("stop"),
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
    assert chunks == [
        Text("One"), Text(" two"), Finish("stop"), Usage(input_tokens=6, output_tokens=2)
    ]


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


# --- tools ---------------------------------------------------------------------------------

CALCULATOR = ToolSpec(
    "calculator",
    "Evaluate arithmetic.",
    {"type": "object", "properties": {"expression": {"type": "string"}},
     "required": ["expression"]},
)
READ = ToolSpec(
    "files.read", "Read a file.", {"type": "object", "properties": {"path": {"type": "string"}}}
)
TIME = ToolSpec("current_time", "The time now.", {"type": "object", "properties": {}})
TOOLS = Prompt(turns=(Turn("user", "12*7, and read /tmp/a.txt"),), tools=(CALCULATOR, READ, TIME))


async def test_parallel_calls_interleaved_by_index_stream_as_separate_calls(wire: Wire) -> None:
    chunks, error = await drain(provider(wire.url).stream("tools-parallel", TOOLS))

    assert error is None
    assert chunks == [
        Text("Checking."),
        ToolCallStart("call_Ab12", "calculator"),
        ToolCallStart("call_Cd34", "files.read"),  # the API's files__read, read back
        ToolCallArgs("call_Ab12", '{"expression"'),
        ToolCallArgs("call_Cd34", '{"path": '),
        ToolCallArgs("call_Ab12", ': "12*7"}'),
        ToolCallArgs("call_Cd34", '"/tmp/a.txt"}'),
        ToolCallEnd("call_Ab12"),
        ToolCallEnd("call_Cd34"),
        Finish("tool_calls"),
        Usage(input_tokens=40, output_tokens=22, cached_tokens=32),
    ]


async def test_calls_without_ids_get_unique_made_up_ids_and_end_with_the_stream(
    wire: Wire,
) -> None:
    chunks, error = await drain(provider(wire.url).stream("tools-no-id", TOOLS))

    assert error is None
    *calls, usage = chunks
    assert calls == [
        ToolCallStart("call_0", "calculator"),
        ToolCallArgs("call_0", '{"expression":'),
        ToolCallStart("call_0_2", "current_time"),  # its own id was taken by the made-up one
        ToolCallArgs("call_0", ' "1+1"}'),
        ToolCallEnd("call_0"),
        ToolCallArgs("call_0_2", "{}"),  # no argument text at all: an empty object
        ToolCallEnd("call_0_2"),
    ]
    assert isinstance(usage, Usage) and usage.output_tokens == 2  # counted: two fragments


async def test_a_new_id_at_an_open_index_is_a_new_call(wire: Wire) -> None:
    chunks, error = await drain(provider(wire.url).stream("tools-ollama", TOOLS))

    assert error is None
    assert chunks[:-1] == [
        ToolCallStart("call_x1", "calculator"),
        ToolCallArgs("call_x1", '{"expression":"2+2"}'),
        ToolCallEnd("call_x1"),
        ToolCallStart("call_x2", "current_time"),
        ToolCallArgs("call_x2", '{"zone":"UTC"}'),
        ToolCallEnd("call_x2"),
        Finish("tool_calls"),
    ]


async def test_calls_without_an_index_are_told_apart_by_id(wire: Wire) -> None:
    chunks, error = await drain(provider(wire.url).stream("tools-no-index", TOOLS))

    assert error is None
    assert [c for c in chunks if isinstance(c, ToolCallStart | ToolCallEnd)] == [
        ToolCallStart("g1", "calculator"),
        ToolCallEnd("g1"),
        ToolCallStart("g2", "current_time"),
        ToolCallEnd("g2"),
    ]


async def test_a_connection_dropped_mid_arguments_leaves_the_call_unended(wire: Wire) -> None:
    chunks, error = await drain(provider(wire.url).stream("tools-drop", TOOLS))

    assert chunks == [
        ToolCallStart("call_Ab12", "calculator"), ToolCallArgs("call_Ab12", '{"expre')
    ]
    assert error is not None and error.code == "dropped"


async def test_request_renders_tools_and_earlier_calls_and_results_natively(wire: Wire) -> None:
    prompt = Prompt(
        system="Use tools.",
        turns=(
            Turn("user", "12*7, and read /tmp/a.txt"),
            Turn("assistant", "Checking.", tool_calls=(
                ToolCall("call_1", "calculator", '{"expression": "12*7"}'),
                ToolCall("call_2", "files.read", '{"path": "/tmp/a.txt"}'),
            ), thinking="I should compute.", signature="sig"),
            Turn("tool", "84", tool_call_id="call_1", name="calculator"),
            Turn("tool", "Error (not_found): no such file", tool_call_id="call_2",
                 name="files.read", is_error=True),
            Turn("assistant", "", tool_calls=(ToolCall("call_3", "current_time", ""),)),
            Turn("tool", '{"time": "16:00"}', tool_call_id="call_3", name="current_time"),
        ),
        tools=(CALCULATOR, READ),
        temperature=0.3,
        max_tokens=50,
    )
    await drain(provider(wire.url).stream("chat", prompt))

    [request] = wire.seen
    assert request.body["temperature"] == 0.3
    assert request.body["max_tokens"] == 50
    assert request.body["tools"] == [
        {"type": "function", "function": {
            "name": "calculator", "description": "Evaluate arithmetic.",
            "parameters": CALCULATOR.schema}},
        {"type": "function", "function": {
            "name": "files__read", "description": "Read a file.", "parameters": READ.schema}},
    ]
    assert request.body["messages"] == [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "12*7, and read /tmp/a.txt"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "calculator", "arguments": '{"expression": "12*7"}'}},
            {"id": "call_2", "type": "function",
             "function": {"name": "files__read", "arguments": '{"path": "/tmp/a.txt"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "84"},
        {"role": "tool", "tool_call_id": "call_2", "content": "Error (not_found): no such file"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_3", "type": "function",
             "function": {"name": "current_time", "arguments": "{}"}},  # empty: {}
        ]},
        {"role": "tool", "tool_call_id": "call_3", "content": '{"time": "16:00"}'},
    ]


async def test_one_step_given_as_two_assistant_turns_is_one_message(wire: Wire) -> None:
    prompt = Prompt(
        turns=(
            Turn("user", "go"),
            Turn("assistant", "A", tool_calls=(ToolCall("c1", "calculator", "{}"),)),
            Turn("assistant", "B", tool_calls=(ToolCall("c2", "calculator", "{}"),)),
            Turn("tool", "1", tool_call_id="c1"),
            Turn("tool", "2", tool_call_id="c2"),
        ),
    )
    await drain(provider(wire.url).stream("chat", prompt))

    [request] = wire.seen
    assert "tools" not in request.body and "temperature" not in request.body
    assistant = request.body["messages"][1]
    assert assistant["content"] == "AB"
    assert [call["id"] for call in assistant["tool_calls"]] == ["c1", "c2"]
    assert [m["role"] for m in request.body["messages"]] == ["user", "assistant", "tool", "tool"]
