"""A scripted model for tests: exact chunks, gates that pause it, failures at chosen points.

Gates are `threading.Event`s so a test in another thread (a browser test, a
client) can hold the model at an exact chunk and release it: interleavings are
forced, never hoped for with sleeps.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from gapless.errors import ProviderError
from gapless.providers.base import (
    Chunk,
    Finish,
    ModelInfo,
    Prompt,
    Text,
    Thinking,
    ToolCallArgs,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)

GATE_TIMEOUT = 60.0


@dataclass(frozen=True)
class Think:
    text: str


@dataclass(frozen=True)
class Fail:
    code: str
    message: str


@dataclass(frozen=True)
class Call:
    """A tool call: its start, its arguments in the pieces given, its end."""

    id: str
    name: str
    arguments: tuple[str, ...] = ("{}",)


@dataclass(frozen=True)
class Start:
    """Only the start of a call (its arguments follow as `Args`, gates between)."""

    id: str
    name: str


@dataclass(frozen=True)
class Args:
    id: str
    text: str


@dataclass(frozen=True)
class End:
    id: str


class Gate:
    """The model stops here until `set()`; `reached` is set when it arrives.

    By then every chunk before the gate has been published as a delta (the job
    appends a chunk before asking for the next one).
    """

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.opened = threading.Event()

    def set(self) -> None:
        self.opened.set()

    async def wait_reached(self) -> None:
        if not await asyncio.to_thread(self.reached.wait, GATE_TIMEOUT):
            raise TimeoutError("the model never reached the gate")


Step = str | Think | Gate | Fail | Usage | Call | Start | Args | End | Finish


class ScriptedProvider:
    name = "scripted"

    def __init__(self) -> None:
        self.scripts: deque[tuple[Step, ...]] = deque()
        self.prompts: list[Prompt] = []
        self.closed = threading.Event()  # set when a run's iterator was closed early (stop)

    def script(self, *steps: Step) -> None:
        self.scripts.append(steps)

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(id="scripted:default", provider="scripted", name="default")]

    async def stream(self, model: str, prompt: Prompt) -> AsyncIterator[Chunk]:
        self.prompts.append(prompt)
        steps = self.scripts.popleft() if self.scripts else ("Hello", " there", ".")
        finished = False
        try:
            for step in steps:
                if isinstance(step, Gate):
                    step.reached.set()
                    if not await asyncio.to_thread(step.opened.wait, GATE_TIMEOUT):
                        raise ProviderError("test gate never opened", code="test_gate")
                elif isinstance(step, Fail):
                    raise ProviderError(step.message, code=step.code)
                elif isinstance(step, Think):
                    yield Thinking(step.text)
                elif isinstance(step, Usage | Finish):
                    yield step
                elif isinstance(step, Call):
                    yield ToolCallStart(step.id, step.name)
                    for piece in step.arguments:
                        yield ToolCallArgs(step.id, piece)
                    yield ToolCallEnd(step.id)
                elif isinstance(step, Start):
                    yield ToolCallStart(step.id, step.name)
                elif isinstance(step, Args):
                    yield ToolCallArgs(step.id, step.text)
                elif isinstance(step, End):
                    yield ToolCallEnd(step.id)
                else:
                    yield Text(step)
            finished = True
        finally:
            if not finished:
                self.closed.set()


def text_of(steps: tuple[Step, ...]) -> str:
    return "".join(s for s in steps if isinstance(s, str))
