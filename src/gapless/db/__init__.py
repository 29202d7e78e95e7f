"""Persistence: tables, one function per query or use, migrations. SQLAlchemy stays here.

`Engine` is re-exported so callers can type a database handle without importing SQLAlchemy.
"""

from sqlalchemy.ext.asyncio import AsyncEngine as Engine

__all__ = ["Engine"]
