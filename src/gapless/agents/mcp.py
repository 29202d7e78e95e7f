"""MCP servers' tools, through the official `mcp` SDK: stdio commands and Streamable HTTP URLs.

One `McpConnection` per configured server. It starts on first use (a listing
or a call), never before: a server nobody's agent uses costs nothing. Its
client session lives in a task of its own (`_hold`), because the SDK's
context managers (the subprocess or HTTP client, its task groups) must be
entered and left by the same task, and a transport that fails cancels the
task that entered it, which must not be a caller's. Calls run in the caller's
own task (the SDK's dispatcher is shared safely), so parallel calls stay
parallel and a caller's time-out cancels its request on the server.

A server that dies (its process exits, its HTTP endpoint drops) ends its
session: the calls in flight end `server_died` (never retried: a tool must not
run twice for one call) and the next call starts the server again. A server
that cannot start is a ToolError (`server_unavailable`) for its tools only.

Tools are named `<server>.<tool>`; MCP's `isError` is a ToolError (`tool_error`)
with the result's text. `destructive` is the tool's declared `destructiveHint`.
Imports `agents.tools`; `config.McpServer` only as a type.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client._transport import Transport, TransportStreams
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp_types import CONNECTION_CLOSED, CallToolResult, Implementation, TextContent
from mcp_types import Tool as RemoteTool

from gapless.agents.tools import JSON, ToolContext, ToolError, ToolInfo, info

if TYPE_CHECKING:
    from gapless.config import McpServer

logger = logging.getLogger("gapless.agents")

CLIENT = Implementation(name="gapless", version="0.1.0")
MAX_PAGES = 100  # of a tools/list: a paginator that never ends cannot hang a start


@dataclass(frozen=True)
class McpTool:
    """One tool of one MCP server, as a `Tool`."""

    name: str
    description: str
    schema: dict[str, Any]
    destructive: bool
    connection: McpConnection = field(repr=False)
    remote_name: str = ""

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> JSON:
        return await self.connection.call(self.remote_name, arguments)


@dataclass
class _Session:
    """A started (or starting) server: the task holding its client, and what it listed."""

    task: asyncio.Task[None] | None = None
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # started, or failed to
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # died, or asked to stop
    client: Client | None = None
    tools: list[RemoteTool] = field(default_factory=list)
    error: str | None = None  # why it could not start
    failure: BaseException | None = None  # what ended it, once it ended by an error

    @property
    def usable(self) -> bool:
        return not self.ended.is_set() and (self.task is None or not self.task.done())


class McpConnection:
    """One configured MCP server: started lazily, kept open, restarted after it dies."""

    def __init__(self, server: McpServer, start_timeout: float = 30.0) -> None:
        self.server = server
        self.name = server.name
        self.start_timeout = start_timeout
        self._session: _Session | None = None
        self._lock = asyncio.Lock()  # one start at a time, however many callers ask

    async def tools(self) -> list[McpTool]:
        """The server's tools (starting it if needed); ToolError if it cannot start."""
        session = await self._started()
        return [self._tool(remote) for remote in session.tools]

    async def infos(self) -> list[ToolInfo]:
        """The server's tools for a listing, or one `<server>.*` entry: why it cannot start."""
        try:
            tools = await self.tools()
        except ToolError as error:
            about = f"The tools of MCP server {self.name}."
            return [ToolInfo(f"{self.name}.*", about, source=self.source, error=error.message)]
        return [info(tool, self.source) for tool in tools]

    async def resolve(self, name: str) -> McpTool | None:
        """The tool `<server>.<tool>`; while the server cannot start, a stand-in whose call
        says why (its tools are unknown, so its name cannot be checked)."""
        prefix = f"{self.name}."
        if not name.startswith(prefix):
            return None
        try:
            return next((t for t in await self.tools() if t.name == name), None)
        except ToolError as error:
            return McpTool(name, error.message, {"type": "object"}, False, self,
                           name.removeprefix(prefix))

    async def call(self, tool: str, arguments: dict[str, Any]) -> JSON:
        session = await self._started()
        assert session.client is not None
        try:
            result = await session.client.call_tool(tool, arguments)
        except MCPError as error:
            if error.code != CONNECTION_CLOSED:
                raise ToolError(f"MCP server {self.name}: {error.message}", code="mcp_error"
                                ) from None
            session.ended.set()  # the next call starts it again
            if session.task is not None:
                await asyncio.wait({session.task}, timeout=5)  # to learn what ended it
            if isinstance(session.failure, httpx2.ConnectError):  # the call never left
                raise ToolError(
                    f"MCP server {self.name} cannot be reached: {_describe(session.failure)}",
                    code="server_unavailable",
                ) from None
            raise ToolError(
                f"MCP server {self.name} stopped during the call", code="server_died"
            ) from None
        except Exception as error:  # an invalid result (pydantic's), a transport's own error
            raise ToolError(f"MCP server {self.name}: {_describe(error)}", code="mcp_error"
                            ) from None
        return answer(result)

    async def close(self) -> None:
        """Stop the server (its process, or its HTTP session) and wait until it is gone."""
        session, self._session = self._session, None
        if session is None or session.task is None:
            return
        session.ended.set()
        # Bounded: the SDK waits at most a few seconds for a process to exit, then kills it.
        await asyncio.wait({session.task}, timeout=10)
        if not session.task.done():
            session.task.cancel()
            await asyncio.wait({session.task}, timeout=1)

    @property
    def running(self) -> bool:
        """Whether a session is up (a server that died is noticed when its pipe or stream ends)."""
        return self._session is not None and self._session.usable and self._session.settled.is_set()

    @property
    def source(self) -> str:
        return f"mcp:{self.name}"

    async def _started(self) -> _Session:
        async with self._lock:
            session = self._session
            if session is None or not session.usable:
                if session is not None and session.task is not None:
                    await asyncio.wait({session.task}, timeout=10)  # the dead one is reaped first
                session = self._session = _Session()
                session.task = asyncio.create_task(self._hold(session), name=f"mcp {self.name}")
        try:
            async with asyncio.timeout(self.start_timeout):
                await session.settled.wait()
        except TimeoutError:
            session.ended.set()
            raise ToolError(
                f"MCP server {self.name} did not start within {self.start_timeout:g} s",
                code="server_unavailable",
            ) from None
        if session.error is not None or session.client is None:
            raise ToolError(
                f"MCP server {self.name} cannot start: {session.error}", code="server_unavailable"
            )
        return session

    async def _hold(self, session: _Session) -> None:
        """The session's whole life, in this one task: connect, list tools, wait for the end."""
        try:
            async with AsyncExitStack() as stack:
                transport = await self._transport(stack)
                client = Client(_watched(transport, session.ended), client_info=CLIENT)
                await stack.enter_async_context(client)
                session.tools = await _list(client)
                session.client = client
                session.settled.set()
                await session.ended.wait()
        except Exception as error:  # the SDK raises many kinds (OSError, groups, HTTP errors)
            session.failure = _innermost(error)
            if not session.settled.is_set():
                session.error = _describe(error)
                cause = _innermost(error)
                if isinstance(cause, MCPError) and cause.code == CONNECTION_CLOSED:
                    session.error = (
                        "it closed the connection during the handshake (a command that exited: "
                        "its error output is in Gapless's own stderr)"
                    )
            logger.warning("MCP server %s: %s", self.name, _describe(error))
        finally:
            session.ended.set()
            if not session.settled.is_set():
                session.error = session.error or "stopped"
                session.settled.set()

    def _tool(self, remote: RemoteTool) -> McpTool:
        hints = remote.annotations
        return McpTool(
            name=f"{self.name}.{remote.name}",
            description=remote.description or remote.name,
            schema=remote.input_schema,
            destructive=bool(hints and hints.destructive_hint is True),
            connection=self,
            remote_name=remote.name,
        )

    async def _transport(self, stack: AsyncExitStack) -> Transport:
        server = self.server
        if server.url:
            http = await stack.enter_async_context(
                httpx2.AsyncClient(
                    headers=server.headers, timeout=httpx2.Timeout(30, read=300)
                )
            )
            return streamable_http_client(server.url, http_client=http)
        if not server.command:
            raise ValueError("neither a command nor a url is configured")
        return stdio_client(
            StdioServerParameters(command=server.command, args=list(server.args), env=server.env)
        )


def answer(result: CallToolResult) -> JSON:
    """A result as the tool's output: structured content if any, else its text, else its blocks;
    `isError` raised as ToolError."""
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    if result.is_error:
        raise ToolError("\n".join(texts) or "the tool failed", code="tool_error")
    if result.structured_content is not None:
        return result.structured_content  # type: ignore[no-any-return]
    if len(texts) == len(result.content):
        return "\n".join(texts)
    return [b.model_dump(mode="json", by_alias=True, exclude_none=True) for b in result.content]


@asynccontextmanager
async def _watched(transport: Transport, ended: asyncio.Event) -> AsyncIterator[TransportStreams]:
    """`transport`, with `ended` set once its read side ends (the server died or hung up):
    the SDK's session offers no such signal, and an idle dead server must be restarted
    before a call is sent to it, not after."""
    async with transport as (read, write):
        send, receive = anyio.create_memory_object_stream[SessionMessage | Exception](0)

        async def pump() -> None:
            try:
                async with send:
                    async for item in read:
                        await send.send(item)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass
            finally:
                ended.set()

        async with anyio.create_task_group() as group:
            group.start_soon(pump)
            try:
                yield receive, write
            finally:
                group.cancel_scope.cancel()


async def _list(client: Client) -> list[RemoteTool]:
    tools: list[RemoteTool] = []
    cursor = None
    for _page in range(MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


def _innermost(error: BaseException) -> BaseException:
    """The first real error inside the exception groups the SDK's task groups wrap it in."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def _describe(error: BaseException) -> str:
    error = _innermost(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
