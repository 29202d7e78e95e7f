"""`AnthropicProvider`: Claude through the Messages API, streamed.

Imports `providers.base` and `errors`; the `anthropic` SDK (and its `httpx2`
transport, whose errors it lets through mid-stream) stays in this module.

Reads the raw stream events (`messages.create(stream=True)`): `text_delta` as
`Text`, `thinking_delta` as `Thinking` (sent only when extended thinking is on,
i.e. a `thinking_budget` is configured); `signature_delta`, pings and block
boundaries carry nothing to show. Usage is yielded from `message_start` (input,
so a reply that fails mid-way still has its input counted) and again from each
`message_delta` (cumulative output); the last one wins. `reasoning_tokens` is
the API's `output_tokens_details.thinking_tokens` when sent, else 0: Claude
bills thinking as output, so `output_tokens` always includes it.

Tools (`prompt.tools`) are sent as `{name, description, input_schema}`, names
made API-safe by `base.api_tool_name` and read back by `tool_name_from_api`.
A `tool_use` block is a call: its `content_block_start` (id, name) is
`ToolCallStart`, each non-empty `input_json_delta.partial_json` a
`ToolCallArgs`, its `content_block_stop` the `ToolCallEnd` (a call that
streamed no argument text gets `{}` first). Thinking blocks may come between
calls (interleaved thinking, asked for with the `interleaved-thinking` beta
header when thinking is on and tools are offered); a thinking block that got a
`signature_delta` yields `Thinking("", signature=...)` once, at its
`content_block_stop`. `redacted_thinking` blocks are not kept. `stop_reason`
is yielded as `Finish` as the API names it (`end_turn`, `tool_use`,
`max_tokens`...), just before the `message_delta`'s usage. `cached_tokens`
is `cache_read_input_tokens`.

Earlier steps are rendered natively: an assistant turn with tool calls or a
signed thinking block becomes content blocks `[thinking (with signature, only
when it has one), text (when not empty), tool_use (input = the parsed
arguments; `{}` when they are not a JSON object)]`; consecutive assistant
turns merge into one message (one step may come as several turns, its
thinking interleaved), and consecutive `tool` turns into ONE user message of
`tool_result` blocks (`tool_use_id`, `content`, `is_error`); a user turn
right after results joins that message as a text block after them.
`prompt.temperature` is never sent: the API version this SDK speaks
(2026-10-21) answers 400 to any sampling parameter, on every model.

Failures are translated once, in `failure`, into `ProviderError` codes:

    auth             authentication_error / permission_error (401 / 403)
    model_not_found  not_found_error (404)
    rate_limit       rate_limit_error (429)
    bad_request      invalid_request_error, request_too_large and other 4xx
    server_error     api_error, overloaded_error (5xx, 529), or an `error` event mid-stream
    connection       the server could not be reached
    timeout          no byte within `timeout` seconds, before or during the stream
    dropped          the connection broke after the stream had started
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2
from anthropic.types import (
    ContentBlockParam,
    MessageParam,
    RawMessageStreamEvent,
    ThinkingConfigParam,
    ToolParam,
)

from gapless.errors import ProviderError
from gapless.providers.base import (
    Chunk,
    Finish,
    ModelInfo,
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
    api_tool_name,
    tool_name_from_api,
)

DEFAULT_MAX_TOKENS = 4096
INTERLEAVED_THINKING = "interleaved-thinking-2025-05-14"

ERROR_TYPES = {
    "authentication_error": "auth",
    "permission_error": "auth",
    "not_found_error": "model_not_found",
    "rate_limit_error": "rate_limit",
    "invalid_request_error": "bad_request",
    "request_too_large": "bad_request",
    "timeout_error": "timeout",
    "api_error": "server_error",
    "overloaded_error": "server_error",
}


def tools_for(prompt: Prompt) -> list[ToolParam]:
    return [
        {"name": api_tool_name(tool.name), "description": tool.description,
         "input_schema": tool.schema}
        for tool in prompt.tools
    ]


def arguments(call: ToolCall) -> dict[str, Any]:
    """A call's input as the API takes it: an object (invalid arguments were refused by the job,
    which says so in the result; the call itself is still handed back)."""
    try:
        parsed = json.loads(call.arguments)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def assistant_blocks(turn: Turn) -> list[ContentBlockParam]:
    blocks: list[ContentBlockParam] = []
    if turn.thinking and turn.signature:
        blocks.append({"type": "thinking", "thinking": turn.thinking, "signature": turn.signature})
    if turn.content:
        blocks.append({"type": "text", "text": turn.content})
    for call in turn.tool_calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": api_tool_name(call.name),
                       "input": arguments(call)})
    return blocks


Content = str | list[ContentBlockParam]


def content_of(turn: Turn) -> Content:
    """A turn as the API's content: plain text where it is only text, else blocks."""
    if turn.role == "tool":
        return [{"type": "tool_result", "tool_use_id": turn.tool_call_id,
                 "content": turn.content, "is_error": turn.is_error}]
    if turn.role == "assistant" and (turn.tool_calls or (turn.thinking and turn.signature)):
        return assistant_blocks(turn)
    return turn.content


def blocks(content: Content) -> list[ContentBlockParam]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content)


def messages_for(prompt: Prompt) -> list[MessageParam]:
    """The turns as messages; consecutive turns of one role become ONE message (a step told in
    several turns, a step's results, a question after results), as the API wants them."""
    merged: list[tuple[str, Content]] = []
    for turn in prompt.turns:
        content = content_of(turn)
        role = "assistant" if turn.role == "assistant" else "user"
        if merged and merged[-1][0] == role:
            merged[-1] = (role, [*blocks(merged[-1][1]), *blocks(content)])
        else:
            merged.append((role, content))
    # Spelled per role: the SDK's message type is a union that mypy cannot pick from a variable.
    return [
        {"role": "user", "content": content}
        if role == "user"
        else {"role": "assistant", "content": content}
        for role, content in merged
    ]


def code_for(error: anthropic.APIStatusError) -> str:
    """By the body's `error.type`, which also names errors sent inside a 200 stream."""
    if error.type in ERROR_TYPES:
        return ERROR_TYPES[error.type]
    status = error.status_code
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "model_not_found"
    if status == 429:
        return "rate_limit"
    if 400 <= status < 500:
        return "bad_request"
    return "server_error"  # 5xx, or an unknown error event in a 200 stream


def failure(name: str, error: Exception, *, started: bool) -> ProviderError:
    """Translate what the SDK or its transport raised (codes in the module doc).

    `started` tells a connection that broke mid-stream (`dropped`) from one that
    never opened (`connection`).
    """
    if isinstance(error, anthropic.APITimeoutError | httpx2.TimeoutException):
        code, message = "timeout", "no answer in time"
    elif isinstance(error, anthropic.APIConnectionError | httpx2.TransportError):
        code = "dropped" if started else "connection"
        cause = error.__cause__ or error
        message = f"connection {'dropped mid-stream' if started else 'failed'}: {cause}"
    elif isinstance(error, anthropic.APIStatusError):
        code = code_for(error)
        where = "error in the stream" if error.status_code == 200 else f"HTTP {error.status_code}"
        message = f"{where}: {error.api_message or error.message}"
    else:
        code, message = "server_error", str(error)
    return ProviderError(f"{name}: {message}", code=code)


@dataclass
class Blocks:
    """One stream's content blocks by index: which are tool calls, what thinking got signed,
    and the usage so far (`message_start`'s input, `message_delta`'s cumulative output)."""

    tools: tuple[ToolSpec, ...]
    calls: dict[int, str] = field(default_factory=dict)  # block index -> tool_use id, open
    argued: set[str] = field(default_factory=set)  # calls that got argument text
    signatures: dict[int, str] = field(default_factory=dict)  # thinking block index -> signature
    usage: Usage = field(default_factory=lambda: Usage(input_tokens=0, output_tokens=0))

    def read(self, event: RawMessageStreamEvent) -> Iterable[Chunk]:
        if event.type == "content_block_delta":
            yield from self.delta(event.index, event.delta)
        elif event.type == "content_block_start":
            block = event.content_block
            if block.type == "tool_use":
                self.calls[event.index] = block.id
                yield ToolCallStart(block.id, tool_name_from_api(block.name, self.tools))
            elif block.type == "thinking":
                self.signatures[event.index] = block.signature or ""
        elif event.type == "content_block_stop":
            yield from self.stop(event.index)
        elif event.type == "message_start":
            start = event.message.usage
            read = start.cache_read_input_tokens or 0
            cached = (start.cache_creation_input_tokens or 0) + read
            self.usage = Usage(input_tokens=start.input_tokens + cached,
                               output_tokens=start.output_tokens, cached_tokens=read)
            yield self.usage
        elif event.type == "message_delta":
            if event.delta.stop_reason:
                yield Finish(event.delta.stop_reason)
            details = event.usage.output_tokens_details
            self.usage = Usage(
                input_tokens=self.usage.input_tokens,
                output_tokens=event.usage.output_tokens,
                reasoning_tokens=details.thinking_tokens if details else 0,
                cached_tokens=self.usage.cached_tokens,
            )
            yield self.usage

    def delta(self, index: int, delta: Any) -> Iterable[Chunk]:
        if delta.type == "text_delta" and delta.text:
            yield Text(delta.text)
        elif delta.type == "thinking_delta" and delta.thinking:
            yield Thinking(delta.thinking)
        elif delta.type == "input_json_delta" and delta.partial_json and index in self.calls:
            self.argued.add(self.calls[index])
            yield ToolCallArgs(self.calls[index], delta.partial_json)
        elif delta.type == "signature_delta" and index in self.signatures:
            self.signatures[index] += delta.signature

    def stop(self, index: int) -> Iterable[Chunk]:
        if index in self.calls:
            call = self.calls.pop(index)
            if call not in self.argued:
                yield ToolCallArgs(call, "{}")  # a call without arguments still takes an object
            yield ToolCallEnd(call)
        elif self.signatures.get(index):
            yield Thinking("", signature=self.signatures.pop(index))

    def end(self) -> Iterable[Chunk]:
        """At the stream's end: calls the API never closed end here."""
        for index in list(self.calls):
            yield from self.stop(index)


class AnthropicProvider:
    def __init__(
        self,
        *,
        name: str = "anthropic",
        api_key: str = "",
        base_url: str | None = None,
        models: list[str] | None = None,
        timeout: float = 60.0,
        thinking_budget: int | None = None,
    ) -> None:
        self.name = name
        self.configured = list(models or [])
        self.thinking_budget = thinking_budget
        # Retries belong to the caller: a retried stream would repeat chunks we already yielded.
        self.client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
        )

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(id=f"{self.name}:{model}", provider=self.name, name=model, label=model)
            for model in self.configured
        ]

    def thinking(self) -> ThinkingConfigParam | anthropic.Omit:
        if not self.thinking_budget:
            return anthropic.omit
        return {"type": "enabled", "budget_tokens": self.thinking_budget}

    def max_tokens(self, prompt: Prompt) -> int:
        # The thinking budget counts against max_tokens and must stay below it,
        # so the answer gets its own room on top of the budget.
        return (prompt.max_tokens or DEFAULT_MAX_TOKENS) + (self.thinking_budget or 0)

    def headers(self, prompt: Prompt) -> dict[str, str]:
        if self.thinking_budget and prompt.tools:
            return {"anthropic-beta": INTERLEAVED_THINKING}  # thinking between tool calls
        return {}

    async def stream(self, model: str, prompt: Prompt) -> AsyncIterator[Chunk]:
        started = False
        try:
            events = await self.client.messages.create(
                model=model,
                messages=messages_for(prompt),
                system=prompt.system or anthropic.omit,
                max_tokens=self.max_tokens(prompt),
                thinking=self.thinking(),
                tools=tools_for(prompt) or anthropic.omit,
                extra_headers=self.headers(prompt) or None,
                stream=True,
            )
            started = True
            blocks = Blocks(prompt.tools)
            async with events:
                async for event in events:
                    for item in blocks.read(event):
                        yield item
            for item in blocks.end():
                yield item
        except (anthropic.AnthropicError, httpx2.HTTPError) as error:
            raise failure(self.name, error, started=started) from error
