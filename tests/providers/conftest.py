"""Fixtures for the provider tests: the scripted wire server, and draining a stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gapless.errors import ProviderError
from gapless.providers.base import Chunk
from tests.providers.wire import Wire


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    server = Wire()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def drain(chunks: AsyncIterator[Chunk]) -> tuple[list[Chunk], ProviderError | None]:
    """Everything a stream yielded, and the error that ended it, if any."""
    seen: list[Chunk] = []
    try:
        async for item in chunks:
            seen.append(item)
    except ProviderError as error:
        return seen, error
    return seen, None
