"""Reading JSONL and CSV into dataset items, with literal texts: every bad line named by the
line it is on in the text (a quoted cell may span lines), nothing answered when any is bad."""

from __future__ import annotations

import json

import pytest

from gapless.errors import InvalidError, TooLargeError
from gapless.evals import imports


def bad_lines(kind: str, text: str) -> list[int]:
    with pytest.raises(InvalidError) as refused:
        imports.parse(kind, text)
    assert refused.value.code == "bad_rows"
    return [d["line"] for d in refused.value.details or []]


def test_a_str_input_is_one_user_message_and_defaults_are_filled() -> None:
    assert imports.item({"input": "Hi"}) == {
        "input": {"messages": [{"role": "user", "content": "Hi"}], "variables": {}},
        "expected": None,
        "metadata": {},
    }


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({}, "input is missing"),
        ({"input": "", "expected": "x"}, "input is empty"),
        ({"input": {"messages": [{"role": "user", "content": "a", "name": "n"}]}}, "only"),
        ({"input": {"messages": [{"role": "user", "content": 3}]}}, "content"),
        ({"input": {"messages": "hi", "variables": {"a": ["b"]}}}, "variable 'a'"),
        ({"input": {"messages": [{"role": "user", "content": "a"}], "extra": 1}}, "unknown"),
        ({"input": "a", "metadata": "m"}, "metadata"),
        ({"input": "a", "metadata": {"big": "x" * 20_000}}, "metadata is over"),
        ({"input": "a", "metadata": {"x": float("nan")}}, "NaN"),
        ({"input": "a", "id": "mine"}, "unknown fields: id"),
        ({"input": [{"role": "user", "content": "a"}] * 201}, "input is text"),
        ({"input": {"messages": [{"role": "user", "content": "a"}] * 201}}, "over 200"),
    ],
)
def test_an_item_that_breaks_a_rule_says_which(fields: dict[str, object], says: str) -> None:
    with pytest.raises(imports.RowError, match=says):
        imports.item(fields)
    with pytest.raises(InvalidError) as refused:
        imports.checked(fields)
    assert refused.value.code == "bad_item" and refused.value.status == 422


def test_jsonl_lines_are_counted_as_the_text_has_them() -> None:
    rows = [{"input": "a \u2028 b"}, {"input": "c", "expected": "d"}]
    text = "\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n\r\n"
    items = imports.parse("jsonl", text)
    assert [i["input"]["messages"][0]["content"] for i in items] == ["a \u2028 b", "c"]
    assert bad_lines("jsonl", '\n{"input": "a"}\n\n{oops\n' + "[" * 100_000 + "\n") == [4, 5]
    escaped = '{"input": "a", "expected": "\\ud800"}\n{"input": {"messages": "\\u0000"}}'
    assert bad_lines("jsonl", escaped) == [1, 2]


def test_csv_rows_are_named_by_the_line_they_start_on() -> None:
    text = 'input,expected\n"two\nlines",x\nshort\n"three\n\nlines",y\n,\n'
    assert bad_lines("csv", text) == [4, 8]
    crlf = "input,topic\r\nTide?,sea\r\n\r\nWind?,air\r\n"
    items = imports.parse("csv", crlf)
    assert [i["input"]["variables"] for i in items] == [{"topic": "sea"}, {"topic": "air"}]


def test_a_csv_header_needs_input_and_names_of_its_own() -> None:
    assert bad_lines("csv", "") == [1]
    assert bad_lines("csv", "Input,expected\nx,y\n") == [1]  # names are exact
    assert bad_lines("csv", "input,a,a\nx,1,2\n") == [1]
    assert bad_lines("csv", "input,,b\nx,1,2\n") == [1]
    assert bad_lines("csv", "input\n") == []  # no rows: refused, no line to blame


def test_the_message_names_the_first_lines_and_how_many_more() -> None:
    text = "\n".join(["{}"] * 12)
    with pytest.raises(InvalidError) as refused:
        imports.parse("jsonl", text)
    message = refused.value.message
    assert message.startswith("nothing imported: 12 bad lines (1, 2, 3, 4, 5, 6, 7, 8, 9, 10")
    assert "and 2 more" in message and "line 1: input is missing" in message
    assert len(refused.value.details or []) == 12


def test_too_many_rows_or_characters_is_413() -> None:
    with pytest.raises(TooLargeError) as rows:
        imports.parse("csv", "input\n" + "x\n" * 5_001)
    assert rows.value.status == 413 and rows.value.code == "too_many_rows"
    with pytest.raises(TooLargeError):
        imports.parse("jsonl", " " * 250_001)
    assert len(imports.parse("csv", "input\n" + "x\n" * 5_000)) == 5_000
