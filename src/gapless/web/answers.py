"""The `{"error": {code, message}}` answers, shared by FastAPI's handlers (`web.app`) and
the endpoints served in front of it (`web.post`, the streams), so a refusal reads the same
whoever serves the request. Imports `errors`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi.responses import JSONResponse

from gapless.errors import GaplessError, RateLimitedError

logger = logging.getLogger("gapless.web")


def error(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    details: list[Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def refusal(exc: GaplessError) -> JSONResponse:
    """A `GaplessError` as the `{"error"}` answer (with `Retry-After` on 429)."""
    headers = None
    if isinstance(exc, RateLimitedError):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    return error(exc.status, exc.code, exc.message, headers, exc.details)


def invalid(problems: Iterable[Mapping[str, Any]]) -> JSONResponse:
    """A body or parameters that do not validate (pydantic's problems): 400 when the body is
    not JSON at all, else 422 naming each field and what is wrong with it."""
    problems = list(problems)
    if any(p.get("type") == "json_invalid" for p in problems):
        return error(400, "malformed_json", "the body is not valid JSON")
    text = "; ".join(
        f"{'.'.join(str(x) for x in p.get('loc', ()) if x != 'body') or 'body'}: {p.get('msg')}"
        for p in problems
    )
    return error(422, "invalid", text or "invalid request")


def conflict(request_id: str, method: str, route: str) -> JSONResponse:
    """The database refused a write (a constraint) the route should have checked first:
    409, and one log line saying which route, never the statement or its values."""
    logger.warning("request %s: the database refused a write (%s %s)", request_id, method, route)
    return error(409, "conflict", "this refers to something that does not exist, or exists")
