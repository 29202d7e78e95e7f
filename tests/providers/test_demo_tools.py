"""The demo model calls tools deterministically: arithmetic and the time, then answers."""

from __future__ import annotations

import json

from gapless.providers.base import (
    Chunk,
    Finish,
    Prompt,
    Text,
    Thinking,
    ToolCall,
    ToolCallArgs,
    ToolCallEnd,
    ToolCallStart,
    ToolSpec,
    Turn,
    Usage,
)
from gapless.providers.demo import DemoProvider, answer_for, thinking_for, words

CALCULATOR = ToolSpec("calculator", "Evaluate arithmetic.", {"type": "object"})
TIME = ToolSpec("current_time", "The time now.", {"type": "object"})
BOTH = (CALCULATOR, TIME)


async def run(prompt: Prompt) -> list[Chunk]:
    return [chunk async for chunk in DemoProvider(delay=0).stream("default", prompt)]


def asked(question: str, tools: tuple[ToolSpec, ...] = BOTH) -> Prompt:
    return Prompt(turns=(Turn("user", question),), tools=tools)


def call_chunks(chunks: list[Chunk]) -> list[Chunk]:
    return [c for c in chunks if isinstance(c, ToolCallStart | ToolCallArgs | ToolCallEnd)]


async def test_arithmetic_with_a_calculator_streams_a_call_over_several_deltas() -> None:
    chunks = await run(asked("What is 12*7?"))

    thinking = "".join(c.text for c in chunks if isinstance(c, Thinking))
    text = "".join(c.text for c in chunks if isinstance(c, Text))
    assert thinking == "This is arithmetic. The calculator tool computes it exactly."
    assert text == "Let me calculate 12*7.\n\n"
    assert call_chunks(chunks) == [
        ToolCallStart("call_demo_1", "calculator"),
        ToolCallArgs("call_demo_1", '{"expression": '),
        ToolCallArgs("call_demo_1", '"12*7"'),
        ToolCallArgs("call_demo_1", "}"),
        ToolCallEnd("call_demo_1"),
    ]
    assert chunks[-2:] == [Finish("tool_calls"), Usage(input_tokens=3, output_tokens=16)]
    # thinking, then the sentence, then the call: in that order
    kinds = [type(c).__name__ for c in chunks]
    assert kinds.index("Text") > kinds.index("Thinking")
    assert kinds.index("ToolCallStart") > max(i for i, k in enumerate(kinds) if k == "Text")


async def test_an_expression_with_parentheses_and_spaces_is_passed_whole() -> None:
    chunks = await run(asked("Calculate (2 + 3) * 4.5 please"))

    arguments = "".join(c.text for c in chunks if isinstance(c, ToolCallArgs))
    assert json.loads(arguments) == {"expression": "(2 + 3) * 4.5"}


async def test_a_question_about_the_time_calls_current_time_with_its_zone() -> None:
    chunks = await run(asked("What time is it in Europe/Paris?"))

    assert call_chunks(chunks) == [
        ToolCallStart("call_demo_1", "current_time"),
        ToolCallArgs("call_demo_1", '{"zone": '),
        ToolCallArgs("call_demo_1", '"Europe/Paris"'),
        ToolCallArgs("call_demo_1", "}"),
        ToolCallEnd("call_demo_1"),
    ]
    plain = await run(asked("what's the date today"))
    args = "".join(c.text for c in plain if isinstance(c, ToolCallArgs))
    assert json.loads(args) == {"zone": "UTC"}


async def test_tool_results_are_answered_in_streamed_words() -> None:
    prompt = Prompt(
        turns=(
            Turn("user", "What is 12*7?"),
            Turn("assistant", "Let me calculate 12*7.\n\n",
                 tool_calls=(ToolCall("call_demo_1", "calculator", '{"expression": "12*7"}'),)),
            Turn("tool", '{"expression": "12*7", "result": 84}', tool_call_id="call_demo_1",
                 name="calculator"),
        ),
        tools=BOTH,
    )

    chunks = await run(prompt)

    texts = [c for c in chunks if isinstance(c, Text)]
    assert [t.text for t in texts] == ["The ", "result ", "is ", "84."]
    assert call_chunks(chunks) == []
    assert chunks[-2] == Finish("stop")


async def test_a_time_result_and_a_failed_call_are_both_quoted() -> None:
    prompt = Prompt(
        turns=(
            Turn("user", "time and 1/0"),
            Turn("assistant", "", tool_calls=(ToolCall("a", "current_time", "{}"),
                                              ToolCall("b", "calculator", "{}"))),
            Turn("tool", json.dumps({"zone": "UTC", "date": "2026-12-07", "time": "16:30:00"}),
                 tool_call_id="a", name="current_time"),
            Turn("tool", "division by zero", tool_call_id="b", name="calculator",
                 is_error=True),
        ),
        tools=BOTH,
    )

    text = "".join(c.text for c in await run(prompt) if isinstance(c, Text))

    assert text == "It is 16:30:00 on 2026-12-07 (UTC). The calculator failed: division by zero"


async def test_a_later_call_in_the_same_reply_gets_a_fresh_id() -> None:
    prompt = Prompt(
        turns=(
            Turn("user", "time?"),
            Turn("assistant", "", tool_calls=(ToolCall("call_demo_1", "current_time", "{}"),)),
            Turn("tool", "noon", tool_call_id="call_demo_1", name="current_time"),
            Turn("assistant", "It is noon."),
            Turn("user", "and 2+2?"),
        ),
        tools=BOTH,
    )

    starts = [c for c in await run(prompt) if isinstance(c, ToolCallStart)]

    assert starts == [ToolCallStart("call_demo_2", "calculator")]


async def test_no_call_when_the_tool_it_needs_is_not_offered() -> None:
    chunks = await run(asked("What is 12*7?", tools=(TIME,)))

    assert call_chunks(chunks) == []
    assert chunks[-2:-1] == [Finish("stop")]
    assert "".join(c.text for c in chunks if isinstance(c, Text)) == answer_for("What is 12*7?")


async def test_without_tools_the_reply_is_exactly_as_before() -> None:
    question = "What is 12*7?"
    chunks = await run(Prompt(turns=(Turn("user", question),)))

    expected: list[Chunk] = [
        *map(Thinking, words(thinking_for(question))),
        *map(Text, words(answer_for(question))),
    ]
    assert chunks == [*expected, Usage(input_tokens=3, output_tokens=len(expected))]
