"""One failure suite for every remote provider: the same scripted faults, the same codes.

Each provider talks to the scripted wire server through its real SDK; the
faults are chosen by model name (see `wire`).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

import pytest

from gapless.providers.anthropic import AnthropicProvider
from gapless.providers.base import Chunk, Prompt, Provider, Text, Turn, Usage
from gapless.providers.openai import OpenAIProvider
from tests.providers.conftest import drain
from tests.providers.wire import Wire

PROMPT = Prompt(turns=(Turn("user", "Say hello"),))


@dataclass(frozen=True)
class Remote:
    make: Callable[[str, float], Provider]  # (server URL, timeout) -> provider
    opening: tuple[Chunk, ...]  # what the scripted stream yields before its first text


REMOTES = {
    "openai": Remote(
        make=lambda url, timeout: OpenAIProvider(
            name="openai", base_url=f"{url}/v1", api_key="sk-test", timeout=timeout
        ),
        opening=(),
    ),
    "anthropic": Remote(
        make=lambda url, timeout: AnthropicProvider(
            api_key="sk-ant-test", base_url=url, timeout=timeout
        ),
        opening=(Usage(input_tokens=25, output_tokens=1),),  # message_start's usage
    ),
}


@pytest.fixture(params=sorted(REMOTES))
def remote(request: pytest.FixtureRequest) -> Remote:
    return REMOTES[request.param]


@pytest.mark.parametrize(
    ("model", "code"),
    [
        ("unauthorized", "auth"),
        ("rate-limited", "rate_limit"),
        ("no-such-model", "model_not_found"),
        ("bad", "bad_request"),
        ("broken", "server_error"),
    ],
)
async def test_http_errors_map_to_stable_codes(
    wire: Wire, remote: Remote, model: str, code: str
) -> None:
    provider = remote.make(wire.url, 5.0)

    chunks, error = await drain(provider.stream(model, PROMPT))

    assert chunks == []
    assert error is not None
    assert error.code == code
    assert error.message.startswith(f"{provider.name}: HTTP ")
    assert len(wire.seen) == 1  # never retried: a retry could repeat chunks


async def test_error_event_mid_stream_is_server_error_after_the_partial_text(
    wire: Wire, remote: Remote
) -> None:
    chunks, error = await drain(remote.make(wire.url, 5.0).stream("error-event", PROMPT))

    assert chunks == [*remote.opening, Text("Hel")]
    assert error is not None
    assert error.code == "server_error"
    assert "error in the stream" in error.message


async def test_connection_dropped_mid_stream_is_dropped_after_the_partial_text(
    wire: Wire, remote: Remote
) -> None:
    chunks, error = await drain(remote.make(wire.url, 5.0).stream("drop", PROMPT))

    assert chunks == [*remote.opening, Text("Hel"), Text("lo")]
    assert error is not None
    assert error.code == "dropped"
    assert "dropped mid-stream" in error.message


async def test_stall_past_the_timeout_is_timeout_after_the_partial_text(
    wire: Wire, remote: Remote
) -> None:
    chunks, error = await drain(remote.make(wire.url, 0.5).stream("stall", PROMPT))

    assert chunks == [*remote.opening, Text("Hel")]
    assert error is not None
    assert error.code == "timeout"


async def test_refused_connection_is_connection(remote: Remote) -> None:
    with socket.socket() as free:  # bound, never listening: connecting is refused
        free.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{free.getsockname()[1]}"
        chunks, error = await drain(remote.make(url, 5.0).stream("chat", PROMPT))

    assert chunks == []
    assert error is not None
    assert error.code == "connection"


async def test_closing_the_stream_hangs_up_on_the_server(wire: Wire, remote: Remote) -> None:
    stream = remote.make(wire.url, 5.0).stream("stall", PROMPT)
    assert isinstance(stream, AsyncGenerator)
    seen = [await anext(stream) for _ in range(len(remote.opening) + 1)]
    assert seen == [*remote.opening, Text("Hel")]

    await stream.aclose()  # what `stop` does

    await asyncio.wait_for(wire.hung_up.wait(), 1.0)


async def test_cancelling_a_waiting_read_hangs_up_on_the_server(
    wire: Wire, remote: Remote
) -> None:
    stream = remote.make(wire.url, 5.0).stream("stall", PROMPT)
    for _ in range(len(remote.opening) + 1):
        await anext(stream)
    waiting = asyncio.ensure_future(anext(stream))  # `generation` cancels this on stop
    await asyncio.sleep(0)  # one loop step: the task starts, and blocks reading the socket

    waiting.cancel()

    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.wait_for(wire.hung_up.wait(), 1.0)
