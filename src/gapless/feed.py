"""`follow(stream, cursor)`: the one subscription every transport adapts.

Replays what the log holds after the cursor, then goes live, in batches; an
empty batch means "idle for a heartbeat" (the transport sends a keep-alive and
access is checked again). It ends after a `reset` (cursor unusable, subscriber
overtaken, access gone) or after `chat.deleted`. Imports `log`, `events`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from gapless import events
from gapless.events import Event
from gapless.log.base import Subscription

ENDING = frozenset({"reset", "chat.deleted"})


async def follow(
    subscription: Subscription,
    *,
    heartbeat: float,
    allowed: Callable[[], Awaitable[bool]],
) -> AsyncIterator[list[Event]]:
    """Batches of events from an established subscription (the position is already fixed)."""
    try:
        while True:
            try:
                async with asyncio.timeout(heartbeat):  # no task per batch, unlike wait_for
                    batch = await subscription.next()
            except TimeoutError:
                if not await allowed():
                    yield [events.reset("access")]
                    return
                yield []
                continue
            for index, event in enumerate(batch):
                if event.type in ENDING:
                    yield batch[: index + 1]
                    return
            yield batch
    finally:
        await subscription.close()
