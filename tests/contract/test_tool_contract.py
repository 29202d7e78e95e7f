"""One contract for every kind of tool: a Python function, each built-in, an MCP server's
tool over stdio and over Streamable HTTP. Each must describe itself well (a name, a
description, a JSON schema its meta-schema accepts), answer a valid call with JSON, and
refuse a call it cannot serve with ToolError, never any other exception."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import jsonschema
import pytest
from pydantic import Field

from gapless.agents.builtins import builtins
from gapless.agents.fetch import fetch_tool
from gapless.agents.functions import tool
from gapless.agents.mcp import McpConnection
from gapless.agents.tools import Tool, ToolContext, ToolError
from gapless.db import accounts as db_accounts
from gapless.db import chats as db_chats
from gapless.db import engine as db_engine
from gapless.db.search import searcher
from tests.support.mcp_setup import Files, HttpServer, stdio

NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)?$")


@dataclass
class Case:
    """A tool, arguments it serves, arguments it refuses, and the context calls run in."""

    tool: Tool
    valid: dict[str, Any]
    refused: list[dict[str, Any]]
    context: ToolContext = field(
        default_factory=lambda: ToolContext("u", None, "chat", "message")
    )


def repeat(text: Annotated[str, Field(description="What to repeat")], times: int = 2) -> str:
    """Repeat a text."""
    if times < 0:
        raise ValueError("times must not be negative")
    return text * times


async def _function(_stack: AsyncExitStack, _path: Path) -> Case:
    return Case(tool(repeat), {"text": "ab", "times": 3}, [{"text": "x", "times": -1}, {}])


async def _calculator(_stack: AsyncExitStack, _path: Path) -> Case:
    calculator = builtins()["calculator"]
    return Case(calculator, {"expression": "2 ** 10 / 4"}, [{"expression": "1/0"},
                                                            {"expression": "import os"}, {}])


async def _current_time(_stack: AsyncExitStack, _path: Path) -> Case:
    return Case(builtins()["current_time"], {"zone": "Europe/Berlin"}, [{"zone": "Nowhere/X"},
                                                                        {"zone": 5}])


async def _search_chats(stack: AsyncExitStack, path: Path) -> Case:
    engine = db_engine.create(f"sqlite:///{path / 'contract.db'}")
    stack.push_async_callback(engine.dispose)
    await db_engine.migrate(engine)
    account = await db_accounts.create_account(engine, "a")
    chat = await db_chats.create_chat(engine, account, "Notes", "demo:default", "")
    await db_chats.create_exchange(engine, chat["id"], db_chats.MISSING, "buy milk", "demo:x")
    accounts = frozenset([account])
    context = ToolContext("u", accounts, "chat", "message", searcher(engine, accounts))
    return Case(builtins()["search_chats"], {"query": "MILK"}, [{"query": ""},
                                                               {"query": "x", "limit": 0}],
                context)


async def _fetch(stack: AsyncExitStack, _path: Path) -> Case:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 12\r\nConnection: close\r\n\r\n{\"ok\": true}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    stack.push_async_callback(server.wait_closed)
    stack.callback(server.close)
    port = server.sockets[0].getsockname()[1]
    fetch = fetch_tool(("127.0.0.1",), private=True, max_bytes=10_000, timeout=10)
    return Case(fetch, {"url": f"http://127.0.0.1:{port}/"},
                [{"url": "http://example.org/"}, {"url": "file:///etc/passwd"}])


async def _mcp_stdio(stack: AsyncExitStack, path: Path) -> Case:
    connection = McpConnection(stdio("local", Files(path / "stdio")), start_timeout=30)
    stack.push_async_callback(connection.close)
    add = await connection.resolve("local.add")
    assert add is not None
    return Case(add, {"a": 2, "b": 3}, [{"a": "two", "b": 3}, {}])


async def _mcp_http(stack: AsyncExitStack, path: Path) -> Case:
    server = HttpServer(Files(path / "http"))
    server.start()
    stack.callback(server.close)
    connection = McpConnection(server.settings("remote"), start_timeout=30)
    stack.push_async_callback(connection.close)
    echo = await connection.resolve("remote.echo")
    assert echo is not None
    return Case(echo, {"text": "hello"}, [{"text": 5}, {}])


KINDS: dict[str, Callable[[AsyncExitStack, Path], Awaitable[Case]]] = {
    "function": _function,
    "calculator": _calculator,
    "current_time": _current_time,
    "search_chats": _search_chats,
    "fetch": _fetch,
    "mcp_stdio": _mcp_stdio,
    "mcp_http": _mcp_http,
}


@pytest.fixture(params=sorted(KINDS))
async def case(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Case]:
    async with AsyncExitStack() as stack:
        yield await KINDS[request.param](stack, tmp_path)


def test_a_tool_describes_itself_with_a_name_a_description_and_a_valid_json_schema(
    case: Case,
) -> None:
    tool = case.tool
    assert isinstance(tool.name, str) and NAME.match(tool.name) and len(tool.name) <= 64
    assert isinstance(tool.description, str) and tool.description.strip()
    assert isinstance(tool.destructive, bool)
    jsonschema.validators.validator_for(tool.schema).check_schema(tool.schema)
    assert tool.schema.get("type") == "object"
    json.dumps(tool.schema)  # sent to providers as JSON


async def test_a_valid_call_answers_json_serialisable_data(case: Case) -> None:
    jsonschema.validate(case.valid, case.tool.schema)
    answer = await case.tool.call(case.valid, case.context)
    assert json.loads(json.dumps(answer)) == answer


async def test_a_call_the_tool_refuses_raises_tool_error_and_nothing_else(case: Case) -> None:
    for arguments in case.refused:
        with pytest.raises(ToolError) as raised:
            await case.tool.call(arguments, case.context)
        assert isinstance(raised.value.code, str) and raised.value.code
        assert isinstance(raised.value.message, str) and raised.value.message
