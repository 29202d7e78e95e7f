"""Group commit: the writes asked for in one turn of the event loop, done as one.

Why: a burst of messages (a class pressing Enter together, an experiment
fanning out) arrives in one turn of the loop, and each exchange in a
transaction of its own paid its commit (on SQLite, the WAL frames of every
page it touched: the messages' table and indexes, the chat's row and index)
and the connection's turn. Asked in the same turn, they are written in one
transaction, and each caller returns once it is committed: the guarantee is
unchanged (a message is committed before its POST answers). A group that fails
as a whole (a constraint, the database gone) is done again one by one, so one
bad request never fails the others. A lone request waits one loop round more.
Imports nothing from gapless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

A = TypeVar("A")
R = TypeVar("R")
# Does a group's asks; answers each with its result, or the exception that is its own.
Many = Callable[[list[A]], Awaitable[list[R | Exception]]]


class Together(Generic[A, R]):
    """`await together(ask)`: `many([ask, ...])` for every ask made in the same loop turn."""

    def __init__(self, many: Many[A, R]) -> None:
        self._many = many
        self._waiting: list[tuple[A, asyncio.Future[R]]] = []
        self._running: set[asyncio.Task[None]] = set()

    async def __call__(self, ask: A) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((ask, future))
        if len(self._waiting) == 1:  # its first step runs after every task ready now has asked
            task = loop.create_task(self._run())
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return await future

    async def _run(self) -> None:
        waiting, self._waiting = self._waiting, []
        asks = [ask for ask, _ in waiting]
        try:
            try:
                answers = await self._many(asks)
            except Exception as exc:
                answers = [exc] if len(asks) == 1 else [await self._alone(a) for a in asks]
            for (_, future), answer in zip(waiting, answers, strict=True):
                if future.done():  # its caller was cancelled: what was written stays written
                    continue
                if isinstance(answer, Exception):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)
        finally:  # cancelled itself (the process stopping): no caller waits forever
            for _, future in waiting:
                future.cancel()

    async def _alone(self, ask: A) -> R | Exception:
        try:
            (answer,) = await self._many([ask])
        except Exception as exc:
            return exc
        return answer
