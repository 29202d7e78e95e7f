"""The edge of every HTTP request, before any route or stream runs: plain ASGI.

In this order, so that nothing costly happens for a request that will be refused:
1. the target: a path or query with NUL or a lone surrogate is 400;
2. a declared body over the limit is 413 (read and dropped only when under `DRAIN`);
3. `/api/*` (but signing in and accepting an invitation) authenticates now, before
   the body is used: 401 costs the sender nothing but its headers (a small declared
   body, up to `DRAIN`, is read and dropped so a client still sending sees the answer);
4. the body is read here, counting the bytes received whatever the framing
   (chunked too): 413 as soon as it passes the limit, 408 when it takes longer than
   `body_timeout`; JSON whose strings hold NUL or lone surrogates is 400. The route
   then gets the body it would have read.
A refusal that leaves a body unread closes the connection (`connection: close`).

Every response gets the security headers (CSP, nosniff, frame-ancestors, referrer
policy, HSTS over https, `no-store` on the API) and an `x-request-id`; an exception
that escapes a route is logged as one line with that id and its type and place,
never the request's text or an SQL statement's parameters, and answered 500 in the
`{"error"}` shape. The event streams' bodies go out unwrapped (their headers are
their own): a wrapper around every chunk of a stream is what `web.app.Front` exists
to avoid. Imports `accounts`, `errors`, `web.auth`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import traceback
from collections.abc import Callable
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gapless.accounts import Accounts
from gapless.errors import GaplessError
from gapless.web.auth import identify

logger = logging.getLogger("gapless.web")
DRAIN = 1024 * 1024  # bytes of a refused body read and dropped, so its sender sees the answer
PUBLIC = ("/api/session", "/api/invites")  # POSTed without credentials: signing in


def bad_text(value: str) -> bool:
    """NUL (PostgreSQL refuses it in text) or a lone surrogate (not encodable: SQLite,
    JSON encoders and every client choke on it)."""
    if "\x00" in value:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def bad_json(value: Any) -> bool:
    """Whether any string of a parsed JSON document, key or value, is `bad_text`."""
    if isinstance(value, str):
        return bad_text(value)
    if isinstance(value, dict):
        return any(bad_text(k) or bad_json(v) for k, v in value.items())
    if isinstance(value, list):
        return any(bad_json(v) for v in value)
    return False


def bad_target(scope: Scope) -> bool:
    query: bytes = scope.get("query_string", b"")
    if b"\x00" in query or b"%00" in query:
        return True
    return bad_text(scope.get("path", ""))


def needs_caller(scope: Scope) -> bool:
    path: str = scope["path"]
    if not path.startswith("/api/"):
        return False
    return not (path in PUBLIC and scope["method"] == "POST")


def declared_length(scope: Scope) -> int | None:
    """The Content-Length, or None when the body is chunked (or absent: 0)."""
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else -1
        if name == b"transfer-encoding":
            chunked = True
    return None if chunked else 0


def answer(status: int, code: str, message: str, close: bool = False) -> list[Message]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]


class BodyError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


async def read_body(receive: Receive, limit: int, seconds: float) -> bytes:
    """The whole body, refused (`BodyError`) past `limit` bytes or `seconds`."""
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(seconds):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise BodyError(400, "disconnected", "the client left")
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise BodyError(413, "too_large", f"request body is over {limit} bytes")
                parts.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(parts)
    except TimeoutError:
        raise BodyError(408, "timeout", f"the body took over {seconds:g} s") from None


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands over `body` once, then the connection's own (disconnects)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def again() -> Message:
        return pending.pop() if pending else await receive()

    return again


def is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return b"json" in value
    return False


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        accounts: Callable[[], Accounts],
        *,
        max_body: int,
        body_timeout: float,
        headers: Callable[[Scope], list[tuple[bytes, bytes]]],
        streams: Callable[[Scope], bool],
    ) -> None:
        self.app, self.accounts = app, accounts
        self.max_body, self.body_timeout = max_body, body_timeout
        self.headers, self.streams = headers, streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        started = False
        extra = [*self.headers(scope), (b"x-request-id", request_id.encode())]
        if scope["path"].startswith("/api/"):
            extra.append((b"cache-control", b"no-store"))

        async def secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present = {name.lower() for name, _ in message.get("headers", ())}
                added = [(n, v) for n, v in extra if n not in present]
                message = {**message, "headers": [*message.get("headers", ()), *added]}
            await send(message)

        try:
            refusal = await self.refuse(scope, receive)
            if isinstance(refusal, list):
                for message in refusal:
                    await secured(message)
                return
            if self.streams(scope):
                started = True  # unknowable from here: streams send unwrapped
                await self.app(scope, receive, send)
            else:
                await self.app(scope, refusal, secured)
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            logger.error(
                "request %s failed: %s at %s:%d (%s %s)",
                request_id,
                type(exc).__name__,
                where.filename.rsplit("/", 2)[-1],
                where.lineno or 0,
                scope["method"],
                getattr(scope.get("route"), "path", "-"),  # the template, never the ids
            )
            if not started:
                text = f"internal error (request {request_id})"
                for part in answer(500, "internal", text, close=True):
                    await secured(part)

    async def refuse(self, scope: Scope, receive: Receive) -> list[Message] | Receive:
        """The messages of a refusal, or the `receive` the app should read from."""
        if bad_target(scope):
            return answer(400, "bad_request", "NUL or a lone surrogate in the path or query")
        length = declared_length(scope)
        if length is not None and (length < 0 or length > self.max_body):
            close = not await self.drained(receive, length)
            return answer(413, "too_large", f"request body is over {self.max_body} bytes", close)
        if needs_caller(scope):
            try:
                caller = await identify(HTTPConnection(scope), self.accounts())
            except GaplessError as exc:
                close = length != 0 and (length is None or not await self.drained(receive, length))
                return answer(exc.status, exc.code, exc.message, close)
            scope["state"]["caller"] = caller
        if length == 0:
            return receive
        try:
            body = await read_body(receive, self.max_body, self.body_timeout)
        except BodyError as exc:
            close = exc.status != 413 or not await self.drained(receive, None)
            return answer(exc.status, exc.code, exc.message, close)
        if is_json(scope) and (b"\\u" in body or b"\x00" in body):
            try:
                parsed = json.loads(body)
            except (ValueError, RecursionError):  # nested past the parser's depth too
                parsed = None  # the route says so, in its own words
            if bad_json(parsed):
                return answer(400, "bad_request", "NUL or a lone surrogate in the body's text")
        return replay(body, receive)

    async def drained(self, receive: Receive, length: int | None) -> bool:
        """Read and drop a refused body when it is small (at most `DRAIN` more bytes, within
        `body_timeout`), so the client, still sending, reads the answer on a connection that
        stays open; a larger one is left unread and the connection closed."""
        if length is not None and not 0 <= length <= DRAIN:
            return False
        try:
            await read_body(receive, DRAIN, self.body_timeout)
        except BodyError:
            return False
        return True
