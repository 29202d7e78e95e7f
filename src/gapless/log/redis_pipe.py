"""`RedisPipe`: one Redis connection that sends commands as they come and answers them in order.

Why: around each command redis-py spends more CPU than Redis spends running it (a
pooled connection taken and given back, a retry wrapper, timeouts, every argument
encoded on its own): about 200 us per append in the benchmark's profile, at 1,500
appends a second. Here the caller packs a command once (`pack`, bytes in), the
commands queued while the connection is busy writing go out in one write, and one
reader task hands the replies back in order (Redis answers one connection's
commands in the order it got them), so many appends share one round trip.
A lost connection fails every command still waiting on it with redis-py's
`ConnectionError`: those may or may not have run, so callers repeat only what is
safe to repeat. The next command connects again. Error replies (`ResponseError`)
fail only their own command. Imports nothing from gapless; `redis` for the
connection's set-up (URL, AUTH, SELECT, TLS) and its reply parser.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError


def pack(*parts: bytes) -> bytes:
    """One command in the Redis protocol (RESP), from its already-encoded parts."""
    out = [b"*%d\r\n" % len(parts)]
    out += [b"$%d\r\n%s\r\n" % (len(part), part) for part in parts]
    return b"".join(out)


class _Line:
    """One connection's traffic: what is waiting to be written, and who waits for a reply."""

    def __init__(self, connection: AbstractConnection) -> None:
        self.connection = connection
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.queued: list[bytes] = []
        self.wake = asyncio.Event()
        self.broken: BaseException | None = None
        self.tasks = [asyncio.create_task(self._write()), asyncio.create_task(self._read())]

    def send(self, command: bytes) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        self.queued.append(command)
        self.wake.set()
        return future

    async def _write(self) -> None:
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                data, self.queued = b"".join(self.queued), []
                await self.connection.send_packed_command(data, check_health=False)
        except Exception as exc:
            self.fail(exc)

    async def _read(self) -> None:
        try:
            while True:
                try:
                    reply: Any = await self.connection.read_response()
                except ResponseError as exc:
                    reply = exc  # an error reply: that command's, the connection is fine
                future = self.waiting.popleft()
                if future.done():  # its caller was cancelled
                    continue
                if isinstance(reply, ResponseError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except Exception as exc:
            self.fail(exc)

    def fail(self, exc: BaseException) -> None:
        if self.broken is not None:
            return
        self.broken = exc
        lost = RedisConnectionError(f"connection to Redis lost: {exc}")
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(lost)
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()

    async def close(self) -> None:
        self.fail(RedisConnectionError("closed"))
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.connection.disconnect(nowait=True)


class RedisPipe:
    """Commands (packed with `pack`) over one connection, pipelined; see the module's docstring."""

    def __init__(self, url: str) -> None:
        self._pool = ConnectionPool.from_url(url, decode_responses=True)
        self._line: _Line | None = None
        self._connecting = asyncio.Lock()
        self._closing: set[asyncio.Future[None]] = set()

    async def call(self, command: bytes) -> Any:
        line = self._line
        if line is None or line.broken is not None:
            line = await self._connect()
        return await line.send(command)

    async def _connect(self) -> _Line:
        async with self._connecting:
            line = self._line
            if line is None or line.broken is not None:
                if line is not None:
                    self._drop(line)
                connection = self._pool.make_connection()  # type: ignore[no-untyped-call]
                await connection.connect()  # AUTH, SELECT... as the URL says; raises if away
                line = self._line = _Line(connection)
            return line

    def _drop(self, line: _Line) -> None:
        closing = asyncio.ensure_future(line.close())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        if self._line is not None:
            await self._line.close()
            self._line = None
        await self._pool.disconnect()
