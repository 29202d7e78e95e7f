"""A scaled-out Gapless as real processes: `gapless serve` and `gapless worker` subprocesses
over the machine's PostgreSQL (a fresh database) and Redis (a database number of its own),
with the job queue in Redis or, when `queue_url` says so, in the PostgreSQL database.

Tests inject faults from outside, as an operator's bad day would: SIGKILL a
worker, flush Redis, lock a table. Every wait is for a condition, with a deadline.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from redis.asyncio import Redis

from gapless.db import chats as db_chats
from gapless.db import engine as db_engine

T = TypeVar("T")
REDIS = "redis://127.0.0.1:6379"
CLAIM = "gapless:scale:claimed"
GAPLESS = str(Path(sys.executable).with_name("gapless"))
READY = 60.0  # seconds a process may take to start (the machine is shared)


@asynccontextmanager
async def claimed_redis() -> AsyncIterator[str]:
    """A Redis database number of the caller's own, flushed afterwards.

    The server is shared (other suites use database 0 with key prefixes), so a free
    number among 2..15 is claimed with a key set NX in it; only that database is
    flushed (FLUSHDB, never FLUSHALL).
    """
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(check: Callable[[], Awaitable[T]], ok: Callable[[T], bool], seconds: float) -> T:
    """Poll `check` until `ok` holds of its value; AssertionError after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds}s; last value: {value!r}")
        await asyncio.sleep(0.02)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no handler, no final write, no goodbye."""
        self.popen.kill()
        self.popen.wait(10)

    def terminate(self, seconds: float = 20) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(seconds)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


@dataclass
class Cluster:
    database_url: str
    redis_url: str
    tmp: Path
    queue_url: str = ""  # default: the Redis database
    settings: dict[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    token: str = ""
    engine: Any = None

    @property
    def queue(self) -> str:
        """The job queue's URL as every process of the cluster is given it."""
        return self.queue_url or self.redis_url

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GAPLESS_")}
        env.update(
            {
                "GAPLESS_DATA_DIR": str(self.tmp / "data"),
                "GAPLESS_DATABASE_URL": self.database_url,
                "GAPLESS_EVENTS_URL": self.redis_url,
                "GAPLESS_QUEUE_URL": self.queue,
                "GAPLESS_PROVIDERS": '["demo","bench"]',
                "GAPLESS_DEFAULT_MODEL": "demo:default",
                "GAPLESS_DEMO_DELAY": "0.05",
                "GAPLESS_LEASE_TTL": "2",
                "GAPLESS_CONFIG": str(self.tmp / "none.toml"),
                "PYTHONUNBUFFERED": "1",
                **self.settings,
            }
        )
        return env

    def _spawn(self, name: str, *args: str) -> Process:
        log = self.tmp / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [GAPLESS, *args], env=self.env(), cwd=self.tmp, stdout=out, stderr=subprocess.STDOUT
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    async def api(self, workers: int = 1) -> str:
        """Start `gapless serve` on a free port; its URL once it answers."""
        port = free_port()
        process = self._spawn(
            f"api{len(self.processes)}", "serve", "--port", str(port), "--workers", str(workers)
        )
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:

            async def answer() -> int:
                if process.popen.poll() is not None:
                    raise AssertionError(f"{process.name} exited:\n{process.output()}")
                try:
                    return (await http.get("/")).status_code
                except httpx.TransportError:
                    return 0

            await until(answer, lambda status: status == 200, READY)
        for line in process.output().splitlines():
            if line.startswith("token: gl_"):
                self.token = line.removeprefix("token: ")
        assert self.token, process.output()
        return url

    async def worker(self, concurrency: int = 4, *options: str) -> Process:
        process = self._spawn(
            f"worker{len(self.processes)}", "worker", "--concurrency", str(concurrency), *options
        )

        async def ready() -> bool:
            if process.popen.poll() is not None:
                raise AssertionError(f"{process.name} exited:\n{process.output()}")
            return "worker ready" in process.output()

        await until(ready, bool, READY)
        return process

    def client(self, url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=url, timeout=30, headers={"Authorization": f"Bearer {self.token}"}
        )

    async def message(self, message_id: str) -> dict[str, Any]:
        """The database's copy, read directly (not through any API process)."""
        if self.engine is None:
            self.engine = db_engine.create(self.database_url)
        found, _ = await db_chats.get_message(self.engine, message_id)
        return found

    async def close(self) -> None:
        for process in self.processes:  # all at once: each may take its grace to exit
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        for process in reversed(self.processes):
            process.terminate()
        if self.engine is not None:
            await self.engine.dispose()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.output()[-3000:]}" for p in self.processes)
