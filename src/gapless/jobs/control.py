"""The stop channel of a queue-backed runner: ask a reply's run to stop, wherever it runs.

A job queue moves work to workers; it has no way to reach a job while it runs
(SAQ's abort is a hard cancel, which could cut an append in half). So each
queue engine carries its own control channel beside it: Redis pub/sub next to
the Redis queue, LISTEN/NOTIFY next to the PostgreSQL queue. An ask is also
kept for `KEEP` seconds, for a run that starts listening just after it.
Imports nothing from gapless.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

KEEP = 60  # seconds an ask is remembered for a run that registers after it
RETRY = 1.0  # seconds between reconnects of a lost listener

Stop = Callable[[str], None]
Ready = Callable[[], Awaitable[None]]


class Control(Protocol):
    async def ask(self, reply_id: str) -> None:
        """Tell every worker to stop `reply_id`, and remember it `KEEP` seconds, atomically."""
        ...

    async def asked(self, reply_id: str) -> bool:
        """Whether `reply_id` was asked to stop within the last `KEEP` seconds."""
        ...

    async def listen(self, stop: Stop, ready: Ready) -> None:
        """Call `stop(reply_id)` for every ask, forever, reconnecting when the channel is lost.

        `ready()` is awaited after every (re)subscription: asks made while the
        channel was down are then looked up with `asked`, so none is missed.
        """
        ...

    async def close(self) -> None: ...
