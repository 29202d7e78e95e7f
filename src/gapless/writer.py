"""`Writer`: the debounced database writer of one streaming reply, and its heartbeat.

A reply's text goes to the log at once and to its row here, a few times a
second at most: each write stores text, seq and the log position of the last
delta it reflects, together, so a state read beside it is never ahead of its
cursor. Imports `db`, `stream`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from gapless.db import Engine
from gapless.db import chats as db
from gapless.providers.base import Usage
from gapless.stream import flush_due

logger = logging.getLogger("gapless.writer")

Hook = Callable[[str, int], Awaitable[None]]


@dataclass
class Progress:
    """What the job has published so far; the debounced writer stores a snapshot of it."""

    content: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    seq: int = 0
    position: str = ""
    usage: Usage | None = None
    first_token_at: datetime | None = None
    flushes: int = 0


class Writer:
    """The debounced database writer of one reply: at most one write per `debounce` seconds.

    Runs beside the job so a slow write never delays a delta; each write stores
    a snapshot of `Progress` (text, seq and the position of its last delta).
    When nothing was written for a while it touches the row instead: that is
    the run's heartbeat, by which other processes know it is alive. A write
    refused because the lease was taken sets `lost` and `stop`: the run ends.
    """

    def __init__(
        self,
        engine: Engine,
        reply_id: str,
        lease: str,
        progress: Progress,
        lost: asyncio.Event,
        stop: asyncio.Event,
        *,
        debounce: float,
        lease_ttl: float,
        before_flush: Hook,
    ) -> None:
        self._engine, self._reply_id, self._lease, self._progress = (
            engine,
            reply_id,
            lease,
            progress,
        )
        self._debounce, self._lease_ttl, self._before_flush = debounce, lease_ttl, before_flush
        self._lost, self._stop = lost, stop
        self._dirty = asyncio.Event()
        self._closing = asyncio.Event()
        self._lock = asyncio.Lock()  # writes never overtake each other
        self._written = 0
        self._task = asyncio.create_task(self._run())

    def mark(self) -> None:
        self._dirty.set()

    async def close(self) -> None:
        self._closing.set()
        self._dirty.set()
        with contextlib.suppress(Exception):
            await self._task

    async def write_now(self) -> None:
        await self._write()

    async def _run(self) -> None:
        last = time.monotonic()
        beat = self._lease_ttl / 3
        while True:
            try:
                await asyncio.wait_for(self._dirty.wait(), beat)
            except TimeoutError:
                await self._beat()
                continue
            if self._closing.is_set():
                return
            if not flush_due(last, time.monotonic(), self._debounce):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._closing.wait(), self._debounce - (time.monotonic() - last)
                    )
                if self._closing.is_set():
                    return  # the final write follows at once
            self._dirty.clear()
            await self._write()
            last = time.monotonic()

    async def _beat(self) -> None:
        try:
            alive = await db.touch_reply(self._engine, self._reply_id, self._lease)
        except Exception:
            logger.warning("heartbeat of %s failed", self._reply_id, exc_info=True)
            return
        if not alive:
            self._lose()

    def _lose(self) -> None:
        self._lost.set()
        self._stop.set()

    async def _write(self) -> None:
        async with self._lock:
            progress = self._progress
            if progress.seq == self._written:
                return
            await self._before_flush(self._reply_id, progress.seq)
            # One synchronous snapshot: text, seq and position always agree.
            seq, position = progress.seq, progress.position
            content, thinking = "".join(progress.content), "".join(progress.thinking)
            try:
                owned = await db.flush_reply(
                    self._engine,
                    self._reply_id,
                    self._lease,
                    content,
                    thinking,
                    seq,
                    position,
                )
            except Exception:  # the next write, or the final one, carries the text
                logger.warning("debounced write of %s failed", self._reply_id, exc_info=True)
                return
            if not owned:
                self._lose()
                return
            progress.flushes += 1
            self._written = seq
