"""`BenchProvider`: a clock as a model, so latency can be measured from outside.

Every chunk is the wall-clock time of its yield in nanoseconds followed by a
space (`"1763884800123456789 "`). A client anywhere on the same machine
subtracts that number from its own receipt time to get the end-to-end latency
from the model's yield to its screen, with nothing inside the service timing
anything. The rate and the length are chosen in the model name:

    bench:r50-n200    50 tokens per second, 200 tokens
    bench:r0-n1000    as fast as possible (no sleep), 1000 tokens

    bench:r50-n200-t  the same clock as the arguments of one long tool call

The `-t` variant measures a tool-call delta's cost against a text delta's: it
yields `ToolCallStart(id, "clock")` with the opening `{"stamps": "` as one
`ToolCallArgs`, then every token as a `ToolCallArgs` of exactly the same text
a plain token would be (`"1763884800123456789 "`), then the closing `"}` (so
the arguments are valid JSON: `{"stamps": "<ns> <ns> ... "}`), `ToolCallEnd`
and `Finish("tool_calls")`. A client takes the stamps from the deltas whose
argument text is a number. When the prompt ends with tool results (the job
ran, or refused, the `clock` call) it answers nothing but `Finish("stop")`,
so an agent's loop ends after one more, empty, step. Call ids are
`bench_<n>`, n counting the calls already in the prompt.

The pace is kept against an absolute schedule (token `i` is due at
`start + i / rate`), so a slow consumer never stretches the stream. Off by
default: enabled by the `providers` setting (`GAPLESS_PROVIDERS=demo,bench`).
Imports `providers.base` and `errors`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from gapless.errors import InvalidError
from gapless.providers.base import (
    Chunk,
    Finish,
    ModelInfo,
    Prompt,
    Text,
    ToolCallArgs,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)

MAX_RATE = 100_000
MAX_TOKENS = 1_000_000
_NAME = re.compile(r"r(0|[1-9][0-9]{0,5})-n([1-9][0-9]{0,6})(-t)?")


@dataclass(frozen=True, slots=True)
class Pace:
    rate: int  # tokens per second; 0 = as fast as possible
    tokens: int
    tools: bool = False  # the tokens are one tool call's arguments


def parse_model(model: str) -> Pace:
    """`"r50-n200"` -> `Pace(50, 200)`, `"r50-n200-t"` -> `Pace(50, 200, tools=True)`;
    anything else is refused, never guessed."""
    match = _NAME.fullmatch(model)
    if match is None:
        raise InvalidError(
            f"bench model must be named r<tokens per second>-n<tokens>[-t], not {model!r}",
            code="bad_model",
        )
    pace = Pace(rate=int(match[1]), tokens=int(match[2]), tools=bool(match[3]))
    if pace.rate > MAX_RATE or pace.tokens > MAX_TOKENS:
        raise InvalidError(
            f"bench model allows at most r{MAX_RATE}-n{MAX_TOKENS}, not {model!r}",
            code="bad_model",
        )
    return pace


def words(prompt: Prompt) -> int:
    return sum(len(t.content.split()) for t in prompt.turns)


class BenchProvider:
    name = "bench"

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                id="bench:r50-n200",
                provider="bench",
                name="r50-n200",
                label="Bench: 50 tokens/s, 200 tokens",
            ),
            ModelInfo(
                id="bench:r0-n200",
                provider="bench",
                name="r0-n200",
                label="Bench: as fast as possible, 200 tokens",
            ),
            ModelInfo(
                id="bench:r50-n200-t",
                provider="bench",
                name="r50-n200-t",
                label="Bench: 50 tokens/s, 200 tokens as one tool call's arguments",
            ),
        ]

    def accepts(self, model: str) -> bool:
        """Model names are open-ended (`r<rate>-n<tokens>[-t]`): any well-formed one is offered."""
        try:
            parse_model(model)
        except InvalidError:
            return False
        return True

    async def stream(self, model: str, prompt: Prompt) -> AsyncIterator[Chunk]:
        pace = parse_model(model)
        if pace.tools and prompt.turns and prompt.turns[-1].role == "tool":
            yield Finish("stop")  # the call was answered: nothing more to say
            yield Usage(input_tokens=words(prompt), output_tokens=0)
            return
        call = f"bench_{sum(len(t.tool_calls) for t in prompt.turns) + 1}"
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(pace.tokens):
            if pace.rate:
                delay = start + i / pace.rate - loop.time()
                await asyncio.sleep(max(delay, 0.0))
            else:
                await asyncio.sleep(0)  # as fast as possible, yet never starve the loop
            if not pace.tools:
                yield Text(f"{time.time_ns()} ")
                continue
            if i == 0:
                yield ToolCallStart(call, "clock")
                yield ToolCallArgs(call, '{"stamps": "')
            yield ToolCallArgs(call, f"{time.time_ns()} ")
        if pace.tools:
            yield ToolCallArgs(call, '"}')
            yield ToolCallEnd(call)
            yield Finish("tool_calls")
        yield Usage(input_tokens=words(prompt), output_tokens=pace.tokens)
