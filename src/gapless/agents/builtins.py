"""The built-in tools: `calculator`, `current_time`, `search_chats` (and `fetch`, in `fetch.py`).

Each is a plain typed function made a tool by `functions.tool`, so the
built-ins go through the same schema and argument checks as any plugin. They
need no network. `calculator` evaluates with simpleeval (a maintained safe
evaluator that walks the AST over an allowlist of operators, names and
functions), never `eval`: a model's arithmetic is untrusted input.
Imports `agents.tools`, `agents.functions`.
"""

from __future__ import annotations

import ast
import math
import operator
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import simpleeval
from pydantic import Field

from gapless.agents.functions import FunctionTool, tool
from gapless.agents.tools import ToolContext, ToolError

MAX_EXPRESSION = 1000  # characters
MAX_BITS = 10_000  # ~3,000 decimal digits: beyond that an answer is no use to a model

Expression = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_EXPRESSION,
        description="An arithmetic expression, e.g. `(2 + 3) * 4 / 7` or `sqrt(2) ** 3`. "
        "Operators + - * / // % **; functions " + ", ".join(
            sorted(["sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "log", "log10", "log2",
                    "exp", "abs", "round", "floor", "ceil", "min", "max", "hypot", "degrees",
                    "radians"])
        ) + "; constants pi, e, tau.",
    ),
]


def calculator(expression: Expression) -> dict[str, Any]:
    """Evaluate an arithmetic expression exactly (integers stay exact) and answer its value."""
    evaluator = simpleeval.SimpleEval(operators=_OPERATORS, functions=_FUNCTIONS, names=_NAMES)
    try:
        value = evaluator.eval(expression)
    except ZeroDivisionError:
        raise ToolError("division by zero", code="division_by_zero") from None
    except (OverflowError, simpleeval.NumberTooHigh) as error:
        raise ToolError(f"the number is too large: {error}", code="too_large") from None
    except (SyntaxError, simpleeval.InvalidExpression, TypeError, ValueError, RecursionError,
            KeyError) as error:
        raise ToolError(f"not a valid expression: {error}", code="invalid_expression") from None
    return {"expression": expression, "result": _checked(value)}


def current_time(
    zone: Annotated[
        str, Field(description="An IANA time zone, e.g. `Europe/Paris` or `America/New_York`")
    ] = "UTC",
) -> dict[str, Any]:
    """The current date and time in a time zone (UTC unless one is given)."""
    try:
        tz = UTC if zone.upper() == "UTC" else ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(f"unknown time zone {zone!r}", code="unknown_zone") from None
    moment = datetime.now(tz)
    offset = moment.utcoffset()
    return {
        "zone": zone,
        "iso": moment.isoformat(timespec="seconds"),
        "date": moment.date().isoformat(),
        "time": moment.strftime("%H:%M:%S"),
        "weekday": moment.strftime("%A"),
        "utc_offset": moment.strftime("%z") if offset is not None else "+0000",
    }


async def search_chats(
    query: Annotated[
        str, Field(min_length=1, max_length=200, description="Text the message contains (any case)")
    ],
    context: ToolContext,
    limit: Annotated[int, Field(ge=1, le=50, description="How many messages at most")] = 10,
) -> list[dict[str, Any]]:
    """Search the user's own chats: the messages containing some text, newest first, each with
    its chat's id and title and a snippet around the match."""
    if context.search is None:
        raise ToolError("searching chats is not available here", code="unavailable")
    return await context.search(query, limit)


def builtins() -> dict[str, FunctionTool]:
    """The built-in tools that need no settings, by name."""
    return {t.name: t for t in (tool(calculator), tool(current_time), tool(search_chats))}


def _power(base: Any, exponent: Any) -> Any:
    """`**` that refuses an answer too big to compute quickly before computing it."""
    big = isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1 and exponent > 0
    if big and exponent * abs(base).bit_length() > 4 * MAX_BITS:  # room to divide it back down
        raise simpleeval.NumberTooHigh(f"{base} ** {exponent} has too many digits")
    return operator.pow(base, exponent)


def _checked(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError(f"the expression is not a number: {value!r}", code="invalid_expression")
    if isinstance(value, int) and value.bit_length() > MAX_BITS:
        raise ToolError("the number is too large", code="too_large")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError("the result is not a finite number", code="too_large")
    return value


def _round(number: float, digits: int = 0) -> float:
    # round(5, -10**9) would compute 10**(10**9) first.
    if not isinstance(digits, int) or abs(digits) > 100:
        raise ValueError("round: digits must be an integer between -100 and 100")
    return round(number, digits)


def _numbers(fn: Any) -> Any:
    """`fn` for numbers only: simpleeval admits string literals, and `"a" * 10**9` is not
    arithmetic (and would allocate a gigabyte)."""

    def checked(*args: Any) -> Any:
        if not all(isinstance(a, int | float) for a in args):
            raise TypeError("only numbers are allowed")
        return fn(*args)

    return checked


_OPERATORS: dict[type[ast.AST], Any] = {
    ast.Add: _numbers(operator.add),
    ast.Sub: _numbers(operator.sub),
    ast.Mult: _numbers(operator.mul),
    ast.Div: _numbers(operator.truediv),
    ast.FloorDiv: _numbers(operator.floordiv),
    ast.Mod: _numbers(operator.mod),
    ast.Pow: _numbers(_power),
    ast.USub: _numbers(operator.neg),
    ast.UAdd: _numbers(operator.pos),
}
_FUNCTIONS: dict[str, Any] = {
    "abs": _numbers(abs),
    "round": _numbers(_round),
    "min": _numbers(min),
    "max": _numbers(max),
    **{
        name: _numbers(getattr(math, name))
        for name in ("sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "log", "log10", "log2",
                     "exp", "floor", "ceil", "hypot", "degrees", "radians")
    },
}
_NAMES: dict[str, Any] = {"pi": math.pi, "e": math.e, "tau": math.tau}
