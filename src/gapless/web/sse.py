"""Server-Sent Events: a thin adapter over `feed.follow`, served as plain ASGI.

`id:` is the cursor, so a browser's EventSource resumes by itself with
`Last-Event-ID` (which wins over `?cursor=`). The subscription is established
before the response headers are sent, so "no cursor" means "from now".

Plain ASGI, in front of FastAPI (`web.app.Front` hands these paths here): a
stream lives for hours, and under FastAPI's stack it kept every middleware's
coroutine and the request's exit stacks and dependency values alive as long,
a third of an idle subscriber's memory; a `StreamingResponse` added a task
group and re-encoded every chunk. Here the request's task waits for the
client to leave, and one task pumps: its wake-ups resume three frames, not the
whole stack. Imports `feed`, `events`, `log`, `accounts`, `runtime`, `web.auth`, `web.live`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import Receive, Scope, Send

from gapless.accounts import Accounts
from gapless.errors import GaplessError, NotFoundError
from gapless.events import Event
from gapless.feed import ACCOUNT_ENDING, ENDING, Hold, follow
from gapless.log.base import Subscription, account_stream, chat_stream
from gapless.observe.delivery import label
from gapless.runtime import Runtime
from gapless.web.auth import identify
from gapless.web.live import Live

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
OPENING = b"retry: 1000\n: connected\n\n"
PING = b": ping\n\n"
CHAT_EVENTS = re.compile(r"/api/chats/([^/]+)/events")
ACCOUNT_EVENTS = "/api/events"


def frame(event: Event) -> str:
    if event.cursor:
        return f"id: {event.cursor}\nevent: {event.type}\ndata: {event.data}\n\n"
    return f"event: {event.type}\ndata: {event.data}\n\n"


def serves(scope: Scope) -> bool:
    """Whether this request is one of the two event streams."""
    if scope["type"] != "http" or scope["method"] != "GET":
        return False
    path: str = scope["path"]
    return path == ACCOUNT_EVENTS or CHAT_EVENTS.fullmatch(path) is not None


async def open_stream(runtime: Runtime, scope: Scope, live: Live) -> EventStream:
    """Authorise exactly as the HTTP resources do, then subscribe: the stream to serve.

    Raises `GaplessError` (401, 404, 429 over the user's cap of streams) when the
    caller may not follow it; nothing was sent yet, so the caller answers it. The
    subscription is held by `live`, which ends it when the caller's access ends.
    """
    connection = HTTPConnection(scope)
    accounts = Accounts(runtime.engine)
    caller = await identify(connection, accounts)
    found = CHAT_EVENTS.fullmatch(scope["path"])
    if found is not None:
        chat = await runtime.chats.chat(caller, found.group(1))
        account_id, stream = chat["account_id"], chat_stream(chat["id"])
        ending = ENDING
    else:  # the account stream; a member of several accounts names one
        named = connection.query_params.get("account_id")
        account_id = named or next(iter(sorted(caller.account_ids)), None)
        if account_id is None or not caller.sees(account_id):
            raise NotFoundError("account not found")
        stream = account_stream(account_id)
        ending = ACCOUNT_ENDING
    cursor = (
        connection.headers.get("last-event-id") or connection.query_params.get("cursor") or None
    )

    async def allowed() -> bool:
        return await accounts.still_sees(caller, account_id)

    subscription = await runtime.log.subscribe(stream, cursor)
    label(subscription, "sse")  # delivery figures by transport
    try:
        held = live.hold(caller, account_id)
    except GaplessError:
        await subscription.close()
        raise
    return EventStream(subscription, held, runtime.settings.heartbeat, allowed, ending)


class EventStream:
    """The `text/event-stream` of one established subscription, until it ends or the client goes."""

    def __init__(
        self,
        subscription: Subscription,
        held: Hold,
        heartbeat: float,
        allowed: Callable[[], Awaitable[bool]],
        ending: frozenset[str] = ENDING,
    ) -> None:
        self.subscription, self.held = subscription, held
        self.heartbeat, self.allowed, self.ending = heartbeat, allowed, ending

    async def __call__(self, receive: Receive, send: Send) -> None:
        # The events go out from a task of its own, whose wake-ups resume only its own
        # frames; this one waits for the client to leave. A pump that ends first
        # completes the response, which ends that wait too (or cancels it, on failure).
        here = asyncio.current_task()
        assert here is not None

        def ended(pump: asyncio.Future[None]) -> None:
            if not pump.cancelled() and pump.exception() is not None:
                here.cancel()

        pump = asyncio.ensure_future(self._pump(send))
        pump.add_done_callback(ended)
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        except asyncio.CancelledError:
            if not pump.done() or pump.cancelled() or here.uncancel() > 0:
                raise  # the server cancelled us (shutdown): not the pump's failure
        finally:
            pump.remove_done_callback(ended)
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            # Also when the pump never ran (closing is idempotent).
            await self.held.close()
            await self.subscription.close()
        if not pump.cancelled():
            pump.result()  # raises what the pump raised

    async def _pump(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": OPENING, "more_body": True})
        batches = follow(
            self.subscription,
            heartbeat=self.heartbeat,
            allowed=self.allowed,
            hold=self.held,
            ending=self.ending,
        )
        async for batch in batches:
            # One write per batch: a subscriber catching up costs one send, not hundreds.
            body = "".join(map(frame, batch)).encode() if batch else PING
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _operation(summary: str, description: str, parameters: list[dict[str, Any]]) -> Any:
    """The OpenAPI description of one stream (served in front of FastAPI, so described here)."""
    error: dict[str, Any] = {"content": {"application/json": {}}}
    return {
        "get": {
            "tags": ["events"],
            "summary": summary,
            "description": description,
            "parameters": [
                *parameters,
                {
                    "name": "cursor",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "Resume after this cursor; without one, from now.",
                },
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "Sent by EventSource on reconnect; wins over `cursor`.",
                },
            ],
            "responses": {
                "200": {
                    "description": "`id:` cursor, `event:` type, `data:` JSON; `: ping` "
                    "heartbeats; `reset` ends the stream (PROTOCOL.md).",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                "401": {"description": "Not signed in.", **error},
                "404": {"description": "Not found, or not yours to see.", **error},
            },
        }
    }


OPENAPI = {
    "/api/chats/{chat_id}/events": _operation(
        "Chat events",
        "The chat's ordered events (`message.*`, `chat.updated`, `chat.deleted`, `reset`).",
        [{"name": "chat_id", "in": "path", "required": True, "schema": {"type": "string"}}],
    ),
    ACCOUNT_EVENTS: _operation(
        "Account events",
        "`chat.created`, `chat.updated`, `chat.deleted` of every chat of an account, for "
        "live chat lists. A member of several accounts names one with `account_id`.",
        [{"name": "account_id", "in": "query", "required": False, "schema": {"type": "string"}}],
    ),
}
