"""`InlineEngine`: SQLite run on the event loop's own thread, behind the async engine's interface.

Why: through SQLAlchemy's async engine, aiosqlite runs every DBAPI call (cursor,
execute, fetch, close, commit) in its own thread, five thread hops for one
small statement: about a millisecond of CPU and wall time each, most of the
service's time to first token and a large share of its CPU in the benchmark.
SQLite itself answers such a statement in tens of microseconds, less than one
hop costs. So the one-process default runs SQLite synchronously here:
- every statement is short (rows by key, one chat's messages) and SQLite in
  WAL mode with `synchronous=NORMAL` never waits for the disk on a commit;
- a transaction never yields to the loop (its statements never suspend), so
  transactions never interleave and one connection serves everyone, in turn;
- what does wait for the disk, the WAL checkpoint, runs in a thread of its own
  (`Checkpointer`), never in a commit.
PostgreSQL keeps SQLAlchemy's async engine over asyncpg (no threads there).
The statements marked `prepared` run as plans on the driver (`db.prepared`).
Imports `db.prepared`; SQLAlchemy stays in `db/`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult, ScalarResult
from sqlalchemy.sql.base import Executable

from gapless.db.prepared import Plan, keys_of, marked, plan

T = TypeVar("T")
CHECKPOINT_EVERY = 1.0  # seconds between WAL checkpoints, off the loop's thread


class InlineConnection:
    """The subset of `AsyncConnection` that `db/` uses, over a synchronous connection; a
    statement marked `prepared` runs as its plan on the driver's connection."""

    def __init__(self, connection: sa.Connection, engine: InlineEngine) -> None:
        self._connection, self._engine = connection, engine

    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[Any]:
        if marked(statement):
            found = self._engine.plan(statement, parameters)
            if found is not None:  # a `Result`: the parts of a CursorResult that db/ uses
                ran = found.run(self._engine.driver(self._connection), parameters)
                return cast("CursorResult[Any]", ran)
        return self._connection.execute(statement, parameters)

    async def scalar(self, statement: Executable, parameters: Any = None) -> Any:
        if marked(statement):
            return (await self.execute(statement, parameters)).scalar()
        return self._connection.scalar(statement, parameters)

    async def scalars(self, statement: Executable, parameters: Any = None) -> ScalarResult[Any]:
        return self._connection.scalars(statement, parameters)

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(self._connection, *args)


class InlineEngine:
    """The subset of `AsyncEngine` that `db/` uses; statements run where they are awaited."""

    def __init__(self, engine: sa.Engine, path: str | None) -> None:
        self.sync_engine = engine
        self._checkpointer = Checkpointer(path) if path else None
        self._open = False
        self._connection: sa.Connection | None = None
        self._plans: dict[tuple[int, tuple[str, ...]], Plan | None] = {}

    def plan(self, statement: Executable, parameters: Any) -> Plan | None:
        """The marked statement's plan for these parameters' keys, compiled on first use
        (None: SQLAlchemy runs this one)."""
        keys = keys_of(parameters)
        try:
            return self._plans[id(statement), keys]
        except KeyError:
            found = self._plans[id(statement), keys] = plan(
                statement, keys, self.sync_engine.dialect
            )
            return found

    def driver(self, connection: sa.Connection) -> sqlite3.Connection:
        """The driver's own connection under SQLAlchemy's (the one both send statements to)."""
        return connection.connection.driver_connection  # type: ignore[return-value]

    def trace(self, callback: Callable[[str], object] | None) -> None:
        """Every SQL statement SQLite runs on the loop's connection, as it runs it, whichever
        way it was sent (SQLAlchemy or a plan), BEGIN and COMMIT included: how tests count
        statements and transactions. None stops it."""
        self.driver(self._held()).set_trace_callback(callback)

    def _held(self) -> sa.Connection:
        """The one connection, kept checked out between blocks: a checkout and a check-in
        through the pool (its events, its reset) were a third of a one-row read's CPU,
        for a pool of one connection that everyone uses in turn anyway."""
        connection = self._connection
        if connection is None or connection.closed or connection.invalidated:
            connection = self._connection = self.sync_engine.connect()
        return connection

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[InlineConnection]:
        with self._only():
            connection = self._held()
            try:
                yield InlineConnection(connection, self)
            finally:  # what closing it did: the block's implicit transaction ends here
                if connection.in_transaction():
                    connection.rollback()
                elif (driver := self.driver(connection)).in_transaction:  # a plan's write
                    driver.rollback()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[InlineConnection]:
        with self._only():
            connection = self._held()
            with connection.begin():
                yield InlineConnection(connection, self)

    @contextlib.contextmanager
    def _only(self) -> Iterator[None]:
        """One block at a time: a block that awaited something else than its statements
        would let another one in on the same connection, mid-transaction. Say so."""
        if self._open:
            raise RuntimeError("a database block waited for something else: one at a time")
        self._open = True
        try:
            yield
        finally:
            self._open = False

    async def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self.sync_engine.dispose()


class Checkpointer:
    """Moves the WAL's pages into the database every second, from a thread of its own.

    The loop's connection has automatic checkpoints turned off (they would run in
    whichever commit crossed the threshold, and wait for the disk there).
    PASSIVE never waits for readers or writers, so it never stalls the loop's
    connection; what a busy moment leaves behind, the next round takes.
    """

    def __init__(self, path: str, every: float = CHECKPOINT_EVERY) -> None:
        self._path, self._every = path, every
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, timeout=1.0, check_same_thread=False)
        try:
            while not self._stopped.wait(self._every):
                with contextlib.suppress(sqlite3.Error):  # busy now: the next round does it
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            connection.close()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(5)
