"""`OpenAIProvider`: any OpenAI-compatible chat completions API, streamed.

One class serves OpenAI, Ollama, vLLM, the llama.cpp server, LM Studio and
OpenRouter: they differ only in `base_url`, key and model names, so `name` is a
constructor argument and several instances may live side by side ("openai",
"ollama", ...). Imports `providers.base` and `errors`; the `openai` SDK stays in
this module.

What it yields, per streamed chunk: `delta.content` (and a `refusal`) as
`Text`; `delta.reasoning_content` (llama.cpp, DeepSeek) or `delta.reasoning`
(Ollama, vLLM, OpenRouter) as `Thinking`. Both are extra fields the SDK keeps on
the delta without declaring them, so they are read with `getattr`. Usage is
asked for with `stream_options.include_usage`; when the server still sends
none (llama.cpp's server, older Ollama), a `Usage` is counted here instead:

- output tokens = the number of streamed content/reasoning pieces: these
  servers stream one sampled token per chunk, so this is exact for them and an
  undercount only where a server batches tokens;
- input tokens = an estimate, one token per 4 characters of the prompt (system
  and turns), rounded up: the usual rule of thumb for English BPE vocabularies.

Failures are translated once, in `failure`, into `ProviderError` codes:

    auth             401 / 403: bad or missing key, no access
    model_not_found  404, or an error whose code says the model is unknown
    rate_limit       429
    bad_request      400 and other 4xx: the server refused the request
    server_error     5xx, or an error sent inside the stream
    connection       the server could not be reached (refused, DNS, TLS)
    timeout          no byte within `timeout` seconds, before or during the stream
    dropped          the connection broke after the stream had started
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterable
from typing import Any

import openai
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam
from openai.types.completion_usage import CompletionUsage

from gapless.errors import ProviderError
from gapless.providers.base import Chunk, ModelInfo, Prompt, Text, Thinking, Usage

CHARS_PER_TOKEN = 4


def messages_for(prompt: Prompt) -> list[ChatCompletionMessageParam]:
    system: list[ChatCompletionMessageParam] = (
        [{"role": "system", "content": prompt.system}] if prompt.system else []
    )
    # Spelled per role: the SDK's message type is a union that mypy cannot pick from a variable.
    return system + [
        {"role": "user", "content": turn.content}
        if turn.role == "user"
        else {"role": "assistant", "content": turn.content}
        for turn in prompt.turns
    ]


def estimate_tokens(prompt: Prompt) -> int:
    """Input tokens when the server does not say: ~4 characters a token (see module doc)."""
    chars = len(prompt.system) + sum(len(turn.content) for turn in prompt.turns)
    return math.ceil(chars / CHARS_PER_TOKEN)


def pieces(chunk: ChatCompletionChunk) -> Iterable[Text | Thinking]:
    """The text and reasoning a chunk carries, reasoning first as models emit it."""
    for choice in chunk.choices[:1]:  # we never ask for n > 1
        delta = choice.delta
        for field in ("reasoning_content", "reasoning"):
            value: Any = getattr(delta, field, None)
            if isinstance(value, str) and value:
                yield Thinking(value)
        for value in (delta.content, delta.refusal):
            if value:
                yield Text(value)


def usage_from(usage: CompletionUsage) -> Usage:
    details = usage.completion_tokens_details
    reasoning = details.reasoning_tokens if details and details.reasoning_tokens else 0
    return Usage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        reasoning_tokens=reasoning,
    )


def detail(body: object) -> str:
    """The API's own message from an error body (`{"error": {"message"}}` or the inner dict)."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return ""


def status_code(status: int, error_code: str | None) -> str:
    if status in (401, 403):
        return "auth"
    if status == 404 or error_code == "model_not_found":
        return "model_not_found"
    if status == 408:
        return "timeout"
    if status == 429:
        return "rate_limit"
    if status >= 500:
        return "server_error"
    return "bad_request"


def failure(name: str, error: openai.OpenAIError, *, started: bool) -> ProviderError:
    """Translate what the SDK raised into our stable codes (listed in the module doc).

    `started` tells a connection that broke mid-stream (`dropped`) from one that
    never opened (`connection`): the SDK raises the same class for both.
    """
    if isinstance(error, openai.APITimeoutError):
        code, message = "timeout", "no answer in time"
    elif isinstance(error, openai.APIConnectionError):
        cause = error.__cause__ or error
        code = "dropped" if started else "connection"
        message = f"connection {'dropped mid-stream' if started else 'failed'}: {cause}"
    elif isinstance(error, openai.APIStatusError):
        code = status_code(error.status_code, error.code)
        message = f"HTTP {error.status_code}: {detail(error.body) or error.message}"
    elif isinstance(error, openai.APIError):
        code = "server_error"
        message = f"error in the stream: {detail(error.body) or error.message}"
    else:
        code, message = "server_error", str(error)
    return ProviderError(f"{name}: {message}", code=code)


class OpenAIProvider:
    def __init__(
        self,
        *,
        name: str = "openai",
        base_url: str | None = None,
        api_key: str = "",
        models: list[str] | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.name = name
        self.configured = list(models or [])
        # Retries belong to the caller: a retried stream would repeat chunks we already yielded.
        # Local servers ignore the key, but the SDK refuses an empty one.
        self.client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "none", timeout=timeout, max_retries=0
        )

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(id=f"{self.name}:{model}", provider=self.name, name=model, label=model)
            for model in self.configured
        ]

    async def stream(self, model: str, prompt: Prompt) -> AsyncIterator[Chunk]:
        started = False
        try:
            chunks = await self.client.chat.completions.create(
                model=model,
                messages=messages_for(prompt),
                stream=True,
                stream_options={"include_usage": True},
                max_tokens=prompt.max_tokens or openai.omit,
            )
            started = True
            async with chunks:
                async for item in self.counted(chunks, prompt):
                    yield item
        except openai.OpenAIError as error:
            raise failure(self.name, error, started=started) from error

    async def counted(
        self, chunks: AsyncIterator[ChatCompletionChunk], prompt: Prompt
    ) -> AsyncIterator[Chunk]:
        """Yield the pieces, then the server's usage, or our own count when it sent none."""
        usage: Usage | None = None
        count = 0
        async for chunk in chunks:
            for piece in pieces(chunk):
                count += 1
                yield piece
            if chunk.usage is not None:
                usage = usage_from(chunk.usage)
        yield usage or Usage(input_tokens=estimate_tokens(prompt), output_tokens=count)
