"""The bench provider: strict model names, and chunks that are clock readings."""

from __future__ import annotations

import json
import time

import pytest

from gapless.errors import InvalidError
from gapless.providers.base import (
    Finish,
    Prompt,
    Text,
    ToolCall,
    ToolCallArgs,
    ToolCallEnd,
    ToolCallStart,
    Turn,
    Usage,
)
from gapless.providers.bench import BenchProvider, Pace, parse_model

PROMPT = Prompt(turns=(Turn(role="user", content="go fast"),))


def test_model_name_gives_rate_and_length() -> None:
    assert parse_model("r50-n200") == Pace(rate=50, tokens=200)
    assert parse_model("r0-n1") == Pace(rate=0, tokens=1)
    assert parse_model("r50-n200-t") == Pace(rate=50, tokens=200, tools=True)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "r50",
        "n200",
        "r50-n0",
        "r-1-n5",
        "r05-n5",
        "r5-n05",
        "R5-N5",
        " r5-n5",
        "r5-n5 ",
        "r5-n5-x",
        "r5n5",
        "r200000-n5",
        "r5-n2000000",
        "r1.5-n5",
        "r5-n5-",
        "r5-n5-T",
        "r5-n5-t-t",
        "r5-n5t",
    ],
)
def test_bad_model_name_is_refused(name: str) -> None:
    with pytest.raises(InvalidError) as caught:
        parse_model(name)
    assert caught.value.code == "bad_model"


def test_provider_accepts_exactly_the_well_formed_names() -> None:
    provider = BenchProvider()
    assert provider.accepts("r7-n3")
    assert not provider.accepts("r7-n0")
    assert not provider.accepts("default")


def test_models_are_valid_names() -> None:
    provider = BenchProvider()
    for info in provider.models():
        assert info.provider == "bench"
        assert info.id == f"bench:{info.name}"
        parse_model(info.name)


async def test_chunks_are_nanosecond_clock_readings_then_usage() -> None:
    before = time.time_ns()
    chunks = [c async for c in BenchProvider().stream("r0-n5", PROMPT)]
    after = time.time_ns()
    texts = [c for c in chunks if isinstance(c, Text)]
    assert len(texts) == 5
    stamps = [int(t.text[:-1]) for t in texts]
    assert all(t.text.endswith(" ") and t.text == f"{int(t.text[:-1])} " for t in texts)
    assert stamps == sorted(stamps)
    assert before <= stamps[0] and stamps[-1] <= after
    assert chunks[-1] == Usage(input_tokens=2, output_tokens=5)


async def test_bad_name_fails_before_any_chunk() -> None:
    with pytest.raises(InvalidError):
        async for _ in BenchProvider().stream("fast", PROMPT):
            pass


async def test_rate_paces_the_stream() -> None:
    # 4 tokens at 200/s are due at 0, 5, 10 and 15 ms after the start: the last cannot come
    # before 15 ms (measured from before the start, as a late first token on a busy machine
    # lets the others catch up with the schedule).
    before = time.time_ns()
    chunks = [c async for c in BenchProvider().stream("r200-n4", PROMPT)]
    stamps = [int(c.text[:-1]) for c in chunks if isinstance(c, Text)]
    assert stamps[-1] - before >= 14_000_000


async def test_tool_variant_streams_the_clock_as_one_calls_arguments() -> None:
    before = time.time_ns()
    chunks = [c async for c in BenchProvider().stream("r0-n3-t", PROMPT)]
    after = time.time_ns()

    start, opening, *ticks, closing, end, finish, usage = chunks
    assert start == ToolCallStart("bench_1", "clock")
    assert opening == ToolCallArgs("bench_1", '{"stamps": "')
    assert closing == ToolCallArgs("bench_1", '"}')
    assert (end, finish, usage) == (
        ToolCallEnd("bench_1"), Finish("tool_calls"), Usage(input_tokens=2, output_tokens=3)
    )
    assert len(ticks) == 3
    assert all(isinstance(t, ToolCallArgs) and t.id == "bench_1" for t in ticks)
    stamps = [int(t.text) for t in ticks if isinstance(t, ToolCallArgs)]
    assert [t.text for t in ticks if isinstance(t, ToolCallArgs)] == [f"{s} " for s in stamps]
    assert stamps == sorted(stamps) and before <= stamps[0] and stamps[-1] <= after
    arguments = "".join(c.text for c in chunks if isinstance(c, ToolCallArgs))
    assert json.loads(arguments)["stamps"].split() == [str(s) for s in stamps]


async def test_tool_variant_answers_a_tool_result_with_nothing() -> None:
    prompt = Prompt(turns=(
        Turn("user", "go"),
        Turn("assistant", "", tool_calls=(ToolCall("bench_1", "clock", "{}"),)),
        Turn("tool", "unknown tool", tool_call_id="bench_1", is_error=True),
    ))

    chunks = [c async for c in BenchProvider().stream("r0-n3-t", prompt)]

    assert chunks == [Finish("stop"), Usage(input_tokens=3, output_tokens=0)]
