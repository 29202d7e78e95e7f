"""`RedisLog`: the event log in Redis Streams, shared by every process of a deployment.

One Redis stream per log stream (`<prefix>s:<name>`), whose entries carry the
event's type and its already-encoded JSON, plus the stream's epoch and a count
`n`. A hash beside it (`<prefix>m:<name>`) holds the epoch, the count, the last
id ever appended and the trim floor (the highest id trimmed away). A cursor is
`epoch.<ms>-<seq>`, the Redis id under the epoch: a FLUSHALL, a restart without
persistence or an expiry loses the hash with the stream, so an old cursor
carries an unknown epoch and is answered `reset`, never a silent gap.

Each process reads with one connection: a single reader task blocks in one
`XREAD` over every followed stream and fills a ring of recent events per
stream, which its local subscribers share (as in `memory.py`). A subscriber
behind the ring replays from Redis with `XRANGE` until it reaches the ring.
A stream and its hash expire together `expire` seconds after their last append
(`from_url`), so idle chats cost Redis nothing and their cursors reset. A
revoked fence is a key (`<prefix>fence:<id>`) that the append's script checks.
Imports `log.base`, `events`, `stream`, `errors`; `redis` is imported only here.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from gapless import events
from gapless.errors import CursorError, FencedError
from gapless.events import Event
from gapless.log.base import BATCH, Subscription
from gapless.stream import Cursor, Position, parse_cursor

BLOCK_MS = 5000  # longest XREAD wait; between waits the reader re-checks epochs and floors
CHECK = 5.0  # seconds between those checks, so idle streams learn of lost history too
RETRY = 1.0  # seconds to wait after a Redis error before reading again

# A stream whose entries are gone while its hash says it had some lost its history
# (or the hash was lost): draw a new epoch and start over, so old cursors reset.
_ENSURE = """
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if (not epoch) or (redis.call('HGET', KEYS[2], 'n') ~= '0'
                   and redis.call('EXISTS', KEYS[1]) == 0) then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'n', 0, 'last', '0-0', 'floor', '0-0')
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
"""
# Also whether the entry at ARGV[3] (a cursor's id) is still there: see `_judge`.
_STATE = (
    _ENSURE
    + """
local state = redis.call('HMGET', KEYS[2], 'epoch', 'last', 'floor', 'n')
state[5] = ARGV[3] ~= '' and #redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3]) or 0
return state
"""
)
# A revoked fence (KEYS[4], when ARGV[6] says there is one) refuses the append in the
# same step, so a revoked run can never publish after whoever revoked it.
_APPEND = (
    "if ARGV[6] == '1' and redis.call('EXISTS', KEYS[4]) == 1 then return false end"
    + _ENSURE
    + """
local n = redis.call('HINCRBY', KEYS[2], 'n', 1)
local id = redis.call('XADD', KEYS[1], '*',
                      'type', ARGV[3], 'data', ARGV[4], 'epoch', epoch, 'n', n)
redis.call('HSET', KEYS[2], 'last', id)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[5])
return {epoch, id}
"""
)
# The floor is the newest entry actually trimmed, recorded in the same step as the trim.
_TRIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[4]) end
  return false
end
local epoch = redis.call('HGET', KEYS[2], 'epoch')
local minid = ARGV[1]
if ARGV[2] == epoch then minid = ARGV[3] end
if minid == '0-0' then return false end
local before = redis.call('XREVRANGE', KEYS[1], '(' .. minid, '-', 'COUNT', 1)
if #before == 0 then return false end
redis.call('XTRIM', KEYS[1], 'MINID', minid)
redis.call('HSET', KEYS[2], 'floor', before[1][1])
return {epoch, before[1][1]}
"""


def _position(redis_id: str | None) -> Position:
    major, _, minor = (redis_id or "0-0").partition("-")
    return int(major), int(minor or 0)


def _id(position: Position) -> str:
    return f"{position[0]}-{position[1]}"


def _epoch() -> str:
    return secrets.token_urlsafe(9).replace("-", "~")


def _keep(cursor: str | None, age: Position) -> tuple[str, str]:
    """The keep cursor's epoch and the id trimming may reach: the entry after it, or `age`."""
    if cursor is None:
        return "", _id(age)
    try:
        parsed = parse_cursor(cursor)
    except CursorError:
        return "", _id(age)
    major, minor = parsed.position
    return parsed.epoch, _id(min(age, (major, minor + 1)))


def _judge(cursor: Cursor | None, state: _State) -> str:
    """Why `cursor` cannot be followed in `state`, or "" when it can.

    Cursors name appended entries, or the empty start, so a valid one above the
    floor is still in Redis: one that is not was lost (say, a restore from an
    older snapshot) or made up, and replaying after it could skip events.
    """
    if cursor is None:
        return ""
    if cursor.epoch != state.epoch or cursor.position > state.last:
        return "unknown"
    if cursor.position < state.floor:
        return "expired"
    return "" if state.seen or cursor.position == state.floor else "unknown"


@dataclass(frozen=True)
class _State:
    epoch: str
    last: Position
    floor: Position
    n: int
    seen: bool  # the entry at the position asked about is still in Redis


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
        self, log: RedisLog, follow: _Follow | None, position: Position, reason: str = ""
    ) -> None:
        self._log = log
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
                batch, self._reason = await self._log._replay(f, self._position)
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
            self._log._leave(self._follow)


class RedisLog:
    def __init__(
        self, commands: Redis, reader: Redis, prefix: str, expire: float, ring: int
    ) -> None:
        self._redis = commands
        self._reader = reader
        self._prefix = prefix
        self._expire_ms = str(int(expire * 1000))
        self._ring = ring
        self._names = f"{prefix}names"
        self._wake = f"{prefix}wake:{_epoch()}"
        self._follows: dict[str, _Follow] = {}
        self._task: asyncio.Task[None] | None = None
        self._append = commands.register_script(_APPEND)
        self._state = commands.register_script(_STATE)
        self._trim = commands.register_script(_TRIM)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "gapless:log:",
        expire: float = 7 * 86400,
        ring: int = 4 * BATCH,
        connections: int = 8,
    ) -> RedisLog:
        """`expire`: seconds without an append after which a stream and its epoch are dropped
        (twice the trim retention is a good value); `ring`: recent events kept per followed
        stream; `connections`: the most command connections (the reader has its own)."""
        pool = BlockingConnectionPool.from_url(
            url, max_connections=connections, decode_responses=True
        )
        reader = Redis.from_url(url, decode_responses=True, single_connection_client=True)
        return cls(Redis.from_pool(pool), reader, prefix, expire, ring)

    def _keys(self, stream: str) -> list[str]:
        return [f"{self._prefix}s:{stream}", f"{self._prefix}m:{stream}", self._names]

    async def _get_state(self, stream: str, at: Position | None = None) -> _State:
        args = [_epoch(), self._expire_ms, "" if at is None else _id(at)]
        epoch, last, floor, n, seen = await self._state(self._keys(stream), args)
        return _State(epoch, _position(last), _position(floor), int(n), bool(seen))

    async def append(self, stream: str, event: Event, fence: str | None = None) -> Event:
        keys = [*self._keys(stream), f"{self._prefix}fence:{fence or ''}"]
        args = [_epoch(), self._expire_ms, event.type, event.data, stream, "1" if fence else ""]
        stored = await self._append(keys, args)
        if stored is None:
            raise FencedError(f"appends for {fence} were revoked")
        epoch, redis_id = stored
        return replace(event, cursor=str(Cursor(epoch, _position(redis_id))))

    async def revoke(self, fence: str) -> None:
        # Kept as long as an idle stream (`expire`), which outlives the trim retention.
        await self._redis.set(f"{self._prefix}fence:{fence}", "1", px=int(self._expire_ms))

    async def head(self, stream: str) -> str:
        state = await self._get_state(stream)
        return str(Cursor(state.epoch, state.last))

    async def subscribe(self, stream: str, cursor: str | None) -> Subscription:
        try:
            parsed = None if cursor is None else parse_cursor(cursor)
        except CursorError:
            return RedisSubscription(self, None, (0, 0), "malformed")
        if parsed is not None and max(parsed.position) >= 2**64:  # Redis would refuse the id
            return RedisSubscription(self, None, (0, 0), "unknown")
        state = await self._get_state(stream, None if parsed is None else parsed.position)
        reason = _judge(parsed, state)
        if reason:
            return RedisSubscription(self, None, (0, 0), reason)
        position = state.last if parsed is None else parsed.position
        follow, new = self._join(stream, state)
        sub = RedisSubscription(self, follow, position)
        if new:
            try:  # an XREAD already blocked without this stream returns when the wake key changes
                await self._redis.xadd(self._wake, {"x": "1"}, maxlen=1)
            except BaseException:
                await sub.close()
                raise
        return sub

    def _join(self, stream: str, state: _State) -> tuple[_Follow, bool]:
        """The follow of `stream` with one more subscriber, and whether it is new."""
        f = self._follows.get(stream)
        if f is not None and f.epoch != state.epoch:
            # Redis moved to another history since this follow began (or, rarely, this
            # state is the older one): either way reset rather than risk mixing them.
            self._break(f, "lost")
            f = None
        new = f is None
        if f is None:
            key = self._keys(stream)[0]
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
            pipe.hmget(self._keys(f.name)[1], ["epoch", "floor"])
            pipe.xrange(f.key, min=f"({_id(after)}", max="+", count=BATCH)
            (epoch, floor), entries = await pipe.execute()
        if epoch == f.epoch and _position(floor) > after:
            return [], "behind"
        if epoch != f.epoch or not entries:  # the ring's start was appended: gone means lost
            return [], "lost"
        return [self._event(f.epoch, redis_id, data) for redis_id, data in entries], ""

    def _event(self, epoch: str, redis_id: str, fields: Mapping[str, str]) -> Event:
        return Event(fields["type"], fields["data"], str(Cursor(epoch, _position(redis_id))))

    async def _read(self) -> None:
        """The process's one reader: a blocking XREAD over every followed stream."""
        wake_id, checked = "0-0", time.monotonic()
        try:
            while True:
                query = {f.key: f for f in self._follows.values()}
                ids: dict[Any, Any] = {key: _id(f.last) for key, f in query.items()}
                ids[self._wake] = wake_id
                try:
                    reply = await self._reader.xread(ids, count=BATCH, block=BLOCK_MS)
                    for key, entries in reply or []:
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

    def _take(self, f: _Follow, entries: list[tuple[str, dict[str, str]]]) -> None:
        for redis_id, fields in entries:
            if fields.get("epoch") != f.epoch:
                return self._break(f, "lost")
            n = int(fields.get("n", 0))
            if n != f.n + 1:  # trimmed before we read it, or Redis went back in time
                return self._break(f, "behind" if n > f.n else "lost")
            f.n += 1
            f.ids.append(_position(redis_id))
            f.events.append(self._event(f.epoch, redis_id, fields))
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
                pipe.hmget(self._keys(f.name)[1], ["epoch", "floor"])
            replies = await pipe.execute()
        for f, (epoch, floor) in zip(follows, replies, strict=True):
            if epoch != f.epoch:
                self._break(f, "lost")
            else:
                f.floor = max(f.floor, _position(floor))

    async def trim(self, older_than: float, keep: Mapping[str, str]) -> None:
        age = (int(older_than * 1000), 0)
        names = [name async for name in self._redis.sscan_iter(self._names, count=500)]
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in chunk:
                    keep_epoch, keep_id = _keep(keep.get(name), age)
                    args = [_id(age), keep_epoch, keep_id, name]
                    await self._trim(self._keys(name), args, client=pipe)
                replies = await pipe.execute()
            for name, reply in zip(chunk, replies, strict=True):
                f = self._follows.get(name)
                if reply and f is not None and f.epoch == reply[0]:
                    f.floor = max(f.floor, _position(reply[1]))  # tell lagging locals now

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(self._wake)
        await self._reader.aclose()
        await self._redis.aclose()
