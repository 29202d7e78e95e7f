"""A real Gapless server on a free 127.0.0.1 port, in a thread with its own event loop.

Tests talk to it only over HTTP, SSE and WebSocket, like any client. The
database copy is read through `message()` (on the server's loop, as the
server's own engine is bound to it). Flushes can be held at a gate, and every
`UPDATE messages` statement is counted, so tests prove the debounce.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
import uvicorn

from gapless.accounts import Accounts
from gapless.cli import _UVICORN
from gapless.config import Settings
from gapless.db import chats as db_chats
from gapless.db.inline import InlineEngine
from gapless.generation import Hooks
from gapless.runtime import Bootstrap, Runtime, build
from gapless.web.app import create_app
from tests.support.scripted import ScriptedProvider
from tests.support.tools import Kit

T = TypeVar("T")


@dataclass
class LiveServer:
    runtime: Runtime
    provider: ScriptedProvider
    kit: Kit = field(default_factory=Kit)  # the test tools every agent may be given
    url: str = ""
    token: str = ""
    email: str = ""
    password: str = ""
    flush_gate: threading.Event = field(default_factory=threading.Event)
    flushes: list[tuple[str, int]] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)  # UPDATE messages statements, in order
    loop: asyncio.AbstractEventLoop | None = None

    def script(self, *steps: Any) -> None:
        self.provider.script(*steps)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop and wait for it (from a test thread)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(60)

    async def arun(self, work: Coroutine[Any, Any, T]) -> T:
        """The same from an async test, without blocking the test's own loop."""
        assert self.loop is not None
        future: Future[T] = asyncio.run_coroutine_threadsafe(work, self.loop)
        return await asyncio.wrap_future(future)

    def message(self, message_id: str) -> dict[str, Any]:
        found, _ = self.run(db_chats.get_message(self.runtime.engine, message_id))
        return found

    async def amessage(self, message_id: str) -> dict[str, Any]:
        found, _ = await self.arun(db_chats.get_message(self.runtime.engine, message_id))
        return found

    async def adrain(self) -> None:
        """Wait until every generation has ended."""
        await self.arun(self.runtime.runner.drain())  # type: ignore[attr-defined]

    def drain(self) -> None:
        self.run(self.runtime.runner.drain())  # type: ignore[attr-defined]


def start(
    data_dir: Path,
    *,
    database_url: str = "",
    debounce: float = 0.2,
    heartbeat: float = 15.0,
    settings: dict[str, Any] | None = None,
) -> tuple[LiveServer, threading.Thread, uvicorn.Server]:
    provider = ScriptedProvider()
    live: LiveServer

    async def before_flush(reply_id: str, seq: int) -> None:
        await asyncio.to_thread(live.flush_gate.wait, 60)
        live.flushes.append((reply_id, seq))

    config = Settings(
        data_dir=data_dir,
        database_url=database_url,
        debounce=debounce,
        heartbeat=heartbeat,
        **{"default_model": "scripted:default", "demo_delay": 0.0, "providers": ("demo",),
           **(settings or {})},
    )
    kit = Kit()
    runtime = build(
        config,
        providers={"scripted": provider},
        hooks=Hooks(before_flush=before_flush),
        tools=kit.tools(),
    )
    live = LiveServer(runtime=runtime, provider=provider, kit=kit)
    live.flush_gate.set()

    def count(statement: str) -> None:
        if statement.lstrip().upper().startswith("UPDATE MESSAGES"):
            live.writes.append(statement)

    # Every UPDATE of a message row, however it is sent: on SQLite as SQLite runs it (the
    # hot path's statements skip SQLAlchemy's execution, `db.prepared`), else as SQLAlchemy
    # sends it.
    if isinstance(runtime.engine, InlineEngine):
        runtime.engine.trace(count)
    else:
        sa.event.listen(
            runtime.engine.sync_engine,
            "before_cursor_execute",
            lambda conn, cursor, statement, *args: count(statement),
        )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    live.url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime),
            log_level="warning",
            timeout_graceful_shutdown=1,
            lifespan="on",
            # the protocols and their bounds of `gapless serve`, whatever they are
            **{
                name: value
                for name, value in _UVICORN.items()
                if name.startswith(("ws", "http", "h11", "timeout_keep"))
            },
        )
    )
    ready = threading.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        live.loop = asyncio.get_running_loop()
        try:
            created: Bootstrap | None = await runtime.start()
            if created is not None:
                live.token, live.email = created.token, created.email
                live.password = created.password
            else:  # a restart on the same data: sign in with a new token
                live.token = await Accounts(runtime.engine).new_token()
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            raise
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not serving.done():  # noqa: ASYNC110 (uvicorn has no event)
            await asyncio.sleep(0.01)
        ready.set()
        try:
            await serving
        finally:
            await runtime.close()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    ready.wait(60)
    if failure:
        raise failure[0]
    return live, thread, server


def stop(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(30)
