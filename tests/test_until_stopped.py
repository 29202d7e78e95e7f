"""`waits.until_stopped`: a stop interrupts the wait for the model, never the work on a chunk.

The provider is a plain async generator held at gates (`asyncio.Event`); the
interleavings are forced, nothing sleeps hoping for timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gapless.providers.base import Chunk, Text
from gapless.waits import until_stopped


class Model:
    """Yields "a", then waits at `hold` before "b"; records how its stream ended."""

    def __init__(self, swallow: bool = False) -> None:
        self.hold = asyncio.Event()
        self.waiting = asyncio.Event()
        self.ended = ""
        self.swallow = swallow

    async def stream(self) -> AsyncIterator[Chunk]:
        try:
            yield Text("a")
            self.waiting.set()
            try:
                await self.hold.wait()
            except asyncio.CancelledError:
                self.ended = "cancelled"
                if not self.swallow:
                    raise
            yield Text("b")
            self.ended = "done"
        except GeneratorExit:
            self.ended = self.ended or "closed"
            raise


async def stopped_while_waiting(model: Model) -> tuple[list[str], int]:
    """Follow `model` until a stop set while it waits; what the job saw, and how
    cancelled the job's task still is afterwards (0: it goes on normally)."""
    stop = asyncio.Event()
    seen: list[str] = []

    async def job() -> int:
        async for chunk in until_stopped(model.stream(), stop):
            assert isinstance(chunk, Text)
            seen.append(chunk.text)
        await asyncio.sleep(0)  # the job goes on after the stream: it is not cancelled
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    task = asyncio.create_task(job())
    await model.waiting.wait()
    stop.set()
    return seen, await asyncio.wait_for(task, 5)


async def test_a_stop_while_waiting_for_the_model_ends_the_stream_and_its_work() -> None:
    model = Model()
    assert await stopped_while_waiting(model) == (["a"], 0)
    assert model.ended == "cancelled"


async def test_a_stop_while_a_chunk_is_handled_lets_that_work_finish_and_asks_no_more() -> None:
    model, stop = Model(), asyncio.Event()
    handling, release = asyncio.Event(), asyncio.Event()
    handled: list[str] = []

    async def job() -> None:
        async for chunk in until_stopped(model.stream(), stop):
            assert isinstance(chunk, Text)
            handling.set()
            await release.wait()  # an append in flight: a stop must not cut it
            handled.append(chunk.text)

    task = asyncio.create_task(job())
    await handling.wait()
    stop.set()
    for _ in range(5):  # let the stop watcher run while the chunk is being handled
        await asyncio.sleep(0)
    release.set()
    await asyncio.wait_for(task, 5)
    assert handled == ["a"]
    assert model.ended == "closed"  # never asked for "b": closed at its first yield
    assert not model.waiting.is_set()


async def test_cancelling_the_job_from_outside_still_cancels_it() -> None:
    model, stop = Model(), asyncio.Event()

    async def job() -> None:
        async for _ in until_stopped(model.stream(), stop):
            pass

    task = asyncio.create_task(job())
    await model.waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_model_that_swallows_the_cancellation_leaves_the_job_uncancelled() -> None:
    model = Model(swallow=True)
    seen, cancelling = await stopped_while_waiting(model)
    assert cancelling == 0
    assert seen == ["a", "b"]  # it went on to yield "b"; nothing more was asked
    assert model.ended == "cancelled"


async def test_a_model_that_ends_by_itself_is_followed_to_its_end() -> None:
    model, stop = Model(), asyncio.Event()
    model.hold.set()
    seen = [chunk.text async for chunk in until_stopped(model.stream(), stop)]  # type: ignore[union-attr]
    assert seen == ["a", "b"]
    assert model.ended == "done"
