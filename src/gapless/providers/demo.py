"""`DemoProvider`: a deterministic model that needs nothing installed.

It thinks aloud for a moment, then answers in Markdown (a heading, a list, a
table and a code block) at a configurable pace, so streaming is visible in the
browser and repeatable in tests. Imports `providers.base`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from gapless.providers.base import Chunk, ModelInfo, Prompt, Text, Thinking, Usage


def thinking_for(question: str) -> str:
    return (
        f"The user wrote {len(question)} characters. "
        "I will restate the question, then show a little of everything Markdown can do."
    )


def answer_for(question: str) -> str:
    quoted = question.strip().replace("\n", " ")[:200] or "(nothing)"
    return (
        "## Demo reply\n\n"
        f"You said: *{quoted}*\n\n"
        "This reply comes from the **demo** model, which streams a fixed text:\n\n"
        "1. it never loses a chunk,\n"
        "2. it never repeats one,\n"
        "3. and it never reorders them.\n\n"
        "| guarantee | how |\n| --- | --- |\n"
        "| prefix | numbered deltas |\n| convergence | state with its cursor |\n\n"
        '```python\ndef hello(name: str) -> str:\n    return f"Hello, {name}!"\n```\n\n'
        "Choose a real model in the picker to talk to one."
    )


def words(text: str) -> list[str]:
    """Split keeping every character, so the pieces join back to `text` exactly."""
    return re.findall(r"\S+\s*|\s+", text)


class DemoProvider:
    name = "demo"

    def __init__(self, delay: float = 0.03) -> None:
        self.delay = delay

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(id="demo:default", provider="demo", name="default", label="Demo")]

    async def stream(self, model: str, prompt: Prompt) -> AsyncIterator[Chunk]:
        question = prompt.turns[-1].content if prompt.turns else ""
        output = 0
        for piece in words(thinking_for(question)):
            await asyncio.sleep(self.delay)
            output += 1
            yield Thinking(piece)
        for piece in words(answer_for(question)):
            await asyncio.sleep(self.delay)
            output += 1
            yield Text(piece)
        yield Usage(
            input_tokens=sum(len(t.content.split()) for t in prompt.turns), output_tokens=output
        )
