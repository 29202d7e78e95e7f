"""Opening the database and bringing its schema up to date (Alembic, applied on start).

SQLite runs on the event loop's thread (`db.inline`, which says why) with the
PRAGMAs that make it a good single-process store: WAL (readers never block the
one writer), a busy timeout, foreign keys. PostgreSQL uses SQLAlchemy's async
engine over asyncpg. Imports `db.tables`, `db.inline`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import create_async_engine

from gapless.db import Engine
from gapless.db.inline import InlineEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def create(url: str, pool: int = 10) -> Engine:
    """The engine for `url`; on PostgreSQL at most `pool` connections at once (a request
    holds one for a transaction's milliseconds; others wait their turn, up to 30 s)."""
    if url.startswith("sqlite"):
        return _sqlite(url)
    return create_async_engine(
        url, pool_size=max(1, pool // 2), max_overflow=max(0, pool - pool // 2), pool_pre_ping=True
    )


def _sqlite(url: str) -> InlineEngine:
    """SQLite on the loop's thread (`db.inline`), one connection for everyone, in turn."""
    location = sa.make_url(url).set(drivername="sqlite+pysqlite")
    path = location.database or ""
    on_disk = bool(path) and path != ":memory:"
    if on_disk:
        private(Path(path))
    engine = sa.create_engine(
        location,
        poolclass=sa.pool.StaticPool,
        # A lock held by another process (a CLI command) stalls the loop: not for long.
        connect_args={"timeout": 5, "check_same_thread": False},
    )
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    return InlineEngine(engine, path if on_disk else None)


def private(path: Path) -> None:
    """The database file readable by its owner only (0600; SQLite gives its -wal and -shm
    files the same mode), in a directory that is theirs (0700 when created here)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        "busy_timeout=5000",
        "synchronous=NORMAL",
        "foreign_keys=ON",
        "wal_autocheckpoint=0",  # checkpoints wait for the disk: `inline.Checkpointer` does them
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def migrate(engine: Engine) -> None:
    """Apply every pending migration; concurrent starters on PostgreSQL take turns."""

    def upgrade(connection: sa.Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(7414)"))
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")  # domains may branch from one revision

    async with engine.begin() as connection:
        await connection.run_sync(upgrade)
