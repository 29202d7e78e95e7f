"""Server-Sent Events: a thin adapter over `feed.follow`.

`id:` is the cursor, so a browser's EventSource resumes by itself with
`Last-Event-ID` (which wins over `?cursor=`). The subscription is established
before the response headers are sent, so "no cursor" means "from now".

The response is plain ASGI, not a `StreamingResponse`: that one runs each
connection in a task group with a second task and re-encodes every chunk,
which cost more CPU per delivered event and memory per idle subscriber than
the rest of the fan-out together (the benchmark's profile). Here one task
sends, and the request's own task waits for the client to leave.
Imports `feed`, `events`, `log`.
"""

from __future__ import annotations

import asyncio
import contextlib
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
        # batch. This one waits for the client to leave; a pump that ends first completes
        # the response, which ends that wait too (or cancels it, when the pump failed).
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
            await self.subscription.close()  # also when the pump never ran (closing is idempotent)
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
