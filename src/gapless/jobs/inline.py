"""`InlineRunner`: generations as tasks of this process (the one-process default).

Stop is cooperative: it sets the run's `stop` event, so the job publishes its
final event itself after its last delta, then the runner waits for the task.
Imports `jobs.base`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gapless.jobs.base import Job

logger = logging.getLogger("gapless.jobs")


class InlineRunner:
    def __init__(self, job: Job) -> None:
        self._job = job
        self._runs: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self._keys: dict[str, set[str]] = {}  # reply id -> keys submitted while it ran

    async def submit(self, reply_id: str, *, key: str | None = None) -> None:
        key = key or reply_id
        if reply_id in self._runs:
            # Running here: the same key runs once; another (a run going on after an
            # approval, submitted while the run that paused is still finishing) runs next.
            if key != reply_id:
                self._keys.setdefault(reply_id, set()).add(key)
            return
        stop = asyncio.Event()
        task = asyncio.create_task(self._run(reply_id, stop), name=f"generate {reply_id}")
        self._runs[reply_id] = (task, stop)

    async def _run(self, reply_id: str, stop: asyncio.Event) -> None:
        try:
            await self._job(reply_id, stop)
            while self._keys.pop(reply_id, None) and not stop.is_set():
                await self._job(reply_id, stop)
        except Exception:
            logger.exception("job for %s failed", reply_id)
        finally:
            self._runs.pop(reply_id, None)
            self._keys.pop(reply_id, None)

    async def stop(self, reply_id: str) -> bool:
        run = self._runs.get(reply_id)
        if run is None:
            return False
        task, stop = run
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.shield(task)
        return True

    async def drain(self) -> None:
        """Wait until every submitted job has ended (tests, and graceful shutdown)."""
        while self._runs:
            await asyncio.gather(
                *(task for task, _ in list(self._runs.values())), return_exceptions=True
            )

    async def close(self) -> None:
        """Shut down: runs are cancelled, not stopped; the next start ends them `interrupted`."""
        tasks = [task for task, _ in self._runs.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
