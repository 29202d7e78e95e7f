"""`RedisLog`: the event log in Redis Streams, shared by every process of a deployment.

How a log sits in Redis (a stream and a hash per log stream, cursors under an
epoch, so lost history is answered `reset`) is in `redis_layout.py`; the one
reader per process that follows streams and fans their events out to local
subscribers is `redis_reader.py`; this module holds the commands.
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
Imports `log.base`, `log.redis_layout`, `log.redis_lua`, `log.redis_pipe`,
`log.redis_reader`, `events`, `stream`, `errors`; `redis`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gapless.errors import CursorError, FencedError
from gapless.events import Event
from gapless.log import redis_lua
from gapless.log.base import BATCH, Subscription
from gapless.log.redis_layout import (
    State,
    format_id,
    judge,
    new_epoch,
    parse_id,
    stream_keys,
    trim_bound,
)
from gapless.log.redis_pipe import RedisPipe, pack
from gapless.log.redis_reader import RedisReader, RedisSubscription
from gapless.stream import Cursor, Position, parse_cursor

# Seconds a command retries a Redis it cannot reach (a restart, a failover, a dropped
# connection) before the error reaches the caller: shorter than a lease's TTL.
RETRY_FOR = 4.0
ONCE_MS = "60000"  # how long an append's token is kept for its retries
T = TypeVar("T")
logger = logging.getLogger("gapless.log")
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


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
        self._reader = RedisReader(commands, reader, prefix, ring)
        self._prefix = prefix
        self._expire_ms = str(int(expire * 1000))
        self._names = f"{prefix}names"
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
        return [*stream_keys(self._prefix, stream), self._names]

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

    async def _get_state(self, stream: str, at: Position | None = None) -> State:
        # A retry may find the epoch its lost first attempt drew: the same state.
        args = [new_epoch(), self._expire_ms, "" if at is None else format_id(at)]
        epoch, last, floor, n, seen = await self._retrying(
            "a state read", lambda: self._script(self._state, self._keys(stream), args)
        )
        return State(epoch, parse_id(last), parse_id(floor), int(n), bool(seen))

    async def append(self, stream: str, event: Event, fence: str | None = None) -> Event:
        """Appends once, even when retried after a lost reply: see `redis_lua.APPEND`."""
        token = secrets.token_hex(8)
        once = f"{self._prefix}once:{fence or token}"
        keys = [*self._keys(stream), f"{self._prefix}fence:{fence or ''}", once]
        args = [
            new_epoch(), self._expire_ms, event.type, event.data, stream, "1" if fence else "",
            token, ONCE_MS,
        ]  # fmt: skip
        stored = await self._retrying(
            "an append", lambda: self._script(self._append, keys, args)
        )
        if stored is None:
            raise FencedError(f"appends for {fence} were revoked")
        epoch, redis_id = stored
        return Event(event.type, event.data, str(Cursor(epoch, parse_id(redis_id))))

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
            return RedisSubscription(self._reader, None, (0, 0), "malformed")
        if parsed is not None and max(parsed.position) >= 2**64:  # Redis would refuse the id
            return RedisSubscription(self._reader, None, (0, 0), "unknown")
        state = await self._get_state(stream, None if parsed is None else parsed.position)
        reason = judge(parsed, state)
        if reason:
            return RedisSubscription(self._reader, None, (0, 0), reason)
        position = state.last if parsed is None else parsed.position
        return await self._reader.follow(stream, state, position)

    async def trim(self, older_than: float, keep: Mapping[str, str]) -> None:
        age = (int(older_than * 1000), 0)
        names = [name async for name in self._redis.sscan_iter(self._names, count=500)]
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in chunk:
                    keep_epoch, keep_id = trim_bound(keep.get(name), age)
                    args = [format_id(age), keep_epoch, keep_id, name]
                    await self._trim(self._keys(name), args, client=pipe)
                replies = await pipe.execute()
            for name, reply in zip(chunk, replies, strict=True):
                if reply:
                    self._reader.trimmed(name, reply[0], reply[1])

    async def close(self) -> None:
        await self._reader.close()
        await self._pipe.close()
        await self._redis.aclose()
