"""`BenchProvider`: a clock as a model, so latency can be measured from outside.

Every chunk is the wall-clock time of its yield in nanoseconds followed by a
space (`"1763884800123456789 "`). A client anywhere on the same machine
subtracts that number from its own receipt time to get the end-to-end latency
from the model's yield to its screen, with nothing inside the service timing
anything. The rate and the length are chosen in the model name:

    bench:r50-n200    50 tokens per second, 200 tokens
    bench:r0-n1000    as fast as possible (no sleep), 1000 tokens

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
from gapless.providers.base import Chunk, ModelInfo, Prompt, Text, Usage

MAX_RATE = 100_000
MAX_TOKENS = 1_000_000
_NAME = re.compile(r"r(0|[1-9][0-9]{0,5})-n([1-9][0-9]{0,6})")


@dataclass(frozen=True, slots=True)
class Pace:
    rate: int  # tokens per second; 0 = as fast as possible
    tokens: int


def parse_model(model: str) -> Pace:
    """`"r50-n200"` -> `Pace(50, 200)`; anything else is refused, never guessed."""
    match = _NAME.fullmatch(model)
    if match is None:
        raise InvalidError(
            f"bench model must be named r<tokens per second>-n<tokens>, not {model!r}",
            code="bad_model",
        )
    pace = Pace(rate=int(match[1]), tokens=int(match[2]))
    if pace.rate > MAX_RATE or pace.tokens > MAX_TOKENS:
        raise InvalidError(
            f"bench model allows at most r{MAX_RATE}-n{MAX_TOKENS}, not {model!r}",
            code="bad_model",
        )
    return pace


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
        ]

    def accepts(self, model: str) -> bool:
        """Model names are open-ended (`r<rate>-n<tokens>`): any well-formed one is offered."""
        try:
            parse_model(model)
        except InvalidError:
            return False
        return True

    async def stream(self, model: str, prompt: Prompt) -> AsyncIterator[Chunk]:
        pace = parse_model(model)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(pace.tokens):
            if pace.rate:
                delay = start + i / pace.rate - loop.time()
                await asyncio.sleep(max(delay, 0.0))
            else:
                await asyncio.sleep(0)  # as fast as possible, yet never starve the loop
            yield Text(f"{time.time_ns()} ")
        yield Usage(
            input_tokens=sum(len(t.content.split()) for t in prompt.turns),
            output_tokens=pace.tokens,
        )
