"""Fixtures: a live server (SQLite by default, PostgreSQL on request), and API clients."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import server as live


def _pg(statement: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    # In a thread of its own: async fixtures call this from inside a running loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the machine's real server, dropped afterwards."""
    name = f"gapless_{uuid.uuid4().hex[:12]}"
    _pg(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def make_live_server(tmp_path: Path) -> Iterator[Callable[..., live.LiveServer]]:
    started: list[tuple[Any, Any]] = []

    def make(**options: Any) -> live.LiveServer:
        server, thread, uv = live.start(tmp_path / f"data{len(started)}", **options)
        started.append((uv, thread))
        return server

    yield make
    for uv, thread in started:
        live.stop(uv, thread)


@pytest.fixture
def live_server(make_live_server: Callable[..., live.LiveServer]) -> live.LiveServer:
    return make_live_server()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_server(
    request: pytest.FixtureRequest, make_live_server: Callable[..., live.LiveServer]
) -> live.LiveServer:
    """A live server on each database engine."""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        return make_live_server(database_url=url)
    return make_live_server()


@pytest.fixture
async def api(live_server: live.LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(live_server) as http:
        yield http


def client_for(server: live.LiveServer, token: str | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url,
        timeout=30,
        headers={"Authorization": f"Bearer {token or server.token}"},
    )
