"""The bench provider: strict model names, and chunks that are clock readings."""

from __future__ import annotations

import time

import pytest

from gapless.errors import InvalidError
from gapless.providers.base import Prompt, Text, Turn, Usage
from gapless.providers.bench import BenchProvider, Pace, parse_model

PROMPT = Prompt(turns=(Turn(role="user", content="go fast"),))


def test_model_name_gives_rate_and_length() -> None:
    assert parse_model("r50-n200") == Pace(rate=50, tokens=200)
    assert parse_model("r0-n1") == Pace(rate=0, tokens=1)


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
    # 4 tokens at 200/s are due at 0, 5, 10 and 15 ms: the last cannot come before 15 ms.
    chunks = [c async for c in BenchProvider().stream("r200-n4", PROMPT)]
    stamps = [int(c.text[:-1]) for c in chunks if isinstance(c, Text)]
    assert stamps[-1] - stamps[0] >= 14_000_000
