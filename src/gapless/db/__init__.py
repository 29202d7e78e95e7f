"""Persistence: tables, one function per query or use, migrations. SQLAlchemy stays here.

`Engine` is re-exported so callers can type a database handle without importing
SQLAlchemy: SQLAlchemy's async engine (PostgreSQL), or `InlineEngine` (SQLite on
the loop's thread, see `db.inline`), which offer `db/` the same interface.
"""

from sqlalchemy.exc import IntegrityError as ConstraintError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gapless.db.inline import InlineConnection, InlineEngine

Engine = AsyncEngine | InlineEngine
Connection = AsyncConnection | InlineConnection

# A write the schema refused (a foreign key to nothing, a duplicate): the web layer answers
# 409 for a route that did not check first, instead of a 500.
__all__ = ["Connection", "ConstraintError", "Engine"]
