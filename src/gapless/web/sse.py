"""Server-Sent Events: a thin adapter over `feed.follow`.

`id:` is the cursor, so a browser's EventSource resumes by itself with
`Last-Event-ID` (which wins over `?cursor=`). The subscription is established
before the response headers are sent, so "no cursor" means "from now".

The response is plain ASGI, not a `StreamingResponse`: that one runs each
connection in a task group with a second task and re-encodes every chunk,
which cost more CPU per delivered event and memory per idle subscriber than
the rest of the fan-out together (the benchmark's profile). Here one task
sends, and the request's own task waits for it to end or the client to leave.
Imports `feed`, `events`, `log`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from starlette.types import Receive, Scope, Send

from gapless.events import Event
from gapless.feed import follow
from gapless.log.base import EventLog, Subscription

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
OPENING = b"retry: 1000\n: connected\n\n"
PING = b": ping\n\n"


def frame(event: Event) -> str:
    if event.cursor:
        return f"id: {event.cursor}\nevent: {event.type}\ndata: {event.data}\n\n"
    return f"event: {event.type}\ndata: {event.data}\n\n"


class EventStream(Response):
    """The `text/event-stream` of one established subscription, until it ends or the client goes."""

    media_type = "text/event-stream"

    def __init__(
        self,
        subscription: Subscription,
        heartbeat: float,
        allowed: Callable[[], Awaitable[bool]],
    ) -> None:
        super().__init__(status_code=200)
        self.subscription, self.heartbeat, self.allowed = subscription, heartbeat, allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The events go out from a task of their own: every wake-up of this one resumes
        # the whole middleware stack's coroutines (a dozen frames), once per delivered
        # batch. This one only waits for the pump to end or the client to leave.
        pump = asyncio.ensure_future(self._pump(send))
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({pump, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, gone):
                task.cancel()
            await asyncio.gather(pump, gone, return_exceptions=True)
        if not pump.cancelled():
            pump.result()  # raises what the pump raised

    async def _pump(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": OPENING, "more_body": True})
        batches = follow(self.subscription, heartbeat=self.heartbeat, allowed=self.allowed)
        async for batch in batches:
            # One write per batch: a subscriber catching up costs one send, not hundreds.
            body = "".join(map(frame, batch)).encode() if batch else PING
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def respond(
    request: Request,
    log: EventLog,
    stream: str,
    *,
    heartbeat: float,
    allowed: Callable[[], Awaitable[bool]],
) -> EventStream:
    cursor = request.headers.get("last-event-id") or request.query_params.get("cursor") or None
    return EventStream(await log.subscribe(stream, cursor), heartbeat, allowed)
