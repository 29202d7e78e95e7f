"""Outages of the engines themselves, mid-stream: Redis restarted empty, Redis down for a moment
(and back with its data), PostgreSQL refusing connections for a few seconds, or for longer
than a run's final write can wait.

Clients retry while a service is down, as a browser would (`patient`), and still end
showing the database's final text byte for byte.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from tests.scale.cluster import Cluster, Process, free_port, until
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
    """A redis-server of the test's own, so it can be killed and restarted: without
    persistence, or `durable` (an AOF fsynced before every answer: it restarts with its data)."""

    def __init__(self, directory: Path, durable: bool = False) -> None:
        self.port, self.directory, self.durable = free_port(), directory, durable
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.popen = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.durable else "no", "--appendfsync", "always",
             "--dir", str(self.directory)],
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


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    directory = tmp_path / "redis"
    directory.mkdir()
    server = PrivateRedis(directory, durable=True)
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


async def streaming(cluster: Cluster) -> tuple[str, str, Process, str, Watchers, str]:
    """Two API processes and a worker; a reply streaming, followed over SSE and WebSocket
    from both processes, its first 10 deltas shown: (a, b, worker, chat, watchers, reply)."""
    a, b = await cluster.api(), await cluster.api()
    worker = await cluster.worker()
    async with cluster.client(a) as http:
        chat_id = await start_chat(http)
        watchers = Watchers(cluster, a, b, chat_id, patient=True)
        await watchers.load()
        reply_id = await send(http, chat_id)
    watchers.follow(reply_id)
    await shown(watchers.sse, reply_id, 10)
    return a, b, worker, chat_id, watchers, reply_id


async def test_redis_restarted_empty_mid_stream_resets_clients_and_they_converge(
    pg_url: str, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    cluster = Cluster(database_url=pg_url, redis_url=private_redis.url, tmp=tmp_path)
    try:
        a, b, _, chat_id, watchers, reply_id = await streaming(cluster)
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


async def test_redis_down_for_a_moment_mid_stream_is_ridden_out_and_no_delta_is_doubled(
    pg_url: str, durable_redis: PrivateRedis, tmp_path: Path
) -> None:
    cluster = Cluster(database_url=pg_url, redis_url=durable_redis.url, tmp=tmp_path)
    try:
        _, _, worker, chat_id, watchers, reply_id = await streaming(cluster)
        durable_redis.kill()  # mid-stream: the worker appends a delta every 50 ms

        async def retrying() -> bool:
            return "Redis unreachable during an append" in worker.output()

        await until(retrying, bool, 10)  # an append met the outage and is being retried
        durable_redis.start()  # back with everything it had answered (AOF)
        await watchers.done(60)
        stored = await cluster.message(reply_id)
        assert stored["status"] == "complete", cluster.logs()
        check_model_output(stored)
        check_clients(watchers.tabs, reply_id, stored)
        redis = Redis.from_url(durable_redis.url, decode_responses=True)
        try:
            entries = await redis.xrange(f"gapless:log:s:chat:{chat_id}")
        finally:
            await redis.aclose()
        logged = [f["e"].split(" ", 3)[2:] for _, f in entries]  # n epoch type data
        deltas = [json.loads(data) for type_, data in logged if type_ == "message.delta"]
        seqs = [d["seq"] for d in deltas if d["message_id"] == reply_id]
        assert seqs == list(range(1, stored["seq"] + 1))  # each once, in order, none lost
    finally:
        await cluster.close()


async def test_a_database_unreachable_for_seconds_mid_stream_loses_nothing(
    cluster: Cluster,
) -> None:
    cluster.settings["GAPLESS_LEASE_TTL"] = "6"  # the outage (3 s) is shorter than the lease
    *_, watchers, reply_id = await streaming(cluster)
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
    *_, watchers, reply_id = await streaming(cluster)
    async with database_down(cluster.database_url):
        await asyncio.sleep(14.0)  # the model ends; its final write gives up (about 7 s)
    await watchers.done(60)
    stored = await cluster.message(reply_id)
    assert stored["status"] == "failed" and stored["error"]["code"] == "interrupted"
    check_model_output(stored)  # the text it published is kept, though its run gave up
    check_clients(watchers.tabs, reply_id, stored)
