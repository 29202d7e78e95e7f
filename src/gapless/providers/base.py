"""The `Provider` interface: a model is one async iterator of typed chunks.

Providers only yield `Text`, `Thinking` and `Usage`; they never number,
persist or time anything (`generation` owns that). A provider that fails raises
`ProviderError` with a stable `code`, translated once, at its own boundary,
from whatever its SDK raised. Imports `errors`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from gapless.errors import InvalidError


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Thinking:
    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts for the whole call; the last one yielded wins."""

    input_tokens: int
    output_tokens: int
    reasoning_tokens: int = 0


Chunk = Text | Thinking | Usage


@dataclass(frozen=True, slots=True)
class Turn:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class Prompt:
    """What the model sees: the chat's system prompt, then the path from the root."""

    turns: tuple[Turn, ...]
    system: str = ""
    max_tokens: int | None = None


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


def split_model(name: str) -> tuple[str, str]:
    """`"openai:gpt-4o-mini"` -> `("openai", "gpt-4o-mini")`; the model part may hold colons."""
    provider, sep, model = name.partition(":")
    if not sep or not provider or not model:
        raise InvalidError(f"model must be named provider:model, not {name!r}", code="bad_model")
    return provider, model
