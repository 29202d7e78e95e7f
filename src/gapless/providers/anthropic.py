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

from collections.abc import AsyncIterator, Iterable

import anthropic
import httpx2
from anthropic.types import MessageParam, RawMessageStreamEvent, ThinkingConfigParam

from gapless.errors import ProviderError
from gapless.providers.base import Chunk, ModelInfo, Prompt, Text, Thinking, Usage

DEFAULT_MAX_TOKENS = 4096

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


def messages_for(prompt: Prompt) -> list[MessageParam]:
    # Spelled per role: the SDK's message type is a union that mypy cannot pick from a variable.
    return [
        {"role": "user", "content": turn.content}
        if turn.role == "user"
        else {"role": "assistant", "content": turn.content}
        for turn in prompt.turns
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


def chunks_of(event: RawMessageStreamEvent, usage: Usage) -> Iterable[Chunk]:
    """What one stream event carries; `usage` is the running total so far."""
    if event.type == "content_block_delta":
        if event.delta.type == "text_delta" and event.delta.text:
            yield Text(event.delta.text)
        elif event.delta.type == "thinking_delta" and event.delta.thinking:
            yield Thinking(event.delta.thinking)
    elif event.type == "message_start":
        start = event.message.usage
        cached = (start.cache_creation_input_tokens or 0) + (start.cache_read_input_tokens or 0)
        yield Usage(input_tokens=start.input_tokens + cached, output_tokens=start.output_tokens)
    elif event.type == "message_delta":
        details = event.usage.output_tokens_details
        yield Usage(
            input_tokens=usage.input_tokens,
            output_tokens=event.usage.output_tokens,
            reasoning_tokens=details.thinking_tokens if details else 0,
        )


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

    async def stream(self, model: str, prompt: Prompt) -> AsyncIterator[Chunk]:
        started = False
        try:
            events = await self.client.messages.create(
                model=model,
                messages=messages_for(prompt),
                system=prompt.system or anthropic.omit,
                max_tokens=self.max_tokens(prompt),
                thinking=self.thinking(),
                stream=True,
            )
            started = True
            usage = Usage(input_tokens=0, output_tokens=0)
            async with events:
                async for event in events:
                    for item in chunks_of(event, usage):
                        if isinstance(item, Usage):
                            usage = item
                        yield item
        except (anthropic.AnthropicError, httpx2.HTTPError) as error:
            raise failure(self.name, error, started=started) from error
