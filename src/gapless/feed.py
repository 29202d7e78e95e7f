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


class _Idle:
    """The heartbeat timer of one subscription: one timer handle per period, none per batch.

    An `asyncio.timeout` around every wait cost a timer handle per batch (a fifth
    of the fan-out's CPU in the benchmark's profile). This timer fires `period`
    after the last batch (re-armed when it finds a newer one); if the follower is
    still waiting then, it cancels that wait, which `follow` turns into a
    heartbeat. Waits of a `Subscription` are cancel-safe: a cancelled `next()`
    loses nothing.
    """

    def __init__(self, period: float) -> None:
        self.period = period
        self.task = asyncio.current_task()
        self.loop = asyncio.get_running_loop()
        self.waiting = self.fired = False
        self.last = self.loop.time()
        self.handle = self.loop.call_at(self.last + period, self._fire)

    def _fire(self) -> None:
        due = self.last + self.period
        now = self.loop.time()
        if now >= due:
            if self.waiting and not self.fired and self.task is not None:
                self.fired = True
                self.task.cancel()
            self.last, due = now, now + self.period
        self.handle = self.loop.call_at(due, self._fire)

    def took(self) -> bool:
        """After a cancelled wait: True when it was this timer's (then it is taken back)."""
        if not self.fired or self.task is None:
            return False
        self.fired = False
        return self.task.uncancel() == 0

    def close(self) -> None:
        self.handle.cancel()


async def follow(
    subscription: Subscription,
    *,
    heartbeat: float,
    allowed: Callable[[], Awaitable[bool]],
) -> AsyncIterator[list[Event]]:
    """Batches of events from an established subscription (the position is already fixed)."""
    idle = _Idle(heartbeat)
    try:
        while True:
            idle.waiting = True
            try:
                batch = await subscription.next()
            except asyncio.CancelledError:
                if not idle.took():
                    raise
                if not await allowed():
                    yield [events.reset("access")]
                    return
                yield []
                continue
            finally:
                idle.waiting = False
            if idle.fired:  # the subscription swallowed the timer's cancellation
                idle.took()
            idle.last = idle.loop.time()
            for index, event in enumerate(batch):
                if event.type in ENDING:
                    yield batch[: index + 1]
                    return
            yield batch
    finally:
        idle.close()
        await subscription.close()
