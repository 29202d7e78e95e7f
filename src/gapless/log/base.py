"""The `EventLog` interface: append, head, subscribe after a cursor, trim.

A subscriber *pulls* from the log at its own pace from its own position: the
log is the buffer, so a slow subscriber costs a position, never blocks the
producer or the others. What cannot be replayed (a cursor too old, malformed,
foreign, or history lost) is answered with a `reset` event that ends the
subscription, never a silent gap. Imports `events` and `stream`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from gapless.events import Event

BATCH = 512  # most events one `next()` hands over: bounds a slow subscriber's catch-up burst


def chat_stream(chat_id: str) -> str:
    return f"chat:{chat_id}"


def account_stream(account_id: str) -> str:
    return f"account:{account_id}"


class Subscription(Protocol):
    async def next(self) -> list[Event]:
        """Wait for the events after this subscription's position and hand them over, in order.

        Never returns an empty list. A batch that ends with a `reset` event ends
        the subscription: later calls return `[reset]` again.
        """
        ...

    async def close(self) -> None: ...


class EventLog(Protocol):
    async def append(self, stream: str, event: Event, fence: str | None = None) -> Event:
        """Append `event`; return it with its cursor. Never waits for subscribers.

        With `fence` (a reply id), the append is refused with `FencedError` once
        `revoke(fence)` was called, atomically with the append: a run that was
        presumed dead or stopped elsewhere can never publish after the final event.
        """
        ...

    async def revoke(self, fence: str) -> None:
        """Refuse every later append fenced by `fence` (kept at least `retention` long)."""
        ...

    async def head(self, stream: str) -> str:
        """The cursor of the newest event (or of the empty start); nothing after it is missed."""
        ...

    async def subscribe(self, stream: str, cursor: str | None) -> Subscription:
        """Follow `stream` after `cursor`, or after its head when None.

        The position is fixed when this returns: every event appended after
        that is delivered.
        """
        ...

    async def trim(self, older_than: float, keep: Mapping[str, str]) -> None:
        """Drop events appended before `older_than` (Unix seconds), except those after
        `keep[stream]` (the oldest position an unfinished reply's row still needs)."""
        ...

    async def close(self) -> None: ...
