"""A tiny MCP server written with the SDK's own server API (`MCPServer`), for tests.

Run as a script: `python mcp_server.py` serves over stdio; `python mcp_server.py --fd N`
serves Streamable HTTP at `/mcp` on the listening socket inherited as file
descriptor N (the test binds it, so the port is known before the server starts
and stays the same across a restart).

With `GAPLESS_MCP_STARTS` set, each start appends the process id to that file.

Tools:
- `echo(text)`, `add(a, b)`: plain answers;
- `getenv(name)`, `header(name)`: what the process was given, what the request carried;
- `fail(message)`: an `isError` result carrying `message`;
- `die()`: kills this very process while its call is in flight;
- `bump()` (destructiveHint): appends a line to the file named by `GAPLESS_MCP_COUNT`
  and answers how many lines it holds, so a test can assert a tool never ran twice;
- `slow(key)`: creates `<GAPLESS_MCP_GATES>/<key>.started`, then waits until
  `<GAPLESS_MCP_GATES>/<key>.open` exists (a gate the test opens), and answers "opened";
  cancelled by the client, it creates `<key>.cancelled`.
Imports only the SDK: it runs outside the project's package.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

server = MCPServer("gapless-test", log_level="WARNING")


@server.tool()
def echo(text: str) -> str:
    """Answer the text it was given."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def getenv(name: str) -> str:
    """An environment variable of the server process ("" when unset)."""
    return os.environ.get(name, "")


@server.tool()
def header(name: str, ctx: Context) -> str:
    """A header of the HTTP request that carried this call ("" over stdio, or when absent)."""
    return (ctx.headers or {}).get(name.lower(), "")


@server.tool()
def fail(message: str) -> str:
    """Always fail, with the given message."""
    raise ToolError(message)


@server.tool()
def die() -> str:
    """Kill the server process in the middle of this call."""
    os._exit(3)


@server.tool(annotations=ToolAnnotations(destructive_hint=True))
def bump() -> int:
    """Append a line to the count file and answer how many calls it has counted."""
    path = Path(os.environ["GAPLESS_MCP_COUNT"])
    with path.open("a") as file:
        file.write("bump\n")
    return len(path.read_text().splitlines())


@server.tool()
async def slow(key: str = "gate") -> str:
    """Wait until the test opens the gate named `key`."""
    gates = Path(os.environ["GAPLESS_MCP_GATES"])
    (gates / f"{key}.started").touch()
    try:
        while not (gates / f"{key}.open").exists():  # noqa: ASYNC110 (another process opens it)
            await anyio.sleep(0.01)  # polling a condition the test sets, not a guess at timing
    except anyio.get_cancelled_exc_class():
        (gates / f"{key}.cancelled").touch()  # the client gave up on the call and said so
        raise
    return "opened"


def main(argv: list[str]) -> None:
    if os.environ.get("GAPLESS_MCP_STARTS"):  # a test counts starts (lazy, restarted) and pids
        with open(os.environ["GAPLESS_MCP_STARTS"], "a") as file:
            file.write(f"{os.getpid()}\n")
    if "--fd" not in argv:
        server.run()
        return
    import uvicorn

    fd = int(argv[argv.index("--fd") + 1])
    app = server.streamable_http_app(streamable_http_path="/mcp")
    uvicorn.run(app, fd=fd, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
