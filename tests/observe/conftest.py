"""Fixtures: a migrated database (SQLite file, or a fresh PostgreSQL one) for the recorder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gapless.db import Engine
from gapless.db import engine as db_engine
from tests.scale.conftest import cluster, redis_url  # noqa: F401 (the scaled-out fixtures)


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'observe.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    created = db_engine.create(url)
    await db_engine.migrate(created)
    yield created
    await created.dispose()
