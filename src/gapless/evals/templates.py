"""Prompt templates: `{{ variables }}` rendered by Jinja2's sandbox, never `str.format`/`eval`.

Stored prompt text is untrusted input (anyone in the account may write it),
so it renders in `ImmutableSandboxedEnvironment`: attributes starting with `_`
are refused (`{{ ''.__class__ }}`, `{{ cycler.__init__.__globals__ }}` raise a
`SecurityError`), built-in containers cannot be mutated, and a missing
variable fails loudly (`StrictUndefined`) instead of rendering as "". What
the sandbox does not bound, this module does: `*` and `**` on huge operands,
numbers over `MAX_NUMBER` handed to a call or filter (`center(10**9)`), the
output's size, and the work a template may do (a budget of executed lines,
so nested loops cannot hold the event loop). Imports `errors`.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from gapless.errors import InvalidError

MAX_NUMBER = 100_000  # the largest int a call, filter, range or repetition may take
MAX_OUTPUT = 200_000  # characters of a rendered prompt
MAX_LINES = 200_000  # template lines executed by one render
FILENAME = "<prompt>"


class TemplateBudgetError(SecurityError):
    """The template did more work than one render may."""


def _checked_number(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_NUMBER:
        raise SecurityError(f"numbers above {MAX_NUMBER} are not allowed in a prompt")


def _guarded(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)  # keeps jinja's pass_context/pass_environment marks
    def call(*args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            _checked_number(value)
        return function(*args, **kwargs)

    return call


class PromptEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            _checked_number(left)
            _checked_number(right)
            if isinstance(right, int | float) and abs(right) > 64:
                raise SecurityError("exponents above 64 are not allowed in a prompt")
            return left**right
        for side in (left, right):
            _checked_number(side)
        return left * right

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            _checked_number(value)
        return super().call(__context, __obj, *args, **kwargs)


def environment() -> PromptEnvironment:
    env = PromptEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters = {name: _guarded(f) for name, f in env.filters.items()}
    return env


_ENV = environment()


def variables(text: str) -> list[str]:
    """The variables a template reads (sorted); a syntax error is `InvalidError`."""
    try:
        return sorted(meta.find_undeclared_variables(_ENV.parse(text)) - set(_ENV.globals))
    except TemplateSyntaxError as exc:
        raise InvalidError(
            f"template syntax error on line {exc.lineno}: {exc.message}", code="template_syntax"
        ) from None


def render(text: str, values: Mapping[str, Any]) -> str:
    """`text` with `values` filled in, in the sandbox. Refusals are `InvalidError` (422):
    `missing_variable` names what is missing, `undefined` an attribute or key a value lacks,
    `unsafe_template` what the sandbox refused, `template_error` any other failure."""
    missing = [name for name in variables(text) if name not in values]
    if missing:
        raise InvalidError(f"missing variables: {', '.join(missing)}", code="missing_variable")
    try:
        template = _ENV.from_string(text)
        return _bounded(lambda: "".join(_capped(template.generate(**dict(values)))))
    except SecurityError as exc:
        raise InvalidError(f"refused by the sandbox: {exc}", code="unsafe_template") from None
    except UndefinedError as exc:
        if "unsafe" in str(exc):  # an unsafe attribute read renders as a StrictUndefined
            raise InvalidError(f"refused by the sandbox: {exc}", code="unsafe_template") from None
        raise InvalidError(str(exc), code="undefined") from None
    except (TemplateError, OverflowError, TypeError, ValueError, ArithmeticError) as exc:
        raise InvalidError(f"the template failed: {exc}", code="template_error") from None


def _capped(chunks: Any) -> Any:
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise SecurityError(f"a rendered prompt is at most {MAX_OUTPUT} characters")
        yield chunk


def _bounded(work: Callable[[], str]) -> str:
    """Run `work` counting the lines executed in template code; over `MAX_LINES`, stop it.
    (Only the template's own frames are traced line by line: the rest pays one call.)"""
    count = 0

    def lines(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
            if count > MAX_LINES:
                raise TemplateBudgetError("the template does too much work")
        return lines

    def calls(frame: FrameType, event: str, arg: Any) -> Any:
        return lines if event == "call" and frame.f_code.co_filename == "<template>" else None

    previous = sys.gettrace()
    sys.settrace(calls)
    try:
        return work()
    finally:
        sys.settrace(previous)
