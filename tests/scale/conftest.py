"""Fixtures for the scaled-out tests: a Redis database number of the test's own, and a cluster
whose job queue is in Redis (`cluster`) or, for the tests that exercise the queue's own code
(delivery, stop, shutdown, crashes), in each engine (`any_queue_cluster`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.scale.cluster import Cluster, claimed_redis


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    async with claimed_redis() as url:
        yield url


@pytest.fixture
async def cluster(pg_url: str, redis_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    found = Cluster(database_url=pg_url, redis_url=redis_url, tmp=tmp_path)
    try:
        yield found
    finally:
        await found.close()


@pytest.fixture(params=["redis-queue", "postgresql-queue"])
async def any_queue_cluster(
    request: pytest.FixtureRequest, pg_url: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    """A cluster with the queue in Redis, then one with it in the PostgreSQL database."""
    queue_url = pg_url if request.param == "postgresql-queue" else ""
    found = Cluster(database_url=pg_url, redis_url=redis_url, tmp=tmp_path, queue_url=queue_url)
    try:
        yield found
    finally:
        await found.close()
