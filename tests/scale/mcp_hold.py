"""The test MCP server (`tests/support/mcp_server.py`, its `bump` counting calls) plus `hold`,
a call that blocks in the server's process while a scaled-out test kills the worker.

`hold(key)` first appends this process's id to `<GAPLESS_MCP_GATES>/<key>.calls` (so a
test counts every call that ever started, in whichever process, and knows which
processes to clean up), then waits until `<GAPLESS_MCP_GATES>/<key>.open` exists.
Run as a script, like the server it extends: it imports only the SDK and that server.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from mcp_server import main, server  # found through the line above


@server.tool()
async def hold(key: str = "gate") -> str:
    """Count this call, then wait until the test opens the gate named `key`."""
    gates = Path(os.environ["GAPLESS_MCP_GATES"])
    with (gates / f"{key}.calls").open("a") as file:
        file.write(f"{os.getpid()}\n")
    while not (gates / f"{key}.open").exists():  # noqa: ASYNC110 (another process opens it)
        await anyio.sleep(0.01)  # polling a condition the test sets, not a guess at timing
    return "opened"


if __name__ == "__main__":
    main(sys.argv[1:])
