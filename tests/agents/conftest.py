"""Fixtures for the tool tests: the test MCP server's files and its Streamable HTTP process,
and the storage tests' `engine` (each database engine)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mcp_setup import Files, HttpServer
from tests.test_storage import engine  # noqa: F401 (a migrated engine on SQLite and PostgreSQL)


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path / "mcp")


@pytest.fixture
def http_server(files: Files) -> Iterator[HttpServer]:
    server = HttpServer(files)
    server.start()
    try:
        yield server
    finally:
        server.close()
