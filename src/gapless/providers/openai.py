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

Tools (`prompt.tools`) are sent as function tools, their names made
API-safe by `base.api_tool_name` (`server.tool` -> `server__tool`) and read
back by `base.tool_name_from_api`. Streamed `delta.tool_calls` fragments are
keyed by `index`: the first fragment of an index carries the call's id and
name (`ToolCallStart`), every fragment's `function.arguments` text is yielded
as it came (`ToolCallArgs`); parallel calls may interleave by index. A server
that sends no id gets `call_<index>`; an id already used in this stream gets
a `_2`, `_3`... suffix, so ids stay unique. A fragment bringing a new id at an
index still open (Ollama numbers every parallel call 0) ends that call and
starts another (a fragment with no index counts as index 0). Every open call
is ended (`ToolCallEnd`, in the order they began) when `finish_reason`
arrives, or when the stream ends without one; a call that streamed no
argument text is given `{}` first. A stream that breaks
mid-arguments raises with no `ToolCallEnd`: the call is incomplete.
`finish_reason` is yielded as `Finish`, cached prompt tokens come from
`prompt_tokens_details.cached_tokens`.

Earlier steps are rendered natively: an assistant turn with `tool_calls`
(consecutive ones merged into one message, which the API requires before the
results), each result as a `tool` message naming its `tool_call_id` (the API
has no error flag: a failed call's text says so itself, as the job words it);
a call whose arguments are empty is handed back with `{}`.
`temperature` and `max_tokens` are sent when the prompt sets them.

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
from dataclasses import dataclass, field
from typing import Any

import openai
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionChunk,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
)
from openai.types.chat.chat_completion_chunk import ChoiceDelta, ChoiceDeltaToolCall
from openai.types.completion_usage import CompletionUsage

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
    Usage,
    api_tool_name,
    tool_name_from_api,
)

CHARS_PER_TOKEN = 4


def tools_for(prompt: Prompt) -> list[ChatCompletionFunctionToolParam]:
    return [
        {
            "type": "function",
            "function": {
                "name": api_tool_name(tool.name),
                "description": tool.description,
                "parameters": tool.schema,
            },
        }
        for tool in prompt.tools
    ]


def call_for(call: ToolCall) -> ChatCompletionMessageFunctionToolCallParam:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": api_tool_name(call.name), "arguments": call.arguments or "{}"},
    }


def messages_for(prompt: Prompt) -> list[ChatCompletionMessageParam]:
    messages: list[ChatCompletionMessageParam] = (
        [{"role": "system", "content": prompt.system}] if prompt.system else []
    )
    # Spelled per role: the SDK's message type is a union that mypy cannot pick from a variable.
    for turn in prompt.turns:
        if turn.role == "user":
            messages.append({"role": "user", "content": turn.content})
        elif turn.role == "tool":
            messages.append(
                {"role": "tool", "tool_call_id": turn.tool_call_id, "content": turn.content}
            )
        elif not turn.tool_calls:
            messages.append({"role": "assistant", "content": turn.content})
        else:
            calls = [call_for(call) for call in turn.tool_calls]
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls"):
                # One step given as several turns: the API wants its calls in one message.
                merged = "".join(filter(None, [str(last.get("content") or ""), turn.content]))
                last["content"] = merged or None
                last["tool_calls"] = [*last.get("tool_calls", ()), *calls]
                continue
            message: ChatCompletionAssistantMessageParam = {
                "role": "assistant",
                "content": turn.content or None,
                "tool_calls": calls,
            }
            messages.append(message)
    return messages


def estimate_tokens(prompt: Prompt) -> int:
    """Input tokens when the server does not say: ~4 characters a token (see module doc)."""
    chars = len(prompt.system) + sum(
        len(turn.content) + sum(len(call.name) + len(call.arguments) for call in turn.tool_calls)
        for turn in prompt.turns
    )
    return math.ceil(chars / CHARS_PER_TOKEN)


def pieces(delta: ChoiceDelta) -> Iterable[Text | Thinking]:
    """The text and reasoning a delta carries, reasoning first as models emit it."""
    for name in ("reasoning_content", "reasoning"):
        value: Any = getattr(delta, name, None)
        if isinstance(value, str) and value:
            yield Thinking(value)
    for value in (delta.content, delta.refusal):
        if value:
            yield Text(value)


@dataclass
class Calls:
    """The tool calls of one stream, by the `index` the API keys their fragments with."""

    tools: tuple[ToolSpec, ...]
    open: dict[int, str] = field(default_factory=dict)  # index -> our id, in order begun
    server_ids: dict[int, str] = field(default_factory=dict)  # index -> the id the API gave
    argued: set[str] = field(default_factory=set)  # calls that got argument text
    used: set[str] = field(default_factory=set)

    def unique(self, wanted: str) -> str:
        given, n = wanted, 1
        while given in self.used:
            n += 1
            given = f"{wanted}_{n}"
        self.used.add(given)
        return given

    def fragment(self, piece: ChoiceDeltaToolCall) -> Iterable[Chunk]:
        # Gemini's compatible API once sent no index: such calls are told apart by id alone.
        index = piece.index if isinstance(piece.index, int) else 0
        function = piece.function
        current = self.open.get(index)
        if current is not None and piece.id and piece.id != self.server_ids[index]:
            yield from self.end(index)  # a new call at an index still open (Ollama)
            current = None
        if current is None:
            current = self.unique(piece.id or f"call_{index}")
            self.open[index], self.server_ids[index] = current, piece.id or ""
            name = function.name if function and function.name else ""
            yield ToolCallStart(current, tool_name_from_api(name, self.tools))
        if function and function.arguments:
            self.argued.add(current)
            yield ToolCallArgs(current, function.arguments)

    def end(self, index: int) -> Iterable[Chunk]:
        ended = self.open.pop(index)
        if ended not in self.argued:
            yield ToolCallArgs(ended, "{}")  # a call without arguments still takes an object
        yield ToolCallEnd(ended)

    def end_all(self) -> Iterable[Chunk]:
        for index in list(self.open):
            yield from self.end(index)


def usage_from(usage: CompletionUsage) -> Usage:
    details = usage.completion_tokens_details
    reasoning = details.reasoning_tokens if details and details.reasoning_tokens else 0
    prompt_details = usage.prompt_tokens_details
    cached = prompt_details.cached_tokens if prompt_details and prompt_details.cached_tokens else 0
    return Usage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        reasoning_tokens=reasoning,
        cached_tokens=cached,
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
                temperature=openai.omit if prompt.temperature is None else prompt.temperature,
                tools=tools_for(prompt) or openai.omit,
            )
            started = True
            async with chunks:
                async for item in self.read(chunks, prompt):
                    yield item
        except openai.OpenAIError as error:
            raise failure(self.name, error, started=started) from error

    async def read(
        self, chunks: AsyncIterator[ChatCompletionChunk], prompt: Prompt
    ) -> AsyncIterator[Chunk]:
        """Yield the pieces and tool calls, then the server's usage, or our own count."""
        calls = Calls(prompt.tools)
        usage: Usage | None = None
        count = 0
        async for chunk in chunks:
            for choice in chunk.choices[:1]:  # we never ask for n > 1
                for piece in pieces(choice.delta):
                    count += 1
                    yield piece
                for fragment in choice.delta.tool_calls or ():
                    for item in calls.fragment(fragment):
                        count += isinstance(item, ToolCallArgs)
                        yield item
                if choice.finish_reason:
                    for item in calls.end_all():
                        yield item
                    yield Finish(choice.finish_reason)
            if chunk.usage is not None:
                usage = usage_from(chunk.usage)
        for item in calls.end_all():
            yield item
        yield usage or Usage(input_tokens=estimate_tokens(prompt), output_tokens=count)
