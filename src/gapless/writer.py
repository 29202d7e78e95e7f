"""`Flusher`: the debounced database writes of every streaming reply of this process, batched.

A reply's text goes to the log at once and to its row here, a few times a
second at most: each write stores text, seq and the log position of the last
delta it reflects, together, so a state read beside it is never ahead of its
cursor. Replies that changed are written together, one transaction per tick
of `debounce` seconds, however many replies stream: a transaction through the
async database stack costs about a millisecond of CPU, so one per reply per
tick was most of the server's CPU in the benchmark. A reply not written for a
while is touched in the same transaction instead: that is its run's
heartbeat, by which other processes know it is alive. Imports `db`, `providers`,
`stream`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from gapless.db import Engine
from gapless.db import replies as db_replies
from gapless.providers.base import Usage
from gapless.stream import Parts, flush_due

logger = logging.getLogger("gapless.writer")

Hook = Callable[[str, int], Awaitable[None]]
CHUNK = 16  # replies written per transaction


async def no_hook(reply_id: str, seq: int) -> None:
    """The default `Hook`: tests replace it to hold a write at an exact point."""
    return None


@dataclass
class Progress:
    """What the job has published so far; the flusher stores a snapshot of it."""

    parts: Parts = field(default_factory=Parts)
    seq: int = 0
    position: str = ""
    usage: Usage | None = None
    first_token_at: datetime | None = None
    flushes: int = 0


def texts(parts: Parts) -> tuple[str, str, str | None]:
    """A reply's content, thinking and parts JSON as stored (None: they follow from the texts)."""
    stored = None if parts.plain() else json.dumps(parts.json(), ensure_ascii=False)
    return parts.text("text"), parts.text("thinking"), stored


@dataclass(eq=False)
class _Reply:
    reply_id: str
    lease: str
    progress: Progress
    lost: Callable[[], None]  # called once when a write finds the lease taken
    written_seq: int = 0
    written_at: float = 0.0


class Flusher:
    """Writes every tracked reply's progress at most once per `debounce` seconds, batched.

    `debounce` 0 writes whatever changed as soon as the previous write is done.
    Writes never overtake each other (one lock), and `untrack` returns only once
    no write of that reply is in flight: the final write always comes last.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        debounce: float,
        beat: float,
        before_flush: Hook = no_hook,
    ) -> None:
        self._engine, self._debounce, self._beat = engine, debounce, beat
        self._before_flush = before_flush
        self._period = min(debounce, beat) if debounce > 0 else beat
        self._replies: dict[str, _Reply] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def track(
        self, reply_id: str, lease: str, progress: Progress, lost: Callable[[], None]
    ) -> None:
        """Start writing `reply_id` (its row was just taken with `lease`, so it is written now)."""
        loop = asyncio.get_running_loop()
        self._replies[reply_id] = _Reply(reply_id, lease, progress, lost, written_at=loop.time())
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="flusher")
        self._wake.set()

    def mark(self) -> None:
        """Something changed: with no debounce, write at once; otherwise the next tick will."""
        if self._debounce <= 0:
            self._wake.set()

    async def untrack(self, reply_id: str) -> None:
        async with self._lock:
            self._replies.pop(reply_id, None)

    async def write_now(self, reply_id: str) -> None:
        """Write this reply at once (its log lost its history: the stored position is stale)."""
        async with self._lock:
            reply = self._replies.get(reply_id)
            if reply is not None:
                await self._write([reply], [])

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._replies:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._debounce > 0:
                await asyncio.sleep(self._period)
            else:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._period):
                        await self._wake.wait()
            async with self._lock:
                now = loop.time()
                slack = self._period / 2  # ticks jitter; never two writes of a reply in one tick
                changed, idle = [], []
                for reply in self._replies.values():
                    if reply.progress.seq != reply.written_seq:
                        if flush_due(reply.written_at, now, self._debounce - slack):
                            changed.append(reply)
                    elif flush_due(reply.written_at, now, self._beat - slack):
                        idle.append(reply)
                if changed or idle:
                    await self._write(changed, idle)

    async def _write(self, changed: list[_Reply], idle: list[_Reply]) -> None:
        """A few replies per transaction, with a loop turn between: on SQLite a
        transaction runs on the loop's thread, and a hundred replies' texts at once
        held every delta back for milliseconds (the benchmark's p99)."""
        for start in range(0, max(len(changed), len(idle)), CHUNK):
            if start:
                await asyncio.sleep(0)
            await self._write_some(changed[start : start + CHUNK], idle[start : start + CHUNK])

    async def _write_some(self, changed: list[_Reply], idle: list[_Reply]) -> None:
        for reply in changed:
            await self._before_flush(reply.reply_id, reply.progress.seq)
        # One synchronous snapshot per reply: text, seq and position always agree.
        flushes = [
            db_replies.Flush(
                reply.reply_id,
                reply.lease,
                *texts(reply.progress.parts),
                reply.progress.seq,
                reply.progress.position,
            )
            for reply in changed
        ]
        touches = [(reply.reply_id, reply.lease) for reply in idle]
        started = asyncio.get_running_loop().time()
        try:
            owned = await db_replies.write_replies(self._engine, flushes, touches)
        except Exception:  # the next write, or the final one, carries the text
            logger.warning("debounced write of %d replies failed", len(flushes), exc_info=True)
            return
        for reply, flush in zip(changed, flushes, strict=True):
            if reply.reply_id in owned:
                reply.written_seq = flush.seq
                reply.progress.flushes += 1
        for reply in [*changed, *idle]:
            if reply.reply_id in owned:
                reply.written_at = started
            elif self._replies.pop(reply.reply_id, None) is not None:
                reply.lost()  # the lease was taken: stopped elsewhere, or presumed dead
