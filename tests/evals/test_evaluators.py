"""Every evaluator kind on exact cases: case in, Result out (value, passed, explanation or
error); configs refused or completed when saved; a catastrophic regex is an error in bounded
time, never a hung worker."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from gapless.errors import InvalidError
from gapless.evals.evaluators import Case, Result, check_config, evaluate, number_in


def run(kind: str, config: dict[str, Any], case: Case) -> Result:
    evaluator = {"id": "evl_1", "name": "check", "kind": kind, "config": check_config(kind, config)}
    return evaluate(evaluator, case)


def case(output: str, expected: str | None = None, **figures: Any) -> Case:
    return Case(
        input={"messages": [{"role": "user", "content": "Q"}]},
        output=output,
        expected=expected,
        **figures,
    )


def yes(explanation: str) -> Result:
    return Result("evl_1", "check", "boolean", 1.0, None, explanation, True, None)


def no(explanation: str) -> Result:
    return Result("evl_1", "check", "boolean", 0.0, None, explanation, False, None)


def error(message: str) -> Result:
    return Result("evl_1", "check", "boolean", None, None, None, None, message)


CASES = [
    # exact
    ("exact", {}, case("Paris", "Paris"), yes("the output is the expected output")),
    ("exact", {}, case("paris", "Paris"), no("the output 'paris' is not 'Paris'")),
    (
        "exact",
        {"case_sensitive": False},
        case("PARIS", "Paris"),
        yes("the output is the expected output"),
    ),
    ("exact", {}, case("Paris "), error("the case has no expected output")),
    # contains
    ("contains", {}, case("It is Paris.", "paris"), yes("the output contains 'paris'")),
    (
        "contains",
        {"case_sensitive": True},
        case("It is Paris.", "paris"),
        no("the output does not contain 'paris'"),
    ),
    ("contains", {"value": "sorry"}, case("I am SORRY", None), yes("the output contains 'sorry'")),
    ("contains", {}, case("anything"), error("the case has no expected output")),
    # regex
    (
        "regex",
        {"pattern": r"\d{4}-\d{2}-\d{2}"},
        case("due 2026-12-07."),
        yes("matched '2026-12-07'"),
    ),
    ("regex", {"pattern": r"^\d+$"}, case("12a"), no("no match for '^\\\\d+$'")),
    # json
    ("json", {}, case('{"a": [1, 2]}'), yes("the output is JSON")),
    (
        "json",
        {},
        case("{'a': 1}"),
        no(
            "the output is not JSON: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)"
        ),
    ),
    ("json", {}, case("NaN"), no("the output is not JSON: NaN is not JSON")),
    # json_schema
    (
        "json_schema",
        {
            "schema": {
                "type": "object",
                "required": ["city"],
                "properties": {"city": {"type": "string"}},
            }
        },
        case('{"city": "Paris"}'),
        yes("the output matches the schema"),
    ),
    (
        "json_schema",
        {"schema": {"type": "object", "properties": {"age": {"type": "integer"}}}},
        case('{"age": "nine"}'),
        no("at age: 'nine' is not of type 'integer'"),
    ),
    (
        "json_schema",
        {"schema": {"type": "object", "required": ["city"]}},
        case("{}"),
        no("at (root): 'city' is a required property"),
    ),
    (
        "json_schema",
        {"schema": {"type": "object"}},
        case("not json"),
        no("the output is not JSON: Expecting value: line 1 column 1 (char 0)"),
    ),
    (
        "json_schema",
        {"schema": {"$ref": "https://example.com/elsewhere.json"}},
        case("{}"),
        error("the schema cannot be applied: Unresolvable: https://example.com/elsewhere.json"),
    ),
    # numeric
    (
        "numeric",
        {"tolerance": 0.5},
        case("The answer is 42.3", "42"),
        yes("42.3 vs 42: off by 0.3, allowed 0.5"),
    ),
    ("numeric", {"tolerance": 0.1}, case("42.3", "42"), no("42.3 vs 42: off by 0.3, allowed 0.1")),
    (
        "numeric",
        {"tolerance": 0.01, "relative": True},
        case("1,005", "1000"),
        yes("1005 vs 1000: off by 5, allowed 10"),
    ),
    ("numeric", {"tolerance": 0}, case("no idea", "7"), no("the output has no number")),
    ("numeric", {"tolerance": 1}, case("7", "seven"), error("the expected output has no number")),
    # latency
    ("latency", {"max_ms": 2000}, case("x", duration_ms=1500.0), yes("1500 ms ≤ 2000 ms")),
    ("latency", {"max_ms": 2000}, case("x", duration_ms=2500.5), no("2500.5 ms > 2000 ms")),
    ("latency", {"max_ms": 2000}, case("x"), error("the case has no duration")),
    # cost
    ("cost", {"max": 0.01}, case("x", cost=0.004), yes("$0.004 ≤ $0.01")),
    ("cost", {"max": 0.01}, case("x", cost=0.02), no("$0.02 > $0.01")),
    ("cost", {"max": 0.01}, case("x"), error("the case has no cost (its model has no price)")),
]


@pytest.mark.parametrize(("kind", "config", "given", "expected"), CASES)
def test_each_kind_gives_the_exact_result(
    kind: str, config: dict[str, Any], given: Case, expected: Result
) -> None:
    assert run(kind, config, given) == expected


def test_a_result_as_json_has_the_agreed_keys() -> None:
    found = run("exact", {}, case("a", "a")).json()
    assert found == {
        "evaluator_id": "evl_1",
        "name": "check",
        "data_type": "boolean",
        "value": 1.0,
        "label": None,
        "explanation": "the output is the expected output",
        "passed": True,
        "error": None,
    }


@pytest.mark.parametrize(
    ("pattern", "text"),
    [(r"(a|aa)+$", "a" * 80 + "b"), (r"(x+x+)+y", "x" * 5000)],
)
def test_a_catastrophic_pattern_is_an_error_in_bounded_time(pattern: str, text: str) -> None:
    started = time.monotonic()
    found = run("regex", {"pattern": pattern}, case(text))
    assert time.monotonic() - started < 5
    assert found.error == "the pattern ran past 0.5 s on this output"
    assert found.value is None and found.passed is None


CHILD = """
import json, sys
from gapless.evals.evaluators import Case, evaluate
schema = {"type": "object", "properties": {"name": {"pattern": sys.argv[1]}}}
found = evaluate(
    {"id": "e", "name": "e", "kind": "json_schema", "config": {"schema": schema}},
    Case(input={}, output=json.dumps({"name": sys.argv[2]}), expected=None, metadata={}),
)
print(json.dumps(found.json()))
"""


@pytest.mark.parametrize(
    ("pattern", "text"),
    [(r"(a|aa)+$", "a" * 80 + "b"), (r"(x+x+)+y", "x" * 5000)],
)
def test_a_json_schemas_catastrophic_pattern_is_an_error_in_bounded_time(
    pattern: str, text: str
) -> None:
    """A schema's `pattern` is matched with the regex kind's timeout: jsonschema's own `re`
    has none and holds the GIL, so the worker froze. In a child process, so a hang fails
    this test instead of freezing it."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, pattern, text],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the schema's pattern held the process")
    found = json.loads(done.stdout)
    assert found["error"] == "the schema's pattern ran past 0.5 s on this output"
    assert found["value"] is None and found["passed"] is None


def test_a_json_schemas_pattern_still_checks_the_output() -> None:
    schema = {"type": "object", "properties": {"code": {"pattern": "^[A-Z]{3}$"}}}
    assert run("json_schema", {"schema": schema}, case('{"code": "ABC"}')).passed is True
    found = run("json_schema", {"schema": schema}, case('{"code": "abcd"}'))
    assert (
        found.passed is False and found.explanation == "at code: 'abcd' does not match '^[A-Z]{3}$'"
    )


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("42", 42.0),
        ("-3.5e2", -350.0),
        ("about 1,234,567 people", 1234567.0),
        ("from 3 to 7", 7.0),
        ("none", None),
        (".5", 0.5),
    ],
)
def test_the_number_a_text_gives(text: str, number: float | None) -> None:
    assert number_in(text) == number


CONFIGS = [
    ("exact", {}, {"case_sensitive": True}),
    ("contains", {}, {"case_sensitive": False}),
    ("contains", {"value": "x", "case_sensitive": True}, {"value": "x", "case_sensitive": True}),
    ("regex", {"pattern": "a+"}, {"pattern": "a+"}),
    ("json", {}, {}),
    ("numeric", {"tolerance": 1}, {"tolerance": 1.0, "relative": False}),
    ("latency", {"max_ms": 10}, {"max_ms": 10.0}),
    ("cost", {"max": 0.5}, {"max": 0.5}),
    (
        "judge",
        {"prompt": {"name": "rubric"}, "model": "scripted:default"},
        {"prompt": {"name": "rubric"}, "model": "scripted:default", "pass": 0.5},
    ),
    (
        "judge",
        {"prompt": {"name": "rubric", "version": 2}, "model": "a:b", "pass": 0.8},
        {"prompt": {"name": "rubric", "version": 2}, "model": "a:b", "pass": 0.8},
    ),
]


@pytest.mark.parametrize(("kind", "config", "stored"), CONFIGS)
def test_a_config_is_stored_with_its_defaults(
    kind: str, config: dict[str, Any], stored: dict[str, Any]
) -> None:
    assert check_config(kind, config) == stored


BAD = [
    ("nope", {}, "unknown_kind", "kind is one of"),
    ("regex", {"pattern": "(unclosed"}, "bad_config", "bad pattern"),
    ("regex", {}, "bad_config", "pattern is a regular expression"),
    ("json_schema", {"schema": {"type": "nonsense"}}, "bad_config", "bad schema"),
    ("json_schema", {"schema": []}, "bad_config", "schema is a JSON schema"),
    (
        "json_schema",
        {"schema": {"properties": {"a": {"patternProperties": {"^x": {}}}}}},
        "bad_config",
        "patternProperties",
    ),
    ("numeric", {}, "bad_config", "tolerance is a number"),
    ("numeric", {"tolerance": -1}, "bad_config", "tolerance is at least 0"),
    ("latency", {"max_ms": "1s"}, "bad_config", "max_ms is a number"),
    ("cost", {"max": True}, "bad_config", "max is a number"),
    ("exact", {"case_sensitive": "yes"}, "bad_config", "case_sensitive is true or false"),
    ("exact", {"typo": 1}, "bad_config", "unknown config: typo"),
    ("contains", {"value": ""}, "bad_config", "value is a non-empty text"),
    ("judge", {"model": "a:b"}, "bad_config", "prompt is {name"),
    (
        "judge",
        {"prompt": {"name": "r", "label": "x", "version": 1}, "model": "a:b"},
        "bad_config",
        "not both",
    ),
    ("judge", {"prompt": {"name": "r"}, "model": "gpt"}, "bad_config", "model is provider:model"),
    (
        "judge",
        {"prompt": {"name": "r"}, "model": "a:b", "pass": 2},
        "bad_config",
        "pass is a score from 0 to 1",
    ),
]


@pytest.mark.parametrize(("kind", "config", "code", "message"), BAD)
def test_a_bad_config_is_refused_with_a_reason(
    kind: str, config: dict[str, Any], code: str, message: str
) -> None:
    with pytest.raises(InvalidError) as raised:
        check_config(kind, config)
    assert raised.value.code == code and message in raised.value.message


def test_the_judge_is_not_a_pure_kind() -> None:
    evaluator = {"id": "e", "name": "n", "kind": "judge", "config": {}}
    with pytest.raises(ValueError, match="judge"):
        evaluate(evaluator, case("x"))
