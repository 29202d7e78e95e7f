"""`MemoryLog`: the event log in this process's memory, for one-process deployments.

Each stream is a list of events and their append times; a subscriber is an
index into it and waits on one shared `asyncio.Event` that every append
replaces, so an append costs O(1) whatever the number of subscribers.
Imports `log.base`, `events`, `stream`.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gapless import events
from gapless.errors import CursorError, FencedError
from gapless.events import Event
from gapless.log.base import BATCH, Subscription
from gapless.stream import cursor_text, parse_cursor


@dataclass(eq=False)
class _Stream:
    epoch: str
    base: int = 0  # position of the last trimmed event; events[i] is at base + i + 1
    events: list[Event] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    subscribers: int = 0

    @property
    def last(self) -> int:
        return self.base + len(self.events)

    def cursor(self, position: int) -> str:
        return cursor_text(self.epoch, position)


class MemorySubscription:
    def __init__(self, stream: _Stream, position: int | None, reason: str = "") -> None:
        self._stream = stream
        self._position = position
        self._reason = reason
        stream.subscribers += 1
        self._closed = False

    async def next(self) -> list[Event]:
        stream = self._stream
        while not self._reason:
            assert self._position is not None
            if self._position < stream.base:
                self._reason = "behind"  # trimmed past us: say so, never skip
                break
            start = self._position - stream.base
            if start < len(stream.events):
                batch = stream.events[start : start + BATCH]
                self._position += len(batch)
                return batch
            await stream.changed.wait()
        return [events.reset(self._reason)]

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._stream.subscribers -= 1


class MemoryLog:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._streams: dict[str, _Stream] = {}
        self._revoked: dict[str, float] = {}
        self._clock = clock

    def _get(self, name: str) -> _Stream:
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = _Stream(epoch=secrets.token_urlsafe(9).replace("-", "~"))
        return stream

    async def append(self, stream: str, event: Event, fence: str | None = None) -> Event:
        if fence is not None and fence in self._revoked:
            raise FencedError(f"appends for {fence} were revoked")
        s = self._get(stream)
        stored = Event(event.type, event.data, s.cursor(s.last + 1))
        s.events.append(stored)
        s.times.append(self._clock())
        changed, s.changed = s.changed, asyncio.Event()
        changed.set()
        return stored

    async def revoke(self, fence: str) -> None:
        self._revoked[fence] = self._clock()

    async def head(self, stream: str) -> str:
        s = self._get(stream)
        return s.cursor(s.last)

    async def subscribe(self, stream: str, cursor: str | None) -> Subscription:
        s = self._get(stream)
        if cursor is None:
            return MemorySubscription(s, s.last)
        try:
            parsed = parse_cursor(cursor)
        except CursorError:
            return MemorySubscription(s, None, "malformed")
        position = parsed.position[0]
        if parsed.epoch != s.epoch or parsed.position[1] != 0 or position > s.last:
            return MemorySubscription(s, None, "unknown")
        if position < s.base:
            return MemorySubscription(s, None, "expired")
        return MemorySubscription(s, position)

    async def trim(self, older_than: float, keep: Mapping[str, str]) -> None:
        for fence, when in list(self._revoked.items()):
            if when < older_than:
                del self._revoked[fence]
        for name, s in list(self._streams.items()):
            cut = 0
            while cut < len(s.times) and s.times[cut] < older_than:
                cut += 1
            floor = _position(keep.get(name), s.epoch)
            if floor is not None:
                cut = min(cut, max(0, floor - s.base))
            if cut:
                del s.events[:cut]
                del s.times[:cut]
                s.base += cut
            if not s.events and not s.subscribers and floor is None:
                del self._streams[name]

    async def close(self) -> None:
        self._streams.clear()


def _position(cursor: str | None, epoch: str) -> int | None:
    if cursor is None:
        return None
    try:
        parsed = parse_cursor(cursor)
    except CursorError:
        return None
    return parsed.position[0] if parsed.epoch == epoch else None
