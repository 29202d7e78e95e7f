"""The `Runner` interface: start a reply's generation, and stop it from anywhere.

A job is a plain `async def job(reply_id, stop)`; the runner decides where it
runs. Imports nothing from gapless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

Job = Callable[[str, asyncio.Event], Awaitable[None]]


class Runner(Protocol):
    async def submit(self, reply_id: str, *, key: str | None = None) -> None:
        """Queue the generation of `reply_id`; returns at once. `key` (default the reply id)
        names this run: submitting a key that is queued or running is a no-op, so a reply
        going on after an approval is submitted under a key of its own."""
        ...

    async def stop(self, reply_id: str) -> bool:
        """Ask the generation to stop and wait until it has ended (its final event is
        published). False when no run of it was found."""
        ...

    async def close(self) -> None: ...
