"""Outages of the engines themselves, mid-stream: Redis restarted empty, PostgreSQL refusing
connections for a few seconds, or for longer than a run's final write can wait.

Clients retry while a service is down, as a browser would (`patient`), and still end
showing the database's final text byte for byte.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from tests.scale.cluster import Cluster, free_port
from tests.scale.test_faults import (
    Watchers,
    check_clients,
    check_model_output,
    send,
    seq_shown,
    shown,
    start_chat,
)

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


class PrivateRedis:
    """A redis-server of the test's own (no persistence), so it can be killed and restarted."""

    def __init__(self, directory: Path) -> None:
        self.port, self.directory = free_port(), directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.popen = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"],
                             capture_output=True).stdout.strip() != b"PONG":
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.popen is not None:
            self.popen.kill()
            self.popen.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@asynccontextmanager
async def database_down(database_url: str) -> AsyncIterator[None]:
    """The database refuses new connections and drops the ones it had, until the block ends."""
    name = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        try:
            yield
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        await admin.close()


async def test_redis_restarted_empty_mid_stream_resets_clients_and_they_converge(
    pg_url: str, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    cluster = Cluster(database_url=pg_url, redis_url=private_redis.url, tmp=tmp_path)
    try:
        a, b = await cluster.api(), await cluster.api()
        await cluster.worker()
        async with cluster.client(a) as http:
            chat_id = await start_chat(http)
            watchers = Watchers(cluster, a, b, chat_id, patient=True)
            await watchers.load()
            reply_id = await send(http, chat_id)
        watchers.follow(reply_id)
        await shown(watchers.sse, reply_id, 10)
        private_redis.kill()
        private_redis.start()  # empty: the log, the queue and the fences are gone
        await watchers.done(60)
        stored = await cluster.message(reply_id)
        assert stored["status"] in ("complete", "failed")  # failed: it could not publish
        check_model_output(stored)
        check_clients(watchers.tabs, reply_id, stored)
        # The whole set works on the restarted Redis: the next reply streams in full.
        async with cluster.client(b) as http:
            later = Watchers(cluster, b, a, chat_id, patient=True)
            await later.load()
            next_id = await send(http, chat_id)
        later.follow(next_id)
        await later.done(60)
        stored = await cluster.message(next_id)
        assert stored["status"] == "complete"
        check_model_output(stored)
        check_clients(later.tabs, next_id, stored)
    finally:
        await cluster.close()


async def test_a_database_unreachable_for_seconds_mid_stream_loses_nothing(
    cluster: Cluster,
) -> None:
    cluster.settings["GAPLESS_LEASE_TTL"] = "6"  # the outage (3 s) is shorter than the lease
    a, b = await cluster.api(), await cluster.api()
    await cluster.worker()
    async with cluster.client(a) as http:
        chat_id = await start_chat(http)
        watchers = Watchers(cluster, a, b, chat_id, patient=True)
        await watchers.load()
        reply_id = await send(http, chat_id)
    watchers.follow(reply_id)
    await shown(watchers.sse, reply_id, 10)
    async with database_down(cluster.database_url):
        down_at = seq_shown(watchers.sse, reply_id)
        await shown(watchers.sse, reply_id, down_at + 20)  # deltas flow without the database
        await asyncio.sleep(1.0)  # and stay down a little longer: seconds in all
    await watchers.done(60)
    stored = await cluster.message(reply_id)
    assert stored["status"] == "complete"
    check_model_output(stored)
    check_clients(watchers.tabs, reply_id, stored)


async def test_a_database_down_past_the_final_write_ends_the_reply_clearly_failed(
    cluster: Cluster,
) -> None:
    a, b = await cluster.api(), await cluster.api()
    await cluster.worker()
    async with cluster.client(a) as http:
        chat_id = await start_chat(http)
        watchers = Watchers(cluster, a, b, chat_id, patient=True)
        await watchers.load()
        reply_id = await send(http, chat_id)
    watchers.follow(reply_id)
    await shown(watchers.sse, reply_id, 10)
    async with database_down(cluster.database_url):
        await asyncio.sleep(14.0)  # the model ends; its final write gives up (about 7 s)
    await watchers.done(60)
    stored = await cluster.message(reply_id)
    assert stored["status"] == "failed" and stored["error"]["code"] == "interrupted"
    check_model_output(stored)  # the text it published is kept, though its run gave up
    check_clients(watchers.tabs, reply_id, stored)
