"""Evaluator kinds: what each checks, its config, and its result on one case. Pure.

A `Case` is what was asked and answered (pydantic-evals' context, in our words:
input, output, expected, metadata, and the run's duration, cost and tokens).
`evaluate` runs every kind but the LLM judge (`evals.judge`, which calls a
model) and never raises on a bad case: a check that cannot be made (no
expected output to compare with, a regex that runs past its time) is a
`Result` with `error` set and no value, never a score. `check_config` refuses
a config a kind cannot use, when the evaluator is saved, with the config as it
will be stored. Imports `errors`.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import jsonschema
import regex

from gapless.errors import InvalidError

KINDS = ("exact", "contains", "regex", "json", "json_schema", "numeric", "latency", "cost", "judge")
REGEX_SECONDS = 0.5  # a pattern that backtracks longer is an evaluator error, not a hung worker
MAX_PATTERN = 1_000
DataType = Literal["boolean", "numeric", "categorical"]
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")


@dataclass(frozen=True)
class Case:
    """One answer to evaluate: a dataset item's run, or a live reply."""

    input: dict[str, Any]  # {"messages": [{role, content}], "variables": {...}}
    output: str
    expected: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    duration_ms: float | None = None
    cost: float | None = None
    tokens: int | None = None


@dataclass(frozen=True)
class Result:
    """An evaluator's verdict on a case. With `error`, `value` and `passed` are None."""

    evaluator_id: str
    name: str
    data_type: DataType
    value: float | None = None  # booleans are 1/0
    label: str | None = None
    explanation: str | None = None
    passed: bool | None = None
    error: str | None = None

    def json(self) -> dict[str, Any]:
        return asdict(self)


def failed(evaluator: Mapping[str, Any], error: str) -> Result:
    return Result(str(evaluator["id"]), str(evaluator["name"]), data_type(evaluator), error=error)


def data_type(evaluator: Mapping[str, Any]) -> DataType:
    return "numeric" if evaluator["kind"] == "judge" else "boolean"


def judged(evaluator: Mapping[str, Any], score: float) -> bool:
    """Whether a judge's score passes: at least its `pass`."""
    return score >= float((evaluator.get("config") or {}).get("pass", 0.5))


def kept(evaluator: Mapping[str, Any], score: Mapping[str, Any]) -> Result:
    """The result a stored score stands for (its scorer died before the item's result)."""
    value = float(score["value"])
    passed = judged(evaluator, value) if evaluator["kind"] == "judge" else value == 1.0
    return Result(
        str(evaluator["id"]),
        str(evaluator["name"]),
        data_type(evaluator),
        value=value,
        label=score.get("label"),
        explanation=score.get("comment"),
        passed=passed,
    )


# ---- configs -----------------------------------------------------------------------------


def _bad(message: str) -> InvalidError:
    return InvalidError(message, code="bad_config")


def _flag(config: Mapping[str, Any], name: str, default: bool) -> bool:
    value = config.get(name, default)
    if not isinstance(value, bool):
        raise _bad(f"{name} is true or false")
    return value


def _number(config: Mapping[str, Any], name: str, *, low: float = 0.0) -> float:
    value = config.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(f"{name} is a number")
    if value < low:
        raise _bad(f"{name} is at least {low:g}")
    return float(value)


def _only(config: Mapping[str, Any], *names: str) -> None:
    extra = sorted(set(config) - set(names))
    if extra:
        raise _bad(f"unknown config: {', '.join(extra)}")


def compile_pattern(pattern: Any) -> Any:
    if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_PATTERN:
        raise _bad(f"pattern is a regular expression of 1 to {MAX_PATTERN} characters")
    try:
        return regex.compile(pattern)
    except (regex.error, ValueError, OverflowError) as exc:
        raise _bad(f"bad pattern: {exc}") from None


def check_config(kind: str, config: Any) -> dict[str, Any]:
    """The config as stored (defaults filled in); `InvalidError` (422) when unusable."""
    if kind not in KINDS:
        raise InvalidError(f"kind is one of {', '.join(KINDS)}", code="unknown_kind")
    if not isinstance(config, Mapping):
        raise _bad("config is an object")
    if kind == "exact":
        _only(config, "case_sensitive")
        return {"case_sensitive": _flag(config, "case_sensitive", True)}
    if kind == "contains":
        _only(config, "value", "case_sensitive")
        value = config.get("value")
        if value is not None and (not isinstance(value, str) or not value):
            raise _bad("value is a non-empty text (or absent: the expected output)")
        found = {"case_sensitive": _flag(config, "case_sensitive", False)}
        return {"value": value, **found} if value is not None else found
    if kind == "regex":
        _only(config, "pattern")
        compile_pattern(config.get("pattern"))
        return {"pattern": config["pattern"]}
    if kind == "json":
        _only(config)
        return {}
    if kind == "json_schema":
        _only(config, "schema")
        schema = config.get("schema")
        if not isinstance(schema, dict):
            raise _bad("schema is a JSON schema (an object)")
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise _bad(f"bad schema: {exc.message}") from None
        if _keyed(schema, "patternProperties"):
            raise _bad(UNBOUNDED)
        return {"schema": schema}
    if kind == "numeric":
        _only(config, "tolerance", "relative")
        return {
            "tolerance": _number(config, "tolerance"),
            "relative": _flag(config, "relative", False),
        }
    if kind == "latency":
        _only(config, "max_ms")
        return {"max_ms": _number(config, "max_ms")}
    if kind == "cost":
        _only(config, "max")
        return {"max": _number(config, "max")}
    return _judge_config(config)


def _judge_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A judge's config by shape; whether its prompt and model exist is the caller's check."""
    _only(config, "prompt", "model", "pass")
    prompt = config.get("prompt")
    if not isinstance(prompt, Mapping) or not isinstance(prompt.get("name"), str):
        raise _bad("prompt is {name, label?} or {name, version?}")
    _only(prompt, "name", "label", "version")
    label, version = prompt.get("label"), prompt.get("version")
    if label is not None and version is not None:
        raise _bad("give the prompt's label or its version, not both")
    if label is not None and (not isinstance(label, str) or not label):
        raise _bad("the prompt's label is a text")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        raise _bad("the prompt's version is a number from 1")
    ref = {"name": prompt["name"], **({"label": label} if label else {})}
    if version is not None:
        ref["version"] = version
    model = config.get("model")
    if not isinstance(model, str) or ":" not in model.strip(":"):
        raise _bad("model is provider:model")
    threshold = _number({"pass": config.get("pass", 0.5)}, "pass")
    if threshold > 1:
        raise _bad("pass is a score from 0 to 1")
    return {"prompt": ref, "model": model, "pass": threshold}


# ---- evaluation --------------------------------------------------------------------------


def evaluate(evaluator: Mapping[str, Any], case: Case) -> Result:
    """The evaluator's result on `case`, for every kind but `judge` (see `evals.judge`)."""
    kind, config = evaluator["kind"], evaluator.get("config") or {}
    if kind == "judge" or kind not in KINDS:
        raise ValueError(f"evaluate does not run {kind!r} evaluators")
    try:
        passed, explanation = CHECKS[kind](config, case)
    except _CannotError as exc:
        return failed(evaluator, str(exc))
    return Result(
        str(evaluator["id"]),
        str(evaluator["name"]),
        "boolean",
        value=1.0 if passed else 0.0,
        explanation=explanation,
        passed=passed,
    )


class _CannotError(Exception):
    """The check cannot be made on this case (an evaluator error, not a score)."""


Check = tuple[bool, str]


def _expected(case: Case) -> str:
    if case.expected is None:
        raise _CannotError("the case has no expected output")
    return case.expected


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _exact(config: Mapping[str, Any], case: Case) -> Check:
    expected, output = _expected(case), case.output
    if not config.get("case_sensitive", True):
        expected, output = expected.casefold(), output.casefold()
    if output == expected:
        return True, "the output is the expected output"
    return False, f"the output {_short(case.output)} is not {_short(case.expected or '')}"


def _contains(config: Mapping[str, Any], case: Case) -> Check:
    wanted = config.get("value")
    wanted = _expected(case) if wanted is None else str(wanted)
    output = case.output
    if not config.get("case_sensitive", False):
        wanted, output = wanted.casefold(), output.casefold()
    if wanted in output:
        return True, f"the output contains {_short(wanted)}"
    return False, f"the output does not contain {_short(wanted)}"


def _regex(config: Mapping[str, Any], case: Case) -> Check:
    try:
        pattern = compile_pattern(config.get("pattern"))
    except InvalidError as exc:
        raise _CannotError(exc.message) from None
    try:
        found = pattern.search(case.output, timeout=REGEX_SECONDS, concurrent=True)
    except TimeoutError:
        raise _CannotError(f"the pattern ran past {REGEX_SECONDS:g} s on this output") from None
    if found is None:
        return False, f"no match for {_short(pattern.pattern)}"
    return True, f"matched {_short(found.group(0))}"


def _parsed(text: str) -> tuple[bool, Any, str]:
    """(ok, value, why not): the output as strict JSON (no NaN or Infinity)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        return True, json.loads(text, parse_constant=refuse), ""
    except ValueError as exc:  # JSONDecodeError is a ValueError
        return False, None, f"the output is not JSON: {exc}"
    except RecursionError:
        return False, None, "the output is not JSON: nested too deep"


def _json(config: Mapping[str, Any], case: Case) -> Check:
    ok, _, why = _parsed(case.output)
    return (True, "the output is JSON") if ok else (False, why)


def _json_schema(config: Mapping[str, Any], case: Case) -> Check:
    ok, value, why = _parsed(case.output)
    if not ok:
        return False, why
    schema = config.get("schema") or {}
    if _keyed(schema, "patternProperties"):  # saved before it was refused
        raise _CannotError(UNBOUNDED)
    try:
        validator = _bounded(jsonschema.validators.validator_for(schema))(schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    except _CannotError:
        raise
    except Exception as exc:  # a $ref to nowhere (nothing is fetched), a schema too deep
        raise _CannotError(f"the schema cannot be applied: {str(exc)[:200]}") from None
    if error is None:
        return True, "the output matches the schema"
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return False, f"at {where}: {error.message}"


# jsonschema matches a schema's patterns with `re`, which has no timeout and holds the GIL: a
# catastrophic one would freeze the worker. `pattern` gets the regex kind's timeout; the
# keys of `patternProperties` are matched by more keywords than it (additional and
# unevaluated properties), so a schema with it is refused.
UNBOUNDED = "patternProperties is not supported (its patterns could not be bounded in time)"


@functools.cache
def _bounded(validator: Any) -> Any:
    """The validator class with `pattern` matched under `REGEX_SECONDS`."""
    return jsonschema.validators.extend(validator, {"pattern": _pattern})


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "string"):
        return
    try:
        found = regex.search(pattern, instance, timeout=REGEX_SECONDS, concurrent=True)
    except TimeoutError:
        raise _CannotError(
            f"the schema's pattern ran past {REGEX_SECONDS:g} s on this output"
        ) from None
    if found is None:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _keyed(value: Any, key: str) -> bool:
    """Whether `key` is a key of any object in the JSON `value`."""
    if isinstance(value, Mapping):
        return key in value or any(_keyed(v, key) for v in value.values())
    if isinstance(value, list):
        return any(_keyed(v, key) for v in value)
    return False


def number_in(text: str) -> float | None:
    """The number a text gives: all of it when it is one, else the last number in it
    (`1,234` is 1234; an answer usually ends with its figure)."""
    cleaned = THOUSANDS.sub("", text.strip())
    found = NUMBER.findall(cleaned)
    if not found:
        return None
    value = float(found[-1])
    return value if math.isfinite(value) else None


def _numeric(config: Mapping[str, Any], case: Case) -> Check:
    output, expected = number_in(case.output), number_in(_expected(case))
    if expected is None:
        raise _CannotError("the expected output has no number")
    if output is None:
        return False, "the output has no number"
    tolerance = float(config.get("tolerance") or 0)
    gap = abs(output - expected)
    allowed = tolerance * abs(expected) if config.get("relative") else tolerance
    return gap <= allowed, f"{output:g} vs {expected:g}: off by {gap:g}, allowed {allowed:g}"


def _at_most(value: float | None, limit: float, unit: str, missing: str) -> Check:
    if value is None:
        raise _CannotError(missing)
    within = value <= limit
    shown = (f"${value:g}", f"${limit:g}") if unit == "$" else (f"{value:g} ms", f"{limit:g} ms")
    return within, f"{shown[0]} {'≤' if within else '>'} {shown[1]}"


def _latency(config: Mapping[str, Any], case: Case) -> Check:
    return _at_most(case.duration_ms, float(config["max_ms"]), "ms", "the case has no duration")


def _cost(config: Mapping[str, Any], case: Case) -> Check:
    missing = "the case has no cost (its model has no price)"
    return _at_most(case.cost, float(config["max"]), "$", missing)


CHECKS = {
    "exact": _exact,
    "contains": _contains,
    "regex": _regex,
    "json": _json,
    "json_schema": _json_schema,
    "numeric": _numeric,
    "latency": _latency,
    "cost": _cost,
}
