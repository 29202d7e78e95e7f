"""Posting a message, served in front of FastAPI's stack (`web.app.Front`).

A burst of messages (a class pressing Enter together, an experiment fanning
out) queues behind each POST's server time, so this one request skips what the
others pay for: routing over every registered route, FastAPI's middleware, exit
stacks and dependency solving. What it does is exactly the route's
(`web.api.post_message`, which stays registered so the OpenAPI document
describes it): `web.guard` has already authenticated the caller and read the
body; CSRF, then the body's validation against the same model, then
`Chats.post`; its refusals are the app's (`web.answers`). Imports `runtime`,
`errors`, `web.*`.
"""

from __future__ import annotations

import json
import re

from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.requests import HTTPConnection
from starlette.types import Receive, Scope, Send

from gapless.db import ConstraintError
from gapless.errors import GaplessError
from gapless.runtime import Runtime
from gapless.web.answers import conflict, invalid, refusal
from gapless.web.api import NewMessage, given
from gapless.web.auth import check_csrf

ROUTE = "/api/chats/{chat_id}/messages"  # as FastAPI's route names it (logs, never the ids)
PATH = re.compile(r"/api/chats/([^/]+)/messages")
JSON_TYPE = re.compile(r"application/(?:[^;\s]+\+)?json\s*(?:;.*)?", re.IGNORECASE)


def serves(scope: Scope) -> str | None:
    """The chat's id when this request posts a message (with its caller known), else None."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    found = PATH.fullmatch(scope["path"])
    if found is None or "caller" not in scope.get("state", {}):
        return None
    return found.group(1)


async def endpoint(
    runtime: Runtime, chat_id: str, scope: Scope, receive: Receive, send: Send
) -> None:
    answer = await answered(runtime, chat_id, scope, receive)
    await answer(scope, receive, send)


async def answered(runtime: Runtime, chat_id: str, scope: Scope, receive: Receive) -> Response:
    connection = HTTPConnection(scope)
    caller = scope["state"]["caller"]
    try:
        check_csrf(connection, caller)
        body = parse(connection.headers.get("content-type"), await read(receive))
        exchange = await runtime.chats.post(caller, chat_id, given(body))
    except ValidationError as exc:
        return invalid(exc.errors(include_url=False))
    except GaplessError as exc:
        return refusal(exc)
    except ConstraintError:
        return conflict(scope["state"].get("request_id", ""), "POST", ROUTE)
    return JSONResponse(exchange, status_code=201)


async def read(receive: Receive) -> bytes:
    """The body `web.guard` read (and hands over once)."""
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def parse(content_type: str | None, body: bytes) -> NewMessage:
    """The body as FastAPI reads it: JSON when the type says JSON or says nothing, else the
    bytes themselves (which no model accepts); none at all is a missing body."""
    if not body:
        raise ValidationError.from_exception_data(
            "NewMessage", [{"type": "missing", "loc": ("body",), "input": None}]
        )
    if content_type is None or JSON_TYPE.fullmatch(content_type):
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError) as exc:  # nested past the parser's depth too
            problem = {"type": "json_invalid", "loc": ("body",), "input": body}
            raise ValidationError.from_exception_data(
                "NewMessage", [{**problem, "ctx": {"error": str(exc)}}]  # type: ignore[typeddict-item]
            ) from None
        return NewMessage.model_validate(parsed)
    return NewMessage.model_validate(body)
