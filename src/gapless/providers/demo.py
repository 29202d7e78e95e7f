"""`DemoProvider`: a deterministic model that needs nothing installed.

It thinks aloud for a moment, then answers in Markdown (a heading, a list, a
table and a code block) at a configurable pace, so streaming is visible in the
browser and repeatable in tests. Imports `providers.base`.

Given tools, it shows tool calling with no key: when the last turn is the
user's and asks about the time (the words time, clock or date) while a
`current_time` tool is offered, or holds arithmetic (digits with + - * / ( ) .,
e.g. "what is 12*7?") while a `calculator` tool is offered, it thinks a
little, says what it will do, then calls the tool: `ToolCallStart`, the JSON
arguments over several `ToolCallArgs` (`{"expression": `, `"12*7"`, `}`),
`ToolCallEnd`, `Finish("tool_calls")`. When the last turns are tool results it
answers from them in streamed words ("The result is 84."), `Finish("stop")`.
Any other question with tools gets the usual Markdown reply and
`Finish("stop")`; without tools it behaves as it always did (no `Finish`).
Call ids are `call_demo_<n>`, n counting the calls already in the prompt, so
they stay unique within a reply's steps.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

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
    Turn,
    Usage,
)

TIME_WORDS = re.compile(r"\b(time|clock|date)\b", re.IGNORECASE)
# A number, then at least one operator and number, parentheses allowed around them.
ARITHMETIC = re.compile(
    r"[(\s]*-?\d+(?:\.\d+)?[)\s]*(?:(?:\*\*|[-+*/^])[(\s]*-?\d+(?:\.\d+)?[)\s]*)+"
)
ZONE = re.compile(r"\b[A-Z][a-z]+/[A-Z][A-Za-z_]+(?:/[A-Z][A-Za-z_]+)?\b")


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


@dataclass(frozen=True)
class Plan:
    """The call the demo model makes: which tool, why, and its arguments in pieces."""

    tool: str
    thinking: str
    sentence: str
    arguments: tuple[str, ...]  # join to the JSON arguments


def plan_for(question: str, tools: set[str]) -> Plan | None:
    """The tool call a question asks for, if it asks for one the demo can make."""
    expression = ARITHMETIC.search(question)
    if expression is not None and "calculator" in tools:
        text = expression[0].strip().replace("^", "**")
        return Plan(
            tool="calculator",
            thinking="This is arithmetic. The calculator tool computes it exactly.",
            sentence=f"Let me calculate {text}.\n\n",  # the answer's step follows it
            arguments=('{"expression": ', json.dumps(text), "}"),
        )
    if TIME_WORDS.search(question) and "current_time" in tools:
        zone = ZONE.search(question)
        name = zone[0] if zone else "UTC"
        return Plan(
            tool="current_time",
            thinking="The user asks about the time. The current_time tool knows it.",
            sentence=f"Let me look at the clock ({name}).\n\n",
            arguments=('{"zone": ', json.dumps(name), "}"),
        )
    return None


def results(turns: tuple[Turn, ...]) -> list[Turn]:
    """The tool results the prompt ends with, in order."""
    found: list[Turn] = []
    for turn in reversed(turns):
        if turn.role != "tool":
            break
        found.insert(0, turn)
    return found


def answer_from(result: Turn) -> str:
    """One sentence about one tool result, quoting it."""
    if result.is_error:
        return f"The {result.name or 'tool'} failed: {result.content}"
    try:
        value = json.loads(result.content)
    except ValueError:
        value = result.content
    if isinstance(value, dict) and "result" in value:
        return f"The result is {value['result']}."
    if isinstance(value, dict) and {"time", "date", "zone"} <= value.keys():
        return f"It is {value['time']} on {value['date']} ({value['zone']})."
    return f"The {result.name or 'tool'} answered: {result.content}"


class DemoProvider:
    name = "demo"

    def __init__(self, delay: float = 0.03) -> None:
        self.delay = delay

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(id="demo:default", provider="demo", name="default", label="Demo")]

    async def stream(self, model: str, prompt: Prompt) -> AsyncIterator[Chunk]:
        last = prompt.turns[-1] if prompt.turns else None
        tools = {tool.name for tool in prompt.tools}
        answered = results(prompt.turns)
        plan = plan_for(last.content, tools) if last and last.role == "user" else None
        if answered:
            chunks = self.answer(answered)
        elif plan is not None:
            calls = sum(len(turn.tool_calls) for turn in prompt.turns)
            chunks = self.call(plan, f"call_demo_{calls + 1}")
        else:
            chunks = self.reply(last.content if last else "", finish=bool(prompt.tools))
        output = 0
        for chunk in chunks:
            if isinstance(chunk, Text | Thinking | ToolCallArgs):
                await asyncio.sleep(self.delay)
                output += 1
            yield chunk
        yield Usage(
            input_tokens=sum(len(t.content.split()) for t in prompt.turns), output_tokens=output
        )

    def reply(self, question: str, *, finish: bool) -> Iterator[Chunk]:
        yield from map(Thinking, words(thinking_for(question)))
        yield from map(Text, words(answer_for(question)))
        if finish:
            yield Finish("stop")

    def call(self, plan: Plan, call_id: str) -> Iterator[Chunk]:
        yield from map(Thinking, words(plan.thinking))
        yield from map(Text, words(plan.sentence))
        yield ToolCallStart(call_id, plan.tool)
        for piece in plan.arguments:
            yield ToolCallArgs(call_id, piece)
        yield ToolCallEnd(call_id)
        yield Finish("tool_calls")

    def answer(self, answered: list[Turn]) -> Iterator[Chunk]:
        yield from map(Text, words(" ".join(answer_from(result) for result in answered)))
        yield Finish("stop")
