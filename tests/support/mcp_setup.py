"""The test MCP server (`mcp_server.py`) as settings and as a process: over stdio (the
client starts it) or over Streamable HTTP (the test starts it, on a socket it bound)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gapless.config import McpServer

SCRIPT = Path(__file__).with_name("mcp_server.py")


@dataclass
class Files:
    """Where the server counts its starts and `bump` calls, and where `slow`'s gates live."""

    root: Path

    def __post_init__(self) -> None:
        self.gates.mkdir(parents=True, exist_ok=True)

    @property
    def count(self) -> Path:
        return self.root / "bumps"

    @property
    def starts(self) -> Path:
        return self.root / "starts"

    @property
    def gates(self) -> Path:
        return self.root / "gates"

    def env(self) -> dict[str, str]:
        return {
            "GAPLESS_MCP_COUNT": str(self.count),
            "GAPLESS_MCP_GATES": str(self.gates),
            "GAPLESS_MCP_STARTS": str(self.starts),
        }

    def pids(self) -> list[int]:
        """The process ids of every start so far, oldest first."""
        if not self.starts.exists():
            return []
        return [int(line) for line in self.starts.read_text().split()]

    def bumps(self) -> int:
        return len(self.count.read_text().splitlines()) if self.count.exists() else 0


def stdio(name: str, files: Files) -> McpServer:
    return McpServer(name=name, command=sys.executable, args=(str(SCRIPT),), env=files.env())


@dataclass
class HttpServer:
    """The test server over Streamable HTTP in a process of its own, on a socket this test
    holds (the port is known at once, connections wait in its backlog until the server
    accepts, and a restart serves the same URL)."""

    files: Files
    sock: socket.socket = field(default_factory=socket.socket)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/mcp"

    def settings(self, name: str, headers: dict[str, str] | None = None) -> McpServer:
        return McpServer(name=name, url=self.url, headers=headers or {})

    def start(self) -> None:
        fd = self.sock.fileno()
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--fd", str(fd)],
            pass_fds=[fd],
            env={**os.environ, **self.files.env()},
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        self.sock.close()


async def until(condition: Callable[[], bool]) -> None:
    """Wait for what another process does (a file it wrote, its exit): it cannot set an
    event in this loop, so poll the condition itself, never a guessed delay."""
    async with asyncio.timeout(20):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
