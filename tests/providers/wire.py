"""A scripted HTTP/1.1 server that speaks the OpenAI and Anthropic streaming wire formats.

The official SDKs parse these bytes exactly as they parse the real APIs', so the
providers are tested end to end with no SDK mocked. Raw asyncio sockets rather
than a web framework, because a test must also be able to break a connection
mid-body (`drop`) and to go silent past the client's time-out (`stall`).

The scenario is chosen per request by the `model` field, so one server serves
every test: `POST /v1/chat/completions` plays `OPENAI[model]`, `POST
/v1/messages` plays `ANTHROPIC[model]`; an unknown model answers 404.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Literal

End = Literal["done", "drop", "stall"]


def compact(data: object) -> str:
    return json.dumps(data, separators=(",", ":"))


def sse(data: object, event: str | None = None) -> bytes:
    """One server-sent event as the APIs write it: optional `event:`, one `data:` line."""
    text = data if isinstance(data, str) else compact(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()


@dataclass(frozen=True)
class Reply:
    status: int = 200
    events: tuple[bytes, ...] = ()
    end: End = "done"  # how the body ends: complete, connection cut, or silence
    body: object = None  # the JSON body of an error answer


@dataclass(frozen=True)
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


# --- OpenAI chat completions --------------------------------------------------------------


def completion_chunk(choices: list[dict[str, Any]], usage: object = None) -> bytes:
    return sse(
        {
            "id": "chatcmpl-wire",
            "object": "chat.completion.chunk",
            "created": 1763888000,
            "model": "wire-model",
            "system_fingerprint": "fp_wire",
            "choices": choices,
            "usage": usage,
        }
    )


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return completion_chunk([choice])


def usage_chunk(prompt: int, completion: int, reasoning: int) -> bytes:
    return completion_chunk(
        [],
        usage={
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
    )


def call_delta(index: int, arguments: str = "", *, id: str = "", name: str = "") -> dict[str, Any]:
    """A delta with one tool-call fragment: the first of an index names it (`id`, `name`)."""
    fragment: dict[str, Any] = {"index": index}
    if id:
        fragment |= {"id": id, "type": "function"}
    function: dict[str, Any] = {"name": name} if name else {}
    fragment["function"] = function | {"arguments": arguments}
    return {"tool_calls": [fragment]}


def usage_cached(prompt: int, completion: int, cached: int) -> bytes:
    return completion_chunk(
        [],
        usage={
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0},
        },
    )


def openai_error(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


DONE = sse("[DONE]")
HELLO = (chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}))

OPENAI: dict[str, Reply] = {
    "chat": Reply(
        events=(
            chunk({"role": "assistant", "content": ""}),
            chunk({"reasoning_content": "Let me"}),  # llama.cpp's field
            chunk({"reasoning": " think."}),  # Ollama's and vLLM's field
            chunk({"content": "Hello"}),
            chunk({"content": ", world"}),
            chunk({}, finish="stop"),
            usage_chunk(prompt=12, completion=9, reasoning=3),
            DONE,
        )
    ),
    # llama.cpp's server: no usage chunk even when asked, no `usage` key at all
    "quiet": Reply(
        events=(
            sse({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": "One"}, "finish_reason": None}]}),
            sse({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": " two"}, "finish_reason": None}]}),
            sse({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            DONE,
        )
    ),
    "unauthorized": Reply(
        status=401,
        body=openai_error(
            "Incorrect API key provided: sk-wrong. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        ),
    ),
    "rate-limited": Reply(
        status=429,
        body=openai_error(
            "Rate limit reached for requests. Please try again in 20s.",
            "requests",
            "rate_limit_exceeded",
        ),
    ),
    "bad": Reply(
        status=400,
        body=openai_error("'messages' must contain at least one message.",
                          "invalid_request_error", None),
    ),
    "broken": Reply(
        status=500,
        body=openai_error("The server had an error while processing your request.",
                          "server_error", None),
    ),
    "error-event": Reply(
        events=(
            *HELLO,
            sse(openai_error("The server had an error while processing your request.",
                             "server_error", None)),
        )
    ),
    "drop": Reply(events=(*HELLO, chunk({"content": "lo"})), end="drop"),
    "stall": Reply(events=HELLO, end="stall"),
    # OpenAI: a sentence, then two parallel calls whose fragments interleave by index
    "tools-parallel": Reply(
        events=(
            chunk({"role": "assistant", "content": "", "refusal": None}),
            chunk({"content": "Checking."}),
            chunk(call_delta(0, id="call_Ab12", name="calculator")),
            chunk(call_delta(1, id="call_Cd34", name="files__read")),
            chunk(call_delta(0, '{"expression"')),
            chunk(call_delta(1, '{"path": ')),
            chunk(call_delta(0, ': "12*7"}')),
            chunk(call_delta(1, '"/tmp/a.txt"}')),
            chunk({}, finish="tool_calls"),
            usage_cached(prompt=40, completion=22, cached=32),
            DONE,
        )
    ),
    # llama.cpp-like: no ids (index 1's own id collides with the one made up for index 0),
    # a call with no argument text, and no finish_reason before [DONE]
    "tools-no-id": Reply(
        events=(
            chunk(call_delta(0, '{"expression":', name="calculator")),
            chunk(call_delta(1, id="call_0", name="current_time")),
            chunk(call_delta(0, ' "1+1"}')),
            DONE,
        )
    ),
    # Ollama: every parallel call at index 0, each whole in one fragment, told apart by id
    "tools-ollama": Reply(
        events=(
            chunk(call_delta(0, '{"expression":"2+2"}', id="call_x1", name="calculator")),
            chunk(call_delta(0, '{"zone":"UTC"}', id="call_x2", name="current_time")),
            chunk({}, finish="tool_calls"),
            DONE,
        )
    ),
    # Gemini's compatible API, once: no index at all, two whole calls told apart by id
    "tools-no-index": Reply(
        events=(
            chunk({"tool_calls": [{"id": "g1", "type": "function",
                                   "function": {"name": "calculator", "arguments": "{}"}}]}),
            chunk({"tool_calls": [{"id": "g2", "type": "function",
                                   "function": {"name": "current_time", "arguments": "{}"}}]}),
            chunk({}, finish="tool_calls"),
            DONE,
        )
    ),
    "tools-drop": Reply(
        events=(
            chunk(call_delta(0, id="call_Ab12", name="calculator")),
            chunk(call_delta(0, '{"expre')),
        ),
        end="drop",
    ),
}


def openai_missing(model: str) -> Reply:
    message = f"The model `{model}` does not exist or you do not have access to it."
    return Reply(status=404, body=openai_error(message, "invalid_request_error", "model_not_found"))


# --- Anthropic messages -------------------------------------------------------------------


def event(type_: str, **data: Any) -> bytes:
    return sse({"type": type_, **data}, event=type_)


def message_start(input_tokens: int, cache_read: int = 0) -> bytes:
    return event(
        "message_start",
        message={
            "id": "msg_wire",
            "type": "message",
            "role": "assistant",
            "model": "claude-wire",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": cache_read,
                "output_tokens": 1,
            },
        },
    )


def block_start(index: int, kind: str) -> bytes:
    block: dict[str, Any] = {"type": kind, kind: ""}
    if kind == "thinking":
        block["signature"] = ""
    return event("content_block_start", index=index, content_block=block)


def text_delta(index: int, text: str) -> bytes:
    return event("content_block_delta", index=index, delta={"type": "text_delta", "text": text})


def thinking_delta(index: int, text: str) -> bytes:
    return event(
        "content_block_delta", index=index, delta={"type": "thinking_delta", "thinking": text}
    )


def tool_use_start(index: int, id: str, name: str) -> bytes:
    block = {"type": "tool_use", "id": id, "name": name, "input": {}}
    return event("content_block_start", index=index, content_block=block)


def json_delta(index: int, partial: str) -> bytes:
    delta = {"type": "input_json_delta", "partial_json": partial}
    return event("content_block_delta", index=index, delta=delta)


def signature_delta(index: int, signature: str) -> bytes:
    delta = {"type": "signature_delta", "signature": signature}
    return event("content_block_delta", index=index, delta=delta)


def block_stop(index: int) -> bytes:
    return event("content_block_stop", index=index)


def stopped(reason: str, output_tokens: int) -> tuple[bytes, bytes]:
    return (
        event("message_delta", delta={"stop_reason": reason, "stop_sequence": None},
              usage={"output_tokens": output_tokens}),
        event("message_stop"),
    )


def anthropic_error(type_: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_wire"}


OPENING = (message_start(25), block_start(0, "text"), text_delta(0, "Hel"))

ANTHROPIC: dict[str, Reply] = {
    "chat": Reply(
        events=(
            message_start(25),
            block_start(0, "thinking"),
            event("ping"),
            thinking_delta(0, "Let me"),
            thinking_delta(0, " think."),
            event("content_block_delta", index=0,
                  delta={"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA"}),
            event("content_block_stop", index=0),
            block_start(1, "text"),
            text_delta(1, "Hello"),
            text_delta(1, ", world"),
            event("content_block_stop", index=1),
            event("message_delta", delta={"stop_reason": "end_turn", "stop_sequence": None},
                  usage={"output_tokens": 30}),
            event("message_stop"),
        )
    ),
    "unauthorized": Reply(status=401, body=anthropic_error("authentication_error",
                                                           "invalid x-api-key")),
    "forbidden": Reply(status=403, body=anthropic_error(
        "permission_error", "Your API key does not have permission to use this resource.")),
    "rate-limited": Reply(status=429, body=anthropic_error(
        "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit")),
    "bad": Reply(status=400, body=anthropic_error(
        "invalid_request_error", "max_tokens: Field required")),
    "broken": Reply(status=500, body=anthropic_error("api_error", "Internal server error")),
    "overloaded": Reply(status=529, body=anthropic_error("overloaded_error", "Overloaded")),
    "error-event": Reply(
        events=(*OPENING, sse(anthropic_error("overloaded_error", "Overloaded"), event="error"))
    ),
    "drop": Reply(events=(*OPENING, text_delta(0, "lo")), end="drop"),
    "stall": Reply(events=OPENING, end="stall"),
    # a sentence, then one call whose input streams as input_json_delta (the first one empty)
    "tools": Reply(
        events=(
            message_start(25, cache_read=20),
            block_start(0, "text"),
            text_delta(0, "Let me compute."),
            block_stop(0),
            tool_use_start(1, "toolu_01A", "calculator"),
            json_delta(1, ""),
            json_delta(1, '{"expression": '),
            json_delta(1, '"12*7"}'),
            block_stop(1),
            *stopped("tool_use", 40),
        )
    ),
    # interleaved thinking: a signed thinking block before each of two calls
    "tools-interleaved": Reply(
        events=(
            message_start(30),
            block_start(0, "thinking"),
            thinking_delta(0, "First, compute."),
            signature_delta(0, "sig-one"),
            block_stop(0),
            tool_use_start(1, "toolu_01", "calculator"),
            json_delta(1, '{"expression": "1+1"}'),
            block_stop(1),
            block_start(2, "thinking"),
            thinking_delta(2, "Then read."),
            signature_delta(2, "sig-two"),
            block_stop(2),
            tool_use_start(3, "toolu_02", "files__read"),
            block_stop(3),
            *stopped("tool_use", 60),
        )
    ),
    "tools-error": Reply(
        events=(
            message_start(25),
            tool_use_start(0, "toolu_01A", "calculator"),
            json_delta(0, '{"expr'),
            sse(anthropic_error("overloaded_error", "Overloaded"), event="error"),
        )
    ),
}


def anthropic_missing(model: str) -> Reply:
    return Reply(status=404, body=anthropic_error("not_found_error", f"model: {model}"))


# --- the server ---------------------------------------------------------------------------


def reply_for(path: str, model: str) -> Reply:
    if path.endswith("/chat/completions"):
        return OPENAI.get(model) or openai_missing(model)
    return ANTHROPIC.get(model) or anthropic_missing(model)


REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
           529: "Overloaded"}


def head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS[status]}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Wire:
    """Serves the scripts on 127.0.0.1; `seen` records every request, in order."""

    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    server: asyncio.Server | None = None
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)  # a client left a stall

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.closing.set()  # releases stalled answers, so their handlers end
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            path, headers, body = await self.read(reader)
            self.seen.append(Seen(path, headers, body))
            await self.answer(reply_for(path, str(body.get("model"))), reader, writer)
        finally:
            writer.close()

    async def read(self, reader: asyncio.StreamReader) -> tuple[str, dict[str, str], Any]:
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        return path, headers, json.loads(raw or b"{}")

    async def answer(
        self, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if reply.status != 200:
            data = compact(reply.body).encode()
            writer.write(head(reply.status, {"content-type": "application/json",
                                             "content-length": str(len(data)),
                                             "connection": "close"}) + data)
            await writer.drain()
            return
        writer.write(head(200, {"content-type": "text/event-stream; charset=utf-8",
                                "transfer-encoding": "chunked", "cache-control": "no-cache",
                                "connection": "close"}))
        for data in reply.events:
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()
        if reply.end == "done":
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        elif reply.end == "stall":
            await self.stall(reader)
        # "drop": return without the last chunk; `serve` closes the socket mid-body

    async def stall(self, reader: asyncio.StreamReader) -> None:
        """Send nothing more until the client hangs up (noted) or the server closes."""
        eof = asyncio.ensure_future(reader.read())  # the client sends nothing more: EOF
        closing = asyncio.ensure_future(self.closing.wait())
        done, pending = await asyncio.wait({eof, closing}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if eof in done:
            self.hung_up.set()
