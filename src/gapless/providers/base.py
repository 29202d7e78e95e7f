"""The `Provider` interface: a model is one async iterator of typed chunks.

Providers only yield `Text`, `Thinking`, `Usage` and the three pieces of a
tool call (`ToolCallStart`, `ToolCallArgs`, `ToolCallEnd`); they never
number, persist, time or run anything (`generation` owns that). Earlier tool
calls and their results reach a provider as `Turn`s, which it renders in its
own API's native format. A provider that fails raises
`ProviderError` with a stable `code`, translated once, at its own boundary,
from whatever its SDK raised. Imports `errors`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gapless.errors import InvalidError


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Thinking:
    """Reasoning text. `signature` (Anthropic) comes alone, once, at the end of a thinking
    block: the job keeps it with that block so a later step can hand the block back."""

    text: str
    signature: str = ""


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    """The model begins a tool call. `id` is unique within the reply (the provider's own
    call id, or one it makes up when its API gives none)."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallArgs:
    """The next piece of a started call's arguments, JSON text as the model streams it."""

    id: str
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallEnd:
    """The call's arguments are complete."""

    id: str


@dataclass(frozen=True, slots=True)
class Finish:
    """Why the model stopped (`stop`, `tool_calls`, `length`, ...), when its API says."""

    reason: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts for the whole call; the last one yielded wins."""

    input_tokens: int
    output_tokens: int
    reasoning_tokens: int = 0
    cached_tokens: int = 0


Chunk = Text | Thinking | Usage | ToolCallStart | ToolCallArgs | ToolCallEnd | Finish


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model made in an earlier step: its id, tool name and JSON arguments."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Turn:
    """One turn of the conversation the model sees.

    `assistant` turns may carry the step's `thinking` (with Anthropic's `signature`) and its
    `tool_calls`; each call's result follows as a `tool` turn naming `tool_call_id`, its
    text in `content` (`is_error` when the call failed or was denied).
    """

    role: Literal["user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    name: str = ""
    is_error: bool = False
    thinking: str = ""
    signature: str = ""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the model is told of it: name, description, JSON schema of its input."""

    name: str
    description: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class Prompt:
    """What the model sees: the system prompt, the turns, the tools it may call."""

    turns: tuple[Turn, ...]
    system: str = ""
    max_tokens: int | None = None
    temperature: float | None = None
    tools: tuple[ToolSpec, ...] = ()


@dataclass(frozen=True)
class ModelInfo:
    id: str  # "provider:model"
    provider: str
    name: str
    label: str = ""
    options: dict[str, str] = field(default_factory=dict)


class Provider(Protocol):
    name: str

    def models(self) -> list[ModelInfo]:
        """The models this provider offers (used by `GET /api/models`)."""
        ...

    def stream(self, model: str, prompt: Prompt) -> AsyncIterator[Chunk]:
        """Stream one reply. Closing the iterator early (stop) must stop the work."""
        ...


def api_tool_name(name: str) -> str:
    """A tool name as OpenAI and Anthropic accept it (`^[a-zA-Z0-9_-]{1,64}$`).

    MCP tools are named `server.tool`: the dot becomes `__`, any other character
    the APIs refuse becomes `_`, and the name is cut to 64 characters.
    """
    return re.sub(r"[^a-zA-Z0-9_-]", "_", name.replace(".", "__"))[:64] or "_"


def tool_name_from_api(sent: str, tools: Iterable[ToolSpec]) -> str:
    """The tool a name the API sent back means: the offered tool whose API name it is,
    else `__` read back as `.` (a call to a tool not offered keeps a readable name)."""
    for tool in tools:
        if api_tool_name(tool.name) == sent:
            return tool.name
    return sent.replace("__", ".")


def split_model(name: str) -> tuple[str, str]:
    """`"openai:gpt-4o-mini"` -> `("openai", "gpt-4o-mini")`; the model part may hold colons."""
    provider, sep, model = name.partition(":")
    if not sep or not provider or not model:
        raise InvalidError(f"model must be named provider:model, not {name!r}", code="bad_model")
    return provider, model
