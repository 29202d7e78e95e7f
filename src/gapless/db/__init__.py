"""Persistence: tables, one function per query or use, migrations. SQLAlchemy stays here.

`Engine` is re-exported so callers can type a database handle without importing
SQLAlchemy: SQLAlchemy's async engine (PostgreSQL), or `InlineEngine` (SQLite on
the loop's thread, see `db.inline`), which offer `db/` the same interface.
"""

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gapless.db.inline import InlineConnection, InlineEngine

Engine = AsyncEngine | InlineEngine
Connection = AsyncConnection | InlineConnection

__all__ = ["Connection", "Engine"]
