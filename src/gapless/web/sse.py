"""Server-Sent Events: a thin adapter over `feed.follow`.

`id:` is the cursor, so a browser's EventSource resumes by itself with
`Last-Event-ID` (which wins over `?cursor=`). The subscription is established
before the response headers are sent, so "no cursor" means "from now".
Imports `feed`, `events`, `log`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import Request
from fastapi.responses import StreamingResponse

from gapless.events import Event
from gapless.feed import follow
from gapless.log.base import EventLog


def frame(event: Event) -> str:
    if event.cursor:
        return f"id: {event.cursor}\nevent: {event.type}\ndata: {event.data}\n\n"
    return f"event: {event.type}\ndata: {event.data}\n\n"


async def respond(
    request: Request,
    log: EventLog,
    stream: str,
    *,
    heartbeat: float,
    allowed: Callable[[], Awaitable[bool]],
) -> StreamingResponse:
    cursor = request.headers.get("last-event-id") or request.query_params.get("cursor") or None
    subscription = await log.subscribe(stream, cursor)

    async def body() -> AsyncIterator[str]:
        yield "retry: 1000\n: connected\n\n"
        async for batch in follow(subscription, heartbeat=heartbeat, allowed=allowed):
            # One write per batch: a subscriber catching up costs one send, not hundreds.
            yield "".join(map(frame, batch)) if batch else ": ping\n\n"

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
