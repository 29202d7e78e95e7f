"""Engines for the contract suites: every implementation of an interface runs the same tests.

Add an engine by adding a factory to `LOG_ENGINES`; engines whose server is not
reachable fail loudly (CI starts them), they are never skipped silently.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gapless.log.base import EventLog
from gapless.log.memory import MemoryLog


async def _memory() -> EventLog:
    return MemoryLog()


LOG_ENGINES: dict[str, Callable[[], Awaitable[EventLog]]] = {"memory": _memory}

try:  # the Redis engine joins the suite when its module exists
    from tests.contract.redis_engine import redis_log

    LOG_ENGINES["redis"] = redis_log
except ImportError:
    pass


@pytest.fixture(params=sorted(LOG_ENGINES))
async def log(request: pytest.FixtureRequest) -> AsyncIterator[EventLog]:
    engine = await LOG_ENGINES[request.param]()
    try:
        yield engine
    finally:
        await engine.close()
