"""Dataset items from what people type or upload: pure rules, no I/O.

`item` checks one item's fields (a str input is one user message) and answers
the stored shape; `parse` reads a whole JSONL or CSV text into items, or
refuses it all with every bad line named (`bad_rows`, `details: [{line,
message}]`), so an import is never half done. Line numbers are the text's
own, 1-based (a CSV's header is line 1; a quoted cell may span lines: a row is
named by the line it starts on). Imports `errors`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from typing import Any

from gapless.errors import InvalidError, TooLargeError

ROLES = ("user", "assistant")
MAX_MESSAGES = 200
MAX_CONTENT = 100_000  # characters of one message, or of the expected output
MAX_VARIABLES = 100
MAX_VARIABLE = 50_000  # characters of a variable's value
MAX_NAME = 100  # characters of a variable's name
MAX_METADATA = 20_000  # characters of the metadata as JSON
MAX_TEXT = 250_000  # characters of an import's text (requests stop at 256 KiB anyway)
MAX_ROWS = 5_000
FIELDS = ("input", "expected", "metadata")
SHOWN = 10  # bad lines named in the message; `details` has them all


# what no column or answer can hold; the request's own text was checked at the edge, but a
# JSONL line's escapes (`\\u0000`, `\\ud800`) only become these characters here
UNSAFE = re.compile("[\x00\ud800-\udfff]")


class RowError(ValueError):
    """What is wrong with one item (becomes a 422, or a line of `bad_rows`)."""


def _messages(value: Any) -> list[dict[str, str]]:
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise RowError("input.messages is a non-empty list")
    if len(value) > MAX_MESSAGES:
        raise RowError(f"input has over {MAX_MESSAGES} messages")
    found = []
    for n, message in enumerate(value, 1):
        if not isinstance(message, Mapping) or set(message) != {"role", "content"}:
            raise RowError(f"message {n} is an object with role and content only")
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise RowError(f"message {n}: role is user or assistant")
        if not isinstance(content, str) or not content.strip():
            raise RowError(f"message {n}: content is non-empty text")
        if len(content) > MAX_CONTENT:
            raise RowError(f"message {n}: content is over {MAX_CONTENT} characters")
        found.append({"role": role, "content": content})
    if found[-1]["role"] != "user":
        raise RowError("the last message of the input is the user's")
    return found


def _variables(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RowError("input.variables is an object of text values")
    if len(value) > MAX_VARIABLES:
        raise RowError(f"input has over {MAX_VARIABLES} variables")
    for name, text in value.items():
        if not isinstance(name, str) or not name or len(name) > MAX_NAME:
            raise RowError(f"a variable's name is 1 to {MAX_NAME} characters")
        if not isinstance(text, str):
            raise RowError(f"variable {name!r} is text")
        if len(text) > MAX_VARIABLE:
            raise RowError(f"variable {name!r} is over {MAX_VARIABLE} characters")
    return dict(value)


def check_input(value: Any) -> dict[str, Any]:
    """`{messages, variables}` from a str (one user message) or such an object."""
    if isinstance(value, str):
        if not value.strip():
            raise RowError("input is empty")
        return {"messages": _messages(value), "variables": {}}
    if not isinstance(value, Mapping) or "messages" not in value:
        raise RowError("input is text or an object with messages (and variables)")
    unknown = set(value) - {"messages", "variables"}
    if unknown:
        raise RowError(f"input has unknown fields: {', '.join(sorted(map(str, unknown)))}")
    return {
        "messages": _messages(value["messages"]),
        "variables": _variables(value.get("variables")),
    }


def check_expected(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RowError("expected is text")
    if len(value) > MAX_CONTENT:
        raise RowError(f"expected is over {MAX_CONTENT} characters")
    return value


def check_metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RowError("metadata is a JSON object")
    try:
        size = len(json.dumps(value, allow_nan=False))
    except ValueError:  # Python's JSON reads NaN and Infinity; no answer could carry them
        raise RowError("metadata is JSON without NaN or Infinity") from None
    if size > MAX_METADATA:
        raise RowError(f"metadata is over {MAX_METADATA} characters as JSON")
    return dict(value)


def item(fields: Mapping[str, Any]) -> dict[str, Any]:
    """An item's stored fields (`input`, `expected`, `metadata`); `RowError` says what is
    wrong."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise RowError(f"unknown fields: {', '.join(sorted(map(str, unknown)))}")
    if "input" not in fields:
        raise RowError("input is missing")
    return {
        "input": check_input(fields["input"]),
        "expected": check_expected(fields.get("expected")),
        "metadata": check_metadata(fields.get("metadata")),
    }


def checked(fields: Mapping[str, Any]) -> dict[str, Any]:
    """`item` for one item sent by hand: its problem is a 422 `bad_item`."""
    try:
        return item(fields)
    except RowError as exc:
        raise InvalidError(str(exc), code="bad_item") from None


def _unsafe(value: Any) -> bool:
    if isinstance(value, str):
        return UNSAFE.search(value) is not None
    if isinstance(value, dict):
        return any(_unsafe(k) or _unsafe(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_unsafe(v) for v in value)
    return False


def _jsonl(text: str) -> tuple[list[tuple[int, dict[str, Any]]], list[dict[str, Any]]]:
    found, bad = [], []
    # "\n" only: `splitlines` would also cut at U+2028, which JSON allows inside a string
    for line, raw in enumerate(text.split("\n"), 1):
        if not raw.strip():
            continue  # blank lines (a trailing newline, a gap) are not rows
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            bad.append({"line": line, "message": f"not JSON: {exc.msg} (column {exc.colno})"})
            continue
        except (ValueError, RecursionError):  # a number too long, nesting too deep
            bad.append({"line": line, "message": "not JSON that can be read"})
            continue
        if not isinstance(value, dict):
            bad.append({"line": line, "message": "a line is a JSON object {input, expected?, ...}"})
            continue
        if _unsafe(value):
            bad.append({"line": line, "message": "a NUL character or a lone surrogate"})
            continue
        found.append((line, value))
    return found, bad


def _metadata_cell(cell: str) -> Any:
    if not cell.strip():
        return None
    try:
        return json.loads(cell)
    except (ValueError, RecursionError):
        raise RowError("metadata is not JSON (a JSON object is expected)") from None


def _csv(text: str) -> tuple[list[tuple[int, dict[str, Any]]], list[dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return [], [{"line": 1, "message": "the text is empty: a header row is expected"}]
    except csv.Error as exc:
        return [], [{"line": 1, "message": f"not CSV: {exc}"}]
    names = [name.strip() for name in header]
    if "input" not in names:
        return [], [{"line": 1, "message": "the header has no 'input' column"}]
    if len(set(names)) != len(names) or "" in names:
        return [], [{"line": 1, "message": "every column has a name of its own"}]
    found, bad = [], []
    start = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            bad.append({"line": start, "message": f"not CSV: {exc}"})
            break  # the reader cannot go on past a broken quote
        line, start = start, reader.line_num + 1
        if not cells or cells == [""]:
            continue
        if len(cells) != len(names):
            bad.append(
                {"line": line, "message": f"{len(cells)} fields where the header has {len(names)}"}
            )
            continue
        row = dict(zip(names, cells, strict=True))
        text, expected = row.pop("input"), row.pop("expected", "")
        try:
            metadata = _metadata_cell(row.pop("metadata", ""))
        except RowError as exc:
            bad.append({"line": line, "message": str(exc)})
            continue
        if not text.strip():
            bad.append({"line": line, "message": "input is empty"})
            continue
        # every other column is a variable; the input stays one user message
        fields = {
            "input": {"messages": text, "variables": row} if row else text,
            "expected": expected or None,  # an empty cell: nothing expected
            "metadata": metadata,
        }
        found.append((line, fields))
    return found, bad


def parse(kind: str, text: str) -> list[dict[str, Any]]:
    """Every item of a JSONL or CSV text, or `InvalidError` (`bad_rows`) naming every bad
    line in `details`; too long a text or too many rows is `TooLargeError`."""
    if kind not in ("jsonl", "csv"):
        raise InvalidError("format is jsonl or csv", code="bad_format")
    if len(text) > MAX_TEXT:
        raise TooLargeError(f"an import is at most {MAX_TEXT} characters: split it")
    rows, bad = _jsonl(text) if kind == "jsonl" else _csv(text)
    if len(rows) + len(bad) > MAX_ROWS:
        raise TooLargeError(f"an import is at most {MAX_ROWS} rows: split it", code="too_many_rows")
    items = []
    for line, fields in rows:
        try:
            items.append(item(fields))
        except RowError as exc:
            bad.append({"line": line, "message": str(exc)})
    if bad:
        bad.sort(key=lambda b: b["line"])
        first = f"line {bad[0]['line']}: {bad[0]['message']}"
        if len(bad) > 1:
            named = ", ".join(str(b["line"]) for b in bad[:SHOWN])
            more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
            first = f"{len(bad)} bad lines ({named}{more}); {first}"
        raise InvalidError(
            f"nothing imported: {first}",
            code="bad_rows",
            details=bad,
        )
    if not items:
        raise InvalidError("nothing to import: the text has no rows", code="bad_rows", details=[])
    return items
