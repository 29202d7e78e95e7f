"""`follow(stream, cursor)`: the one subscription every transport adapts.

Replays what the log holds after the cursor, then goes live, in batches; an
empty batch means "idle for a heartbeat" (the transport sends a keep-alive and
access is checked again). It ends after a `reset` (cursor unusable, subscriber
overtaken, access gone) or after `chat.deleted`.

Each batch resumes as few frames as possible: this generator and the log's own
`next()`. What other layers add per batch is done here, as plain calls: the
delivery figures' counting (a subscription that offers `split()`, see
`observe.delivery.Counted`) and the end from outside when access ends (`Hold`,
which `web.live` keeps per stream). Imports `log`, `events`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from gapless import events
from gapless.events import Event
from gapless.log.base import Subscription

ENDING = frozenset({"reset", "chat.deleted"})  # a chat's stream ends with its chat
# An account's stream outlives each of its chats: only a reset ends it.
ACCOUNT_ENDING = frozenset({"reset"})
Count = Callable[[list[Event]], None]


class Hold:
    """A hand on one `follow` from outside: `end()` makes its next batch `reset(access)`.

    Ending cancels the follower's wait on the log (cancel-safe: nothing is lost)
    and `follow` takes that cancellation back, so a cancellation from anyone else
    still propagates. `close()` runs when the follow ends (`web.live.Held` then
    gives back the stream's place in its user's cap).
    """

    __slots__ = ("ended", "idle")

    def __init__(self) -> None:
        self.ended = False
        self.idle: _Idle | None = None  # the running follow's timer, while it runs

    def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        if self.idle is not None:
            self.idle.poke()

    async def close(self) -> None:
        return None


class _Idle:
    """The heartbeat timer of one subscription: one timer handle per period, none per batch.

    An `asyncio.timeout` around every wait cost a timer handle per batch (a fifth
    of the fan-out's CPU in the benchmark's profile). This timer fires `period`
    after the last batch (re-armed when it finds a newer one); if the follower is
    still waiting then, it cancels that wait, which `follow` turns into a
    heartbeat (or into the end, when its `Hold` was ended). Waits of a
    `Subscription` are cancel-safe: a cancelled `next()` loses nothing.
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
            self.poke()
            self.last, due = now, now + self.period
        self.handle = self.loop.call_at(due, self._fire)

    def poke(self) -> None:
        """Cancel the follower's wait, if it waits (once: a second poke is the same wake-up)."""
        if self.waiting and not self.fired and self.task is not None:
            self.fired = True
            self.task.cancel()

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
    hold: Hold | None = None,
    ending: frozenset[str] = ENDING,
) -> AsyncIterator[list[Event]]:
    """Batches of events from an established subscription (the position is already fixed),
    up to and including the first event whose type is in `ending`.

    Closes `subscription` (and `hold`) when it ends, however it ends.
    """
    idle = _Idle(heartbeat)
    hold = hold or Hold()
    hold.idle = idle
    split = getattr(subscription, "split", None)
    source, count = split() if split is not None else (subscription, None)
    try:
        while True:
            if hold.ended:
                yield [events.reset("access")]
                return
            idle.waiting = True
            try:
                batch = await source.next()
            except asyncio.CancelledError:
                if not idle.took():
                    raise
                if hold.ended:
                    continue  # said at the top of the loop
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
            if count is not None:
                count(batch)
            for index, event in enumerate(batch):
                if event.type in ending:
                    yield batch[: index + 1]
                    return
            yield batch
    finally:
        idle.close()
        hold.idle = None
        try:
            await hold.close()
        finally:
            await subscription.close()
