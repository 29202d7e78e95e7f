"""Fixtures for the scaled-out tests: a Redis database number of the test's own, and a cluster.

The Redis server is shared (teammates' tests use database 0 with key prefixes),
so a test claims a free database number among 2..15 with a key set NX in it,
and flushes only that database (FLUSHDB, never FLUSHALL) when done.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.scale.cluster import Cluster

REDIS = "redis://127.0.0.1:6379"
CLAIM = "gapless:scale:claimed"


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    mine = uuid.uuid4().hex
    for number in range(2, 16):
        client = Redis.from_url(f"{REDIS}/{number}")
        try:
            if await client.dbsize() == 0 and await client.set(CLAIM, mine, nx=True, ex=900):
                break
        finally:
            await client.aclose()
    else:
        raise AssertionError("no free Redis database number among 2..15")
    try:
        yield f"{REDIS}/{number}"
    finally:
        client = Redis.from_url(f"{REDIS}/{number}")
        try:
            await client.flushdb()
        finally:
            await client.aclose()


@pytest.fixture
async def cluster(pg_url: str, redis_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    found = Cluster(database_url=pg_url, redis_url=redis_url, tmp=tmp_path)
    try:
        yield found
    finally:
        await found.close()
