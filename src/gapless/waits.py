"""Waiting inside a run without a task per chunk: a stop watcher for the model's stream,
and one for rare waits (a reply waiting for its path, tool calls). Imports nothing from
gapless but `providers.base` for the chunk type.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from gapless.providers.base import Chunk

ANSWERED_AT_ONCE = 0.0002  # seconds: quicker than any wait for the network or a timer


async def first_of(work: Awaitable[Any], stop: asyncio.Event) -> Any:
    """`work`'s result, or None when `stop` is set first (then `work` is cancelled).

    Two tasks per call: for rare waits only (a reply waiting for its path), never per chunk.
    """
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


async def until_stopped(chunks: AsyncIterator[Chunk], stop: asyncio.Event) -> AsyncIterator[Chunk]:
    """The provider's chunks until it ends or `stop` is set; closing it then stops its work.

    One watcher per run, not a task per chunk (the benchmark's profile): when
    `stop` is set while the job waits for the provider, the watcher cancels that
    wait, and only that. A stop that arrives while a chunk is being appended is
    seen before the next one is asked for, so an append is never cut in half.
    """
    iterator = aiter(chunks)
    job = asyncio.current_task()
    assert job is not None
    asking = interrupted = False

    def interrupt(_: object) -> None:
        nonlocal interrupted
        if asking and not interrupted:
            interrupted = True
            job.cancel()

    watcher = asyncio.ensure_future(stop.wait())
    watcher.add_done_callback(interrupt)
    try:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            asking, asked = True, loop.time()
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                if not interrupted or job.uncancel() > 0:
                    raise  # cancelled from outside too (shutdown): not ours to swallow
                interrupted = False
                return
            finally:
                asking = False
            yield chunk
            if loop.time() - asked < ANSWERED_AT_ONCE:
                # The model answered without waiting (a burst parsed from one read): give
                # the loop a turn, so subscribers get each chunk as it comes and nobody
                # starves. A model that waits (every real one, mostly) gives turns itself.
                await asyncio.sleep(0)
    finally:
        watcher.remove_done_callback(interrupt)
        watcher.cancel()
        if interrupted:  # the provider swallowed our cancellation: take it back all the same
            job.uncancel()
        with contextlib.suppress(Exception):
            await iterator.aclose()  # type: ignore[attr-defined]
