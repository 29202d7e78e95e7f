"""`RedisLog`: the event log in Redis Streams, shared by every process of a deployment.

One Redis stream per log stream (`<prefix>s:<name>`), whose entries carry, in
one field `e` (`n epoch type data`: one field parses in half the time of four),
a count `n`, the stream's epoch, the event's type and its already-encoded JSON.
A hash beside it (`<prefix>m:<name>`) holds the epoch, the count, the last id
ever appended and the trim floor (the highest id trimmed away). A cursor is
`epoch.<ms>-<seq>`, the Redis id under the epoch: a FLUSHALL, a restart without
persistence or an expiry loses the hash with the stream, so an old cursor
carries an unknown epoch and is answered `reset`, never a silent gap.

Each process reads with one connection: a single reader task blocks in one
`XREAD` over every followed stream and fills a ring of recent events per
stream, which its local subscribers share (as in `memory.py`). A subscriber
behind the ring replays from Redis with `XRANGE` until it reaches the ring.
The reader and the commands on the way of a delta (appends, state reads,
revokes) each have a connection of their own, spoken raw through
`redis_pipe.py` (concurrent commands pipelined, one write and one round trip
for all): redis-py's handling around every command cost more CPU than the
fan-out it feeds (the scaled benchmark's profile). Transactions (replays, the
reader's checks, trims) stay on redis-py's pool.
A stream and its hash expire together `expire` seconds after their last append
(`from_url`), so idle chats cost Redis nothing and their cursors reset. A
revoked fence is a key (`<prefix>fence:<id>`) that the append's script checks.
Appends, revokes and state reads ride out a short Redis outage (`retry_for`
seconds, less than a lease's TTL); an append carries a token, so its retry after
a reply lost in flight never appends twice. The scripts are in `redis_lua.py`.
Imports `log.base`, `log.redis_lua`, `log.redis_pipe`, `events`, `stream`, `errors`;
`redis` only here and in `redis_pipe.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from bisect import bisect_right
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gapless import events
from gapless.errors import CursorError, FencedError
from gapless.events import Event
from gapless.log import redis_lua
from gapless.log.base import BATCH, Subscription
from gapless.log.redis_pipe import RedisPipe, pack
from gapless.stream import Cursor, Position, parse_cursor

BLOCK_MS = 5000  # longest XREAD wait; between waits the reader re-checks epochs and floors
CHECK = 5.0  # seconds between those checks, so idle streams learn of lost history too
RETRY = 1.0  # seconds to wait after a Redis error before reading again
# Seconds a command retries a Redis it cannot reach (a restart, a failover, a dropped
# connection) before the error reaches the caller: shorter than a lease's TTL.
RETRY_FOR = 4.0
ONCE_MS = "60000"  # how long an append's token is kept for its retries
XREAD = b"XREAD", b"COUNT", str(BATCH).encode(), b"BLOCK", str(BLOCK_MS).encode(), b"STREAMS"
T = TypeVar("T")
logger = logging.getLogger("gapless.log")
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def _position(redis_id: str | None) -> Position:
    major, _, minor = (redis_id or "0-0").partition("-")
    return int(major), int(minor or 0)


def _id(position: Position) -> str:
    return f"{position[0]}-{position[1]}"


def _unpack(fields: list[str] | Mapping[str, str]) -> tuple[int, str, str, str]:
    """An entry's count, epoch, type and data (raw from XREAD, or as redis-py reads it):
    from its one field `e` (`n epoch type data`: only the data has spaces), or from
    the four fields `n`, `epoch`, `type`, `data` of entries appended by older versions."""
    if isinstance(fields, list):
        if len(fields) == 2:
            n, epoch, type_, data = fields[1].split(" ", 3)
            return int(n), epoch, type_, data
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    if "e" in fields:
        n, epoch, type_, data = fields["e"].split(" ", 3)
        return int(n), epoch, type_, data
    return int(fields.get("n", 0)), fields.get("epoch", ""), fields["type"], fields["data"]


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
        self,
        commands: Redis,
        reader: RedisPipe,
        prefix: str,
        expire: float,
        ring: int,
        retry_for: float = RETRY_FOR,
        *,
        pipe: RedisPipe,
    ) -> None:
        self._redis = commands
        self._pipe = pipe
        self._retry_for = retry_for
        self._reader = reader
        self._prefix = prefix
        self._expire_ms = str(int(expire * 1000))
        self._ring = ring
        self._names = f"{prefix}names"
        self._wake = f"{prefix}wake:{_epoch()}"
        self._follows: dict[str, _Follow] = {}
        self._task: asyncio.Task[None] | None = None
        self._append = commands.register_script(redis_lua.APPEND)
        self._state = commands.register_script(redis_lua.STATE)
        self._trim = commands.register_script(redis_lua.TRIM)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "gapless:log:",
        expire: float = 7 * 86400,
        ring: int = 4 * BATCH,
        connections: int = 8,
        retry_for: float = RETRY_FOR,
    ) -> RedisLog:
        """`expire`: seconds without an append after which a stream and its epoch are dropped
        (twice the trim retention is a good value); `ring`: recent events kept per followed
        stream; `connections`: the most command connections (the reader has its own);
        `retry_for`: seconds an append, a revoke or a state read retries an unreachable Redis."""
        pool = BlockingConnectionPool.from_url(
            url, max_connections=connections, decode_responses=True
        )
        commands, reader = Redis.from_pool(pool), RedisPipe(url)
        return cls(commands, reader, prefix, expire, ring, retry_for, pipe=RedisPipe(url))

    def _keys(self, stream: str) -> list[str]:
        return [f"{self._prefix}s:{stream}", f"{self._prefix}m:{stream}", self._names]

    async def _retrying(self, what: str, command: Callable[[], Awaitable[T]]) -> T:
        """`command()`, again with backoff while Redis is unreachable, for `retry_for` seconds.

        Only for commands that are safe to repeat: a reply lost after Redis ran the
        command looks like any other connection error.
        """
        deadline = time.monotonic() + self._retry_for
        delay = 0.02
        while True:
            try:
                return await command()
            except _UNREACHABLE as exc:
                if time.monotonic() + delay > deadline:
                    raise
                logger.warning("Redis unreachable during %s (%s); retrying", what, exc)
                await asyncio.sleep(delay)
                delay = min(2 * delay, 0.5)

    async def _get_state(self, stream: str, at: Position | None = None) -> _State:
        # A retry may find the epoch its lost first attempt drew: the same state.
        args = [_epoch(), self._expire_ms, "" if at is None else _id(at)]
        epoch, last, floor, n, seen = await self._retrying(
            "a state read", lambda: self._script(self._state, self._keys(stream), args)
        )
        return _State(epoch, _position(last), _position(floor), int(n), bool(seen))

    async def append(self, stream: str, event: Event, fence: str | None = None) -> Event:
        """Appends once, even when retried after a lost reply: see `redis_lua.APPEND`."""
        token = secrets.token_hex(8)
        once = f"{self._prefix}once:{fence or token}"
        keys = [*self._keys(stream), f"{self._prefix}fence:{fence or ''}", once]
        args = [
            _epoch(), self._expire_ms, event.type, event.data, stream, "1" if fence else "",
            token, ONCE_MS,
        ]  # fmt: skip
        stored = await self._retrying(
            "an append", lambda: self._script(self._append, keys, args)
        )
        if stored is None:
            raise FencedError(f"appends for {fence} were revoked")
        epoch, redis_id = stored
        return Event(event.type, event.data, str(Cursor(epoch, _position(redis_id))))

    async def _script(self, script: Any, keys: list[str], args: list[str]) -> Any:
        """`script` run on the pipelined connection (concurrent calls share one write and
        one round trip), loaded first when Redis lost it (a restart, SCRIPT FLUSH):
        NOSCRIPT means it did not run, so it is sent again."""
        parts = [part.encode() for part in keys + args]
        command = pack(b"EVALSHA", script.sha.encode(), str(len(keys)).encode(), *parts)
        try:
            return await self._pipe.call(command)
        except NoScriptError:
            await self._redis.script_load(script.script)
            return await self._pipe.call(command)

    async def revoke(self, fence: str) -> None:
        # Kept as long as an idle stream (`expire`), which outlives the trim retention.
        key, ttl = f"{self._prefix}fence:{fence}".encode(), self._expire_ms.encode()
        command = pack(b"SET", key, b"1", b"PX", ttl)
        await self._retrying("a revoke", lambda: self._pipe.call(command))

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
        _, _, type_, data = _unpack(fields)
        return Event(type_, data, str(Cursor(epoch, _position(redis_id))))

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
                ids = [*(_id(f.last) for f in query.values()), wake_id]
                command = pack(*XREAD, *(part.encode() for part in keys + ids))
                try:
                    for key, entries in await self._reader.call(command) or []:
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
            n, epoch, type_, data = _unpack(raw)
            if epoch != f.epoch:
                return self._break(f, "lost")
            if n != f.n + 1:  # trimmed before we read it, or Redis went back in time
                return self._break(f, "behind" if n > f.n else "lost")
            f.n += 1
            position = _position(redis_id)
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
        await self._reader.close()
        await self._pipe.close()
        await self._redis.aclose()
