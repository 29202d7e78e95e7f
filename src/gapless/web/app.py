"""The ASGI app: routes, the one place errors become `{"error": {code, message}}`, the static app.

Imports `runtime`, `errors`, `web.*`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from gapless import __version__
from gapless.config import Settings
from gapless.errors import GaplessError
from gapless.runtime import Runtime, build
from gapless.web import api, sse, ws
from gapless.web.routes import agents as agent_routes
from gapless.web.routes import traces as trace_routes

STATIC = Path(__file__).parent / "static"
MAX_BODY = 256 * 1024


class LimitBody:
    """413 for a declared body over `MAX_BODY`. Pure ASGI on purpose: an `@app.middleware`
    would wrap every streamed SSE chunk in a memory stream and a task (a third of the
    server's CPU at 100 streams, in the benchmark's profile)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY:
                    response = error(413, "too_large", f"request body is over {MAX_BODY} bytes")
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class Front:
    """What is served before FastAPI's stack: the event streams, SSE and WebSocket.

    A stream lives for hours, and every layer it passed stays alive with it (each
    middleware's coroutine, FastAPI's exit stacks and resolved dependencies): a
    third of an idle subscriber's memory, and wrappers around every send. So the
    streams are plain ASGI endpoints, reached here; everything else goes on to
    FastAPI. They authorise exactly as the HTTP resources do, and their refusals
    have the same `{"error": ...}` shape.
    """

    def __init__(self, api: FastAPI, runtime: Runtime) -> None:
        self.api, self.runtime = api, runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == ws.PATH:
            await ws.endpoint(self.runtime, scope, receive, send)
        elif sse.serves(scope):
            try:
                stream = await sse.open_stream(self.runtime, scope)
            except GaplessError as exc:
                await error(exc.status, exc.code, exc.message)(scope, receive, send)
                return
            await stream(receive, send)
        else:
            await self.api(scope, receive, send)


class Api(FastAPI):
    """FastAPI, whose OpenAPI document also describes the streams `Front` serves."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            super().openapi()["paths"].update(sse.OPENAPI)
        assert self.openapi_schema is not None
        return self.openapi_schema


def create_app_from_settings() -> Front:
    """The app over a runtime built from `GAPLESS_*` settings, which it starts and closes:
    the factory each process of `gapless serve --workers N` imports."""
    return create_app(build(Settings()), manage=True)


def create_app(runtime: Runtime, *, manage: bool = False) -> Front:
    """The app over `runtime`; with `manage`, the app starts and closes the runtime itself."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage:
            await runtime.start()
        try:
            yield
        finally:
            if manage:
                await runtime.close()

    app = Api(
        title="Gapless",
        version=__version__,
        lifespan=lifespan,
        description="Chat with AI models; streamed replies never lose, repeat or "
        "reorder a chunk. The wire contract is PROTOCOL.md.",
    )
    app.state.runtime = runtime
    app.include_router(api.router)
    app.include_router(trace_routes.router)
    app.include_router(agent_routes.router)

    app.add_middleware(LimitBody)

    @app.exception_handler(GaplessError)
    async def gapless_error(request: Request, exc: GaplessError) -> Response:
        return error(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return error(400, "malformed_json", "the body is not valid JSON")
        text = "; ".join(
            f"{'.'.join(str(x) for x in p.get('loc', ()) if x != 'body')}: {p.get('msg')}"
            for p in problems
        )
        return error(422, "invalid", text or "invalid request")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return error(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))

    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")

    async def page() -> Response:
        index = STATIC / "index.html"
        if index.exists():
            return FileResponse(index, headers={"Cache-Control": "no-cache"})
        return Response("Gapless API is running; see /docs.", media_type="text/plain")

    for route in ("/", "/login", "/chats/{chat_id}", "/generations", "/agents", "/agents/{agent_id}"):
        app.add_api_route(route, page, include_in_schema=False)
    return Front(app, runtime)
