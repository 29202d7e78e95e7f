"""The PostgreSQL engine of the SAQ runner: SAQ's Postgres queue, and a stop channel over
LISTEN/NOTIFY, so a deployment on PostgreSQL needs Redis only for its event log.

SAQ keeps its jobs in tables of its own (`saq_jobs`, `saq_stats`, `saq_versions`)
in the queue's database, created on first connect. An ask is one transaction: a
row in `gapless_stops` and a `pg_notify` on the channel every worker LISTENs on,
delivered at commit, so a run registering at any moment hears it or finds the row.
Six changes to SAQ's queue: processes set up its tables one at a time; its
listener of enqueue notifications reconnects (SAQ's ends for good when its
connection is lost, and the worker then spins); a URL with a driver
(`postgresql+asyncpg://`, as in GAPLESS_DATABASE_URL) is accepted; its pool
checks a connection it hands out only when that one idled (`_Checked`), not
with a round trip before every statement on the way from POST to a worker;
a run starts without waiting for the worker's ACTIVE write (`update`); an
enqueue notifies in its own statement (`_enqueue`).
Imports `jobs.control`; `psycopg` is imported only here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import weakref
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from saq import Job as SaqJob
from saq import Queue
from saq.job import Status
from saq.queue.postgres import ENQUEUE, ListenMultiplexer, PostgresQueue
from saq.utils import now_seconds

from gapless.jobs.control import KEEP, RETRY, Control, Ready, Stop

logger = logging.getLogger("gapless.jobs")
CHECK = 5.0  # seconds between liveness checks of an idle LISTEN connection
FRESH = 1.0  # seconds after a pooled connection was handed out in which it is not re-checked

# SAQ's enqueue statement (saq/queue/postgres.py, `_enqueue`), then its NOTIFY for the
# inserted row only, in one statement.
_ENQUEUE = """
WITH enqueued AS (
  INSERT INTO {jobs_table} (key, job, queue, status, priority, group_key, scheduled)
  VALUES (%(key)s, %(job)s, %(queue)s, %(status)s, %(priority)s, %(group_key)s, %(scheduled)s)
  ON CONFLICT (key) DO UPDATE
  SET job = %(job)s, queue = %(queue)s, status = %(status)s, priority = %(priority)s,
      group_key = %(group_key)s, scheduled = %(scheduled)s, expire_at = null
  WHERE {jobs_table}.status IN ('aborted', 'complete', 'failed')
    AND %(scheduled)s > {jobs_table}.scheduled
  RETURNING 1
)
SELECT pg_notify(%(channel)s, %(payload)s) FROM enqueued
"""
_TABLE = """
CREATE TABLE IF NOT EXISTS gapless_stops (
  queue text NOT NULL,
  reply_id text NOT NULL,
  asked_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (queue, reply_id)
)
"""
_ASK = """
INSERT INTO gapless_stops (queue, reply_id) VALUES (%s, %s)
ON CONFLICT (queue, reply_id) DO UPDATE SET asked_at = now()
"""
_FORGET = "DELETE FROM gapless_stops WHERE asked_at < now() - make_interval(secs => %s)"
_ASKED = """
SELECT 1 FROM gapless_stops
WHERE queue = %s AND reply_id = %s AND asked_at > now() - make_interval(secs => %s)
"""


def conninfo(url: str) -> str:
    """libpq's form of `url`: `postgresql+asyncpg://...` names a driver libpq does not know."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


def engine(
    url: str, name: str, queue: Queue | None = None, connections: int = 4
) -> tuple[Queue, Control]:
    """SAQ's Postgres queue `name` in the database at `url` (at most `connections` pooled
    connections, besides the listeners), or `queue`, and its stop channel."""
    queue = queue or new_queue(url, name, connections)
    assert isinstance(queue, PostgresQueue)
    return queue, PostgresControl(conninfo(url), name, queue.pool)


def new_queue(
    url: str, name: str, connections: int, kind: type[PostgresQueue] | None = None
) -> PostgresQueue:
    """SAQ's Postgres queue as changed here (`kind`: a subclass of it, for tests)."""
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        conninfo(url),
        check=_Checked().check,
        open=False,
        min_size=1,
        max_size=connections,
        kwargs={"autocommit": True},  # as SAQ wants its pool
    )
    return (kind or _PostgresQueue)(pool=pool, name=name, manage_pool_lifecycle=True)


class _Checked:
    """The pool's check of a connection it hands out, skipped when that connection was
    handed out less than `FRESH` seconds ago: SAQ's check is a round trip on every
    checkout (an enqueue, a dequeue, a job's every update and a stop's look-up each
    paid one), though a connection in use a moment ago is very likely alive. One that
    idled longer (the case of a database restarted meanwhile) is checked as before."""

    def __init__(self) -> None:
        self._given: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    async def check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        now = time.monotonic()
        given, self._given[conn] = self._given.get(conn), now
        if given is None or now - given > FRESH:
            await AsyncConnectionPool.check_connection(conn)


class _Wakeups(ListenMultiplexer):
    """SAQ's listener of enqueue notifications, reconnecting when its connection is lost."""

    async def _start(self) -> None:
        while not self.pool.closed:
            try:
                await super()._start()
            except (psycopg.Error, OSError) as exc:
                logger.warning("queue notifications lost (%s); reconnecting", exc)
            self.publish(ENQUEUE, ENQUEUE)  # jobs may have come meanwhile: look
            await asyncio.sleep(RETRY)


class _PostgresQueue(PostgresQueue):
    # Free slots of the worker let into `dequeue` at once (`SaqWorker`): with two, one waits
    # on the listener and runs the dequeue's statement while the other takes the job it
    # hands over, before that statement's commit and SAQ's NOTIFY after it (a round trip
    # or two less before a run starts), as SAQ's own many waiters would.
    turns = 2

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._listener = _Wakeups(self.pool, self._channel)
        self._activating: dict[str, asyncio.Task[None]] = {}
        self.behind = 0  # free slots of this process's worker waiting their turn to dequeue

    async def _dequeue(self) -> None:
        """SAQ's dequeue takes as many jobs as tasks wait in `dequeue`; the worker lets one
        free slot at a time in (`SaqWorker`), so the others waiting their turn are counted
        too: a burst of jobs is still taken in one statement, not one statement each."""
        behind = self.behind
        self._waiting += behind
        try:
            await super()._dequeue()
        finally:
            self._waiting -= behind

    async def update(self, job: SaqJob, **kwargs: Any) -> None:
        """SAQ's worker writes ACTIVE (with the attempt's count) after a dequeue, and only then
        starts the run; here the dequeue's own transaction has already made the job active,
        so that write goes on beside the run instead of before it (it waited for the
        dequeue's commit, then committed itself: 2-3 ms before every first token). Every
        later write of the job waits for it, so none is overtaken."""
        if kwargs.get("status") == Status.ACTIVE and "connection" not in kwargs:
            write = asyncio.create_task(self._activate(job, kwargs))
            self._activating[job.key] = write
            write.add_done_callback(lambda _: self._written(job.key, write))
            return
        if "connection" not in kwargs:  # one holding a connection waited before taking it
            await self._activated(job)
        await super().update(job, **kwargs)

    async def _activate(self, job: SaqJob, kwargs: dict[str, Any]) -> None:
        try:
            await super().update(job, **kwargs)
        except Exception:  # the job is active already; only its attempt count is not stored
            logger.warning("writing %s active failed", job.key, exc_info=True)

    def _written(self, key: str, write: asyncio.Task[None]) -> None:
        if self._activating.get(key) is write:
            del self._activating[key]

    async def _activated(self, job: SaqJob) -> None:
        write = self._activating.get(job.key)
        if write is not None:
            await asyncio.shield(write)

    async def finish(self, job: SaqJob, status: Status, **kwargs: Any) -> None:
        await self._activated(job)
        await super().finish(job, status, **kwargs)

    async def retry(self, job: SaqJob, error: str | None) -> None:
        await self._activated(job)
        await super().retry(job, error)

    async def disconnect(self) -> None:
        for write in list(self._activating.values()):
            with contextlib.suppress(Exception):
                await write
        await super().disconnect()

    async def _enqueue(self, job: SaqJob) -> SaqJob | None:
        """SAQ's enqueue (its statement, same columns and conflict rule) with its NOTIFY in
        the same statement: one round trip on the way from POST to a worker, not two."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                sql.SQL(_ENQUEUE).format(jobs_table=self.jobs_table),
                {
                    "key": job.key,
                    "job": self.serialize(job),
                    "queue": self.name,
                    "status": job.status,
                    "priority": job.priority,
                    "group_key": job.group_key,
                    "scheduled": job.scheduled or int(now_seconds()),
                    "channel": self._channel,
                    "payload": ENQUEUE,
                },
            )
            if await cursor.fetchone() is None:
                return None
        return job

    async def init_db(self) -> None:
        """SAQ's table set-up, one process at a time: SAQ's own returns at once when another
        process holds its (never released) lock, even while that one is still creating the
        tables, and the first enqueue then finds no `saq_jobs`."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('saq_init_db'))")
            await super().init_db()


class PostgresControl:
    def __init__(self, conninfo: str, name: str, pool: AsyncConnectionPool[Any]) -> None:
        self._conninfo, self._name, self._pool = conninfo, name, pool
        self._channel = f"gapless:{name}:stop"
        self._table = False

    async def _ensure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if self._table:
            return
        async with conn.transaction():  # concurrent CREATE ... IF NOT EXISTS can collide
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('gapless_stops'))")
            await conn.execute(_TABLE)
        self._table = True

    async def ask(self, reply_id: str) -> None:
        async with self._pool.connection() as conn:
            await self._ensure(conn)
            async with conn.transaction():
                await conn.execute(_ASK, (self._name, reply_id))
                await conn.execute(_FORGET, (KEEP,))
                await conn.execute("SELECT pg_notify(%s, %s)", (self._channel, reply_id))

    async def asked(self, reply_id: str) -> bool:
        async with self._pool.connection() as conn:
            await self._ensure(conn)
            found = await conn.execute(_ASKED, (self._name, reply_id, KEEP))
            return await found.fetchone() is not None

    async def listen(self, stop: Stop, ready: Ready) -> None:
        listen = sql.SQL("LISTEN {}").format(sql.Identifier(self._channel))
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                async with conn:
                    await conn.execute(listen)
                    await ready()
                    while True:
                        async for notify in conn.notifies(timeout=CHECK):
                            stop(notify.payload)
                        await conn.execute("SELECT 1")  # a dead connection fails here
            except (psycopg.Error, OSError) as exc:
                logger.warning("stop channel lost (%s); reconnecting", exc)
                await asyncio.sleep(RETRY)

    async def close(self) -> None:
        return None  # the pool is the queue's; the listener's connection ends with its task
