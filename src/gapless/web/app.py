"""The ASGI app: routes, the one place errors become `{"error": {code, message}}`, the static app.

Imports `runtime`, `errors`, `web.*`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from gapless import __version__
from gapless.config import Settings
from gapless.db import ConstraintError
from gapless.errors import GaplessError
from gapless.limits import attempts_for
from gapless.runtime import Runtime, build, settle
from gapless.web import api, document, post, sse, ws
from gapless.web.answers import conflict, error, invalid, refusal
from gapless.web.deps import accounts_of
from gapless.web.guard import Guard
from gapless.web.live import Live
from gapless.web.routes import accounts
from gapless.web.routes import agents as agent_routes
from gapless.web.routes import evals as eval_routes
from gapless.web.routes import traces as trace_routes

STATIC = Path(__file__).parent / "static"
logger = logging.getLogger("gapless.web")
IMPORT_MAP = re.compile(r'<script type="importmap">(.*?)</script>', re.DOTALL)


def policy() -> str:
    """The Content-Security-Policy: nothing from another origin, no inline code but the
    page's import map (allowed by its hash), no framing."""
    scripts = "'self'"
    index = STATIC / "index.html"
    found = IMPORT_MAP.search(index.read_text()) if index.exists() else None
    if found is not None:
        digest = base64.b64encode(hashlib.sha256(found.group(1).encode()).digest()).decode()
        scripts += f" 'sha256-{digest}'"
    return (
        f"default-src 'self'; script-src {scripts}; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


def security_headers(public_url: str) -> Callable[[Scope], list[tuple[bytes, bytes]]]:
    common = [
        (b"content-security-policy", policy().encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"cross-origin-resource-policy", b"same-origin"),
    ]
    https = [*common, (b"strict-transport-security", b"max-age=31536000")]
    always_https = public_url.startswith("https://")

    def headers(scope: Scope) -> list[tuple[bytes, bytes]]:
        return https if always_https or scope.get("scheme") == "https" else common

    return headers


class Front:
    """What is served before FastAPI's stack: the event streams, SSE and WebSocket, and the
    message POST (`web.post`: the request a burst is made of).

    A stream lives for hours, and every layer it passed stays alive with it (each
    middleware's coroutine, FastAPI's exit stacks and resolved dependencies): a
    third of an idle subscriber's memory, and wrappers around every send. So the
    streams are plain ASGI endpoints, reached here; everything else goes on to
    FastAPI. They authorise exactly as the HTTP resources do, and their refusals
    have the same `{"error": ...}` shape.
    """

    def __init__(self, api: FastAPI, runtime: Runtime, live: Live) -> None:
        self.api, self.runtime, self.live = api, runtime, live

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == ws.PATH:
            await ws.endpoint(self.runtime, self.live, scope, receive, send)
        elif (chat_id := post.serves(scope)) is not None:
            await post.endpoint(self.runtime, chat_id, scope, receive, send)
        elif sse.serves(scope):
            try:
                stream = await sse.open_stream(self.runtime, scope, self.live)
            except GaplessError as exc:
                await refusal(exc)(scope, receive, send)
                return
            await stream(receive, send)
        else:
            await self.api(scope, receive, send)


class Api(FastAPI):
    """FastAPI, whose OpenAPI document also describes the streams `Front` serves, and the
    errors, security and links of every operation (`web.document`)."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            spec = super().openapi()
            spec["paths"].update(sse.OPENAPI)
            self.openapi_schema = document.complete(spec)
        return self.openapi_schema


def create_app_from_settings() -> Guard:
    """The app over a runtime built from `GAPLESS_*` settings, which it starts and closes:
    the factory each process of `gapless serve --workers N` imports."""
    return create_app(build(Settings()), manage=True)


def create_app(runtime: Runtime, *, manage: bool = False) -> Guard:
    """The app over `runtime`; with `manage`, the app starts and closes the runtime itself."""
    settings = runtime.settings
    live = Live(runtime.log, settings.max_streams)
    attempts = attempts_for(settings.events_url, settings.signin_window)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage:  # this process is `gapless serve --workers N`'s: it serves from here
            await runtime.start()
            settle()
        live.start()
        try:
            yield
        finally:
            await live.close()
            await attempts.close()
            if manage:
                await runtime.close()

    app = Api(
        title="Gapless",
        version=__version__,
        lifespan=lifespan,
        description="Chat with AI models; streamed replies never lose, repeat or "
        "reorder a chunk. The wire contract is PROTOCOL.md.",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN: /openapi.json is the document
        redoc_url=None,
        redirect_slashes=False,  # its redirects are built from the Host header
    )
    app.state.runtime = runtime
    app.state.attempts = attempts
    app.include_router(accounts.router)
    app.include_router(api.router)
    app.include_router(trace_routes.router)
    app.include_router(agent_routes.router)
    app.include_router(eval_routes.router)

    @app.exception_handler(GaplessError)
    async def gapless_error(request: Request, exc: GaplessError) -> Response:
        return refusal(exc)

    @app.exception_handler(ConstraintError)
    async def refused_by_schema(request: Request, exc: ConstraintError) -> Response:
        request_id = request.scope.get("state", {}).get("request_id", "")
        route = getattr(request.scope.get("route"), "path", "-")
        return conflict(request_id, request.method, route)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> Response:
        request_id = request.scope.get("state", {}).get("request_id", "")
        return error(500, "internal", f"internal error (request {request_id})")

    @app.exception_handler(RequestValidationError)
    async def unvalidated(request: Request, exc: RequestValidationError) -> Response:
        return invalid(exc.errors())

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed"}
        headers = None
        if exc.status_code == 405:  # every method of the path, not the first route's
            headers = {"Allow": ", ".join(sorted(allowed(app, request.scope)))}
        code = codes.get(exc.status_code, "http_error")
        return error(exc.status_code, code, str(exc.detail), headers)

    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")

    async def page() -> Response:
        index = STATIC / "index.html"
        if index.exists():
            return FileResponse(index, headers={"Cache-Control": "no-cache"})
        return Response("Gapless API is running; see /openapi.json.", media_type="text/plain")

    pages = ("/", "/login", "/chats/{chat_id}", "/generations", "/agents", "/agents/{agent_id}")
    for route in (*pages, "/settings", "/admin"):
        app.add_api_route(route, page, include_in_schema=False)

    async def invitation() -> Response:  # its own page: no app, no import map
        return FileResponse(STATIC / "invite.html", headers={"Cache-Control": "no-store"})

    app.add_api_route("/invite", invitation, include_in_schema=False)
    return Guard(
        Front(app, runtime, live),
        lambda: accounts_of(runtime),
        max_body=settings.max_body,
        body_timeout=settings.body_timeout,
        headers=security_headers(settings.public_url),
        streams=sse.serves,
    )


def allowed(app: FastAPI, scope: Scope) -> set[str]:
    """The methods some route serves at this path (asked of the router, whose routes nest)."""
    return {
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        if any(r.matches({**scope, "method": method})[0] == Match.FULL for r in app.router.routes)
    }
