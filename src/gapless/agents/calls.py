"""One tool call, checked and run: arguments validated against the tool's schema, a time
limit, an output cap. What a call ends with is an `Outcome` for its part; nothing a tool
does (raise, hang, flood) escapes as an exception. Imports `agents.tools`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import jsonschema

from gapless.agents.tools import Tool, ToolContext, ToolError


@dataclass(frozen=True)
class Outcome:
    status: str  # complete | failed
    output: str | None = None
    error: dict[str, str] | None = None


def failed(code: str, message: str) -> Outcome:
    return Outcome("failed", None, {"code": code, "message": message})


def check(tool: Tool | None, name: str, arguments: str) -> dict[str, Any] | Outcome:
    """The parsed arguments, or the failure the model is told of (so it can repair the call:
    an unknown tool, JSON that does not parse, input its schema refuses)."""
    if tool is None:
        return failed("unknown_tool", f"There is no tool named {name!r} here.")
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError as exc:
        return failed("invalid_arguments", f"The arguments are not JSON: {exc}")
    if not isinstance(value, dict):
        return failed("invalid_arguments", "The arguments must be a JSON object.")
    try:
        jsonschema.validate(value, tool.schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return failed("invalid_arguments", f"{where + ': ' if where else ''}{exc.message}")
    except jsonschema.SchemaError as exc:
        return failed("tool_error", f"The tool's own schema is invalid: {exc.message}")
    return value


def capped(value: Any, limit: int) -> str:
    """A tool's answer as text (JSON when not a string), cut to `limit` characters saying so."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n\n[output truncated: {len(text)} characters, the first {limit} kept]"


async def run(
    tool: Tool, arguments: dict[str, Any], context: ToolContext, seconds: float, limit: int
) -> Outcome:
    """The call, at most `seconds` long, its output at most `limit` characters."""
    try:
        async with asyncio.timeout(seconds):
            value = await tool.call(arguments, context)
    except TimeoutError:
        return failed("timeout", f"The tool did not answer within {seconds:g} seconds.")
    except ToolError as exc:
        return failed(exc.code, exc.message)
    except Exception as exc:  # a tool's bug is the model's news, never the run's end
        return failed("tool_crashed", f"{type(exc).__name__}: {exc}")
    try:
        return Outcome("complete", capped(value, limit))
    except (TypeError, ValueError) as exc:
        return failed("tool_error", f"The tool answered something that is not JSON: {exc}")
