"""The ASGI app: routes, the one place errors become `{"error": {code, message}}`, the static app.

Imports `runtime`, `errors`, `web.*`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from gapless import __version__
from gapless.config import Settings
from gapless.errors import GaplessError
from gapless.runtime import Runtime, build
from gapless.web import api, ws

STATIC = Path(__file__).parent / "static"
MAX_BODY = 256 * 1024


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_app_from_settings() -> FastAPI:
    """The app over a runtime built from `GAPLESS_*` settings, which it starts and closes:
    the factory each process of `gapless serve --workers N` imports."""
    return create_app(build(Settings()), manage=True)


def create_app(runtime: Runtime, *, manage: bool = False) -> FastAPI:
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

    app = FastAPI(
        title="Gapless",
        version=__version__,
        lifespan=lifespan,
        description="Chat with AI models; streamed replies never lose, repeat or "
        "reorder a chunk. The wire contract is PROTOCOL.md.",
    )
    app.state.runtime = runtime
    app.include_router(api.router)
    app.include_router(ws.router)

    @app.middleware("http")
    async def limit_body(request: Request, call_next):  # type: ignore[no-untyped-def]
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY:
            return error(413, "too_large", f"request body is over {MAX_BODY} bytes")
        return await call_next(request)

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

    for route in ("/", "/login", "/chats/{chat_id}", "/generations"):
        app.add_api_route(route, page, include_in_schema=False)
    return app
