"""`RedisReader`: a process's one reader of the Redis log, and the fan-out to its subscribers.

A single reader task blocks in one `XREAD` over every followed stream and fills
a ring of recent events per stream, which the process's local subscribers
(`RedisSubscription`) share (as in `memory.py`). A subscriber behind the ring
replays from Redis with `XRANGE` until it reaches the ring. Every few seconds the
reader also checks each followed stream's hash, so idle streams learn of lost
history and of floors trimmed by other processes. Apart from `redis.py` so that
the commands of `RedisLog` and this follower each fit in one reading.
Imports `log.base`, `log.redis_layout`, `log.redis_pipe`, `events`, `stream`; `redis`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gapless import events
from gapless.events import Event
from gapless.log.base import BATCH
from gapless.log.redis_layout import State, format_id, new_epoch, parse_id, stream_keys, unpack
from gapless.log.redis_pipe import RedisPipe, pack
from gapless.stream import Cursor, Position, parse_cursor

BLOCK_MS = 5000  # longest XREAD wait; between waits the reader re-checks epochs and floors
CHECK = 5.0  # seconds between those checks, so idle streams learn of lost history too
RETRY = 1.0  # seconds to wait after a Redis error before reading again
XREAD = b"XREAD", b"COUNT", str(BATCH).encode(), b"BLOCK", str(BLOCK_MS).encode(), b"STREAMS"


@dataclass(eq=False)
class _Follow:
    """What this process has read of one stream: the ring holds the entries after `start`."""

    name: str
    key: str
    epoch: str
    start: Position
    n: int
    floor: Position
    ids: list[Position] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    subscribers: int = 0
    reason: str = ""  # set when its history broke: every subscriber is reset

    @property
    def last(self) -> Position:
        return self.ids[-1] if self.ids else self.start

    def wake(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class RedisSubscription:
    def __init__(
        self, reader: RedisReader, follow: _Follow | None, position: Position, reason: str = ""
    ) -> None:
        self._reader = reader
        self._follow = follow
        self._position = position
        self._reason = reason
        self._closed = follow is None

    async def next(self) -> list[Event]:
        while not self._reason:
            f = self._follow
            assert f is not None
            if f.reason or self._position < f.floor:  # trimmed past us: say so, never skip
                self._reason = f.reason or "behind"
            elif self._position < f.start:  # older than the ring: replay from Redis
                batch, self._reason = await self._reader._replay(f, self._position)
                if batch:
                    self._position = parse_cursor(batch[-1].cursor).position
                    return batch
            else:  # ids are shared by Redis and the ring, so joining it by id skips nothing
                i = bisect_right(f.ids, self._position)
                if i < len(f.ids):
                    batch = f.events[i : i + BATCH]
                    self._position = f.ids[i + len(batch) - 1]
                    return batch
                await f.changed.wait()
        return [events.reset(self._reason)]

    async def close(self) -> None:
        if not self._closed and self._follow is not None:
            self._closed = True
            self._reader._leave(self._follow)


class RedisReader:
    """`commands`: redis-py's pool, for transactions (replays, checks) and the wake key;
    `pipe`: the reader's own raw connection; `ring`: recent events kept per stream."""

    def __init__(self, commands: Redis, pipe: RedisPipe, prefix: str, ring: int) -> None:
        self._redis = commands
        self._pipe = pipe
        self._prefix = prefix
        self._ring = ring
        self._wake = f"{prefix}wake:{new_epoch()}"
        self._follows: dict[str, _Follow] = {}
        self._task: asyncio.Task[None] | None = None

    async def follow(self, stream: str, state: State, position: Position) -> RedisSubscription:
        """A subscription to `stream` after `position`, which `state` says can be followed."""
        follow, new = self._join(stream, state)
        sub = RedisSubscription(self, follow, position)
        if new:
            try:  # an XREAD already blocked without this stream returns when the wake key changes
                await self._redis.xadd(self._wake, {"x": "1"}, maxlen=1)
            except BaseException:
                await sub.close()
                raise
        return sub

    def trimmed(self, stream: str, epoch: str, floor: str) -> None:
        """Raise the floor of a followed `stream` to what a trim just cut in `epoch`."""
        f = self._follows.get(stream)
        if f is not None and f.epoch == epoch:
            f.floor = max(f.floor, parse_id(floor))  # tell lagging locals now

    def _join(self, stream: str, state: State) -> tuple[_Follow, bool]:
        """The follow of `stream` with one more subscriber, and whether it is new."""
        f = self._follows.get(stream)
        if f is not None and f.epoch != state.epoch:
            # Redis moved to another history since this follow began (or, rarely, this
            # state is the older one): either way reset rather than risk mixing them.
            self._break(f, "lost")
            f = None
        new = f is None
        if f is None:
            key = stream_keys(self._prefix, stream)[0]
            f = _Follow(stream, key, state.epoch, start=state.last, n=state.n, floor=state.floor)
            self._follows[stream] = f
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._read())
        f.floor = max(f.floor, state.floor)
        f.subscribers += 1
        return f, new

    def _leave(self, f: _Follow) -> None:
        f.subscribers -= 1
        if not f.subscribers and self._follows.get(f.name) is f:
            del self._follows[f.name]  # the reader drops it from its next XREAD

    def _break(self, f: _Follow, reason: str) -> None:
        f.reason = reason
        if self._follows.get(f.name) is f:
            del self._follows[f.name]
        f.wake()

    async def _replay(self, f: _Follow, after: Position) -> tuple[list[Event], str]:
        # One transaction: the floor and epoch read describe exactly the entries read.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hmget(stream_keys(self._prefix, f.name)[1], ["epoch", "floor"])
            pipe.xrange(f.key, min=f"({format_id(after)}", max="+", count=BATCH)
            (epoch, floor), entries = await pipe.execute()
        if epoch == f.epoch and parse_id(floor) > after:
            return [], "behind"
        if epoch != f.epoch or not entries:  # the ring's start was appended: gone means lost
            return [], "lost"
        return [self._event(f.epoch, redis_id, data) for redis_id, data in entries], ""

    def _event(self, epoch: str, redis_id: str, fields: Mapping[str, str]) -> Event:
        _, _, type_, data = unpack(fields)
        return Event(type_, data, str(Cursor(epoch, parse_id(redis_id))))

    async def _read(self) -> None:
        """The process's one reader: a blocking XREAD over every followed stream.

        Sent and parsed raw (`redis_pipe.py`): under load it runs about once per
        append, and redis-py's per-argument encoding and reply conversion of an
        XREAD over every followed stream cost more than the entries it returns."""
        wake_id, checked = "0-0", time.monotonic()
        try:
            while True:
                query = {f.key: f for f in self._follows.values()}
                keys = [*query, self._wake]
                ids = [*(format_id(f.last) for f in query.values()), wake_id]
                command = pack(*XREAD, *(part.encode() for part in keys + ids))
                try:
                    for key, entries in await self._pipe.call(command) or []:
                        if key == self._wake:
                            wake_id = entries[-1][0]
                        elif self._follows.get(query[key].name) is query[key]:
                            self._take(query[key], entries)
                    if time.monotonic() - checked > CHECK:
                        await self._check()
                        checked = time.monotonic()
                except (RedisError, OSError):
                    await asyncio.sleep(RETRY)  # Redis away: retry; epochs tell what was lost
        finally:
            for f in list(self._follows.values()):
                self._break(f, "closed")  # nobody will feed them: end, never hang

    def _take(self, f: _Follow, entries: list[list[Any]]) -> None:
        for redis_id, raw in entries:
            n, epoch, type_, data = unpack(raw)
            if epoch != f.epoch:
                return self._break(f, "lost")
            if n != f.n + 1:  # trimmed before we read it, or Redis went back in time
                return self._break(f, "behind" if n > f.n else "lost")
            f.n += 1
            position = parse_id(redis_id)
            f.ids.append(position)
            f.events.append(Event(type_, data, str(Cursor(epoch, position))))
        if len(f.ids) > 2 * self._ring:  # drop in chunks: amortised O(1) per event
            cut = len(f.ids) - self._ring
            f.start = f.ids[cut - 1]
            del f.ids[:cut], f.events[:cut]
        f.wake()

    async def _check(self) -> None:
        """Reset followers whose history Redis lost; learn floors trimmed by other processes."""
        follows = list(self._follows.values())
        async with self._redis.pipeline(transaction=False) as pipe:
            for f in follows:
                pipe.hmget(stream_keys(self._prefix, f.name)[1], ["epoch", "floor"])
            replies = await pipe.execute()
        for f, (epoch, floor) in zip(follows, replies, strict=True):
            if epoch != f.epoch:
                self._break(f, "lost")
            else:
                f.floor = max(f.floor, parse_id(floor))

    async def close(self) -> None:
        """Stops the reader task (its followers end `closed`), then drops the wake key."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(self._wake)
        await self._pipe.close()
