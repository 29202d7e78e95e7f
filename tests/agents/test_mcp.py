"""MCP servers through the SDK, against a real server written with the SDK's server API
(tests/support/mcp_server.py), over stdio (a subprocess the client starts) and over
Streamable HTTP (a uvicorn process the test starts)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable

import pytest

from gapless.agents.builtins import builtins
from gapless.agents.mcp import McpConnection
from gapless.agents.toolbox import Toolbox
from gapless.agents.tools import ToolContext, ToolError
from gapless.config import McpServer
from tests.support.mcp_setup import Files, HttpServer, stdio, until

CONTEXT = ToolContext(user_id="u", account_ids=None, chat_id="c", message_id="m")


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[McpServer], McpConnection]]:
    made: list[McpConnection] = []

    def make(server: McpServer) -> McpConnection:
        made.append(McpConnection(server, start_timeout=30))
        return made[-1]

    yield make
    for connection in made:
        await connection.close()


@pytest.fixture(params=["stdio", "http"])
def server(request: pytest.FixtureRequest, files: Files) -> McpServer:
    if request.param == "http":
        http: HttpServer = request.getfixturevalue("http_server")
        return http.settings("test")
    return stdio("test", files)


async def test_tools_are_named_after_their_server_with_schema_and_destructive_hint(
    server: McpServer, connect: Callable[[McpServer], McpConnection]
) -> None:
    tools = {t.name: t for t in await connect(server).tools()}
    names = {"test.echo", "test.add", "test.fail", "test.die", "test.bump", "test.slow"}
    assert names <= set(tools)
    assert tools["test.add"].description == "Add two integers."
    assert tools["test.add"].schema["properties"].keys() == {"a", "b"}
    assert tools["test.bump"].destructive is True
    assert tools["test.add"].destructive is False


async def test_a_call_answers_the_tool_result(
    server: McpServer, connect: Callable[[McpServer], McpConnection]
) -> None:
    connection = connect(server)
    add = await connection.resolve("test.add")
    assert add is not None
    assert await add.call({"a": 2, "b": 40}, CONTEXT) == {"result": 42}
    echo = await connection.resolve("test.echo")
    assert echo is not None
    assert await echo.call({"text": "hi"}, CONTEXT) == {"result": "hi"}
    assert await connection.resolve("test.missing") is None
    assert await connection.resolve("other.add") is None


async def test_an_is_error_result_is_a_tool_error_with_its_text(
    server: McpServer, connect: Callable[[McpServer], McpConnection]
) -> None:
    fail = await connect(server).resolve("test.fail")
    assert fail is not None
    with pytest.raises(ToolError) as raised:
        await fail.call({"message": "the disk is full"}, CONTEXT)
    assert raised.value.code == "tool_error"
    assert "the disk is full" in raised.value.message


async def test_a_stdio_server_gets_its_configured_env_and_none_of_the_service_s_secrets(
    files: Files, connect: Callable[[McpServer], McpConnection], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GAPLESS_OPENAI_API_KEY", "sk-secret")
    getenv = await connect(stdio("test", files)).resolve("test.getenv")
    assert getenv is not None
    assert await getenv.call({"name": "GAPLESS_OPENAI_API_KEY"}, CONTEXT) == {"result": ""}
    count = await getenv.call({"name": "GAPLESS_MCP_COUNT"}, CONTEXT)
    assert count == {"result": str(files.count)}
    assert (await getenv.call({"name": "PATH"}, CONTEXT)) != {"result": ""}


async def test_an_http_server_receives_the_configured_headers(
    http_server: HttpServer, connect: Callable[[McpServer], McpConnection]
) -> None:
    settings = http_server.settings("test", headers={"Authorization": "Bearer t0ken"})
    header = await connect(settings).resolve("test.header")
    assert header is not None
    answer = await header.call({"name": "Authorization"}, CONTEXT)
    assert answer == {"result": "Bearer t0ken"}


async def test_a_server_starts_on_first_use_and_only_once(
    files: Files, connect: Callable[[McpServer], McpConnection]
) -> None:
    connection = connect(stdio("test", files))
    assert files.pids() == []  # configured, not started
    add = await connection.resolve("test.add")
    assert add is not None
    await asyncio.gather(*(add.call({"a": i, "b": 1}, CONTEXT) for i in range(5)))
    await connection.tools()
    assert len(files.pids()) == 1


async def test_calls_to_one_server_run_in_parallel(
    server: McpServer, files: Files, connect: Callable[[McpServer], McpConnection]
) -> None:
    connection = connect(server)
    slow, add = await connection.resolve("test.slow"), await connection.resolve("test.add")
    assert slow is not None and add is not None
    waiting = asyncio.create_task(slow.call({"key": "p"}, CONTEXT))
    await until((files.gates / "p.started").exists)
    assert await add.call({"a": 1, "b": 1}, CONTEXT) == {"result": 2}  # while slow waits
    assert not waiting.done()
    (files.gates / "p.open").touch()
    assert await waiting == {"result": "opened"}


async def test_a_call_its_caller_gives_up_on_is_cancelled_on_the_server_which_stays_usable(
    server: McpServer, files: Files, connect: Callable[[McpServer], McpConnection]
) -> None:
    connection = connect(server)
    slow, add = await connection.resolve("test.slow"), await connection.resolve("test.add")
    assert slow is not None and add is not None
    waiting = asyncio.create_task(slow.call({"key": "c"}, CONTEXT))
    await until((files.gates / "c.started").exists)
    waiting.cancel()  # what the job's per-tool time-out does
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await until((files.gates / "c.cancelled").exists)
    assert await add.call({"a": 2, "b": 2}, CONTEXT) == {"result": 4}
    assert len(files.pids()) == 1  # the same process throughout


async def test_a_stdio_server_dying_mid_call_fails_that_call_and_the_next_call_restarts_it(
    files: Files, connect: Callable[[McpServer], McpConnection]
) -> None:
    connection = connect(stdio("test", files))
    die, bump = await connection.resolve("test.die"), await connection.resolve("test.bump")
    assert die is not None and bump is not None
    assert await bump.call({}, CONTEXT) == {"result": 1}
    with pytest.raises(ToolError) as raised:
        await die.call({}, CONTEXT)
    assert raised.value.code == "server_died"
    assert await bump.call({}, CONTEXT) == {"result": 2}  # a new process
    assert len(files.pids()) == 2
    assert files.bumps() == 2  # nothing ran twice


async def test_a_stdio_server_that_died_while_idle_is_restarted_before_the_next_call(
    files: Files, connect: Callable[[McpServer], McpConnection]
) -> None:
    connection = connect(stdio("test", files))
    bump = await connection.resolve("test.bump")
    assert bump is not None
    assert await bump.call({}, CONTEXT) == {"result": 1}
    assert connection.running
    os.kill(files.pids()[0], 9)
    await until(lambda: not _alive(files.pids()[0]))
    await until(lambda: not connection.running)
    assert await bump.call({}, CONTEXT) == {"result": 2}
    assert len(files.pids()) == 2


async def test_an_http_server_dying_mid_call_fails_that_call_and_a_restarted_one_serves_the_next(
    files: Files, http_server: HttpServer, connect: Callable[[McpServer], McpConnection]
) -> None:
    connection = connect(http_server.settings("test"))
    die, bump = await connection.resolve("test.die"), await connection.resolve("test.bump")
    assert die is not None and bump is not None
    assert await bump.call({}, CONTEXT) == {"result": 1}
    with pytest.raises(ToolError) as raised:
        await die.call({}, CONTEXT)
    assert raised.value.code == "server_died"
    http_server.stop()
    http_server.start()  # the operator (here, the test) brings it back on the same URL
    assert await bump.call({}, CONTEXT) == {"result": 2}
    assert files.bumps() == 2


async def test_an_http_server_gone_while_idle_is_unreachable_not_dead_mid_call(
    files: Files, http_server: HttpServer, connect: Callable[[McpServer], McpConnection]
) -> None:
    connection = connect(http_server.settings("test"))
    bump = await connection.resolve("test.bump")
    assert bump is not None
    assert await bump.call({}, CONTEXT) == {"result": 1}
    http_server.close()  # process and socket: connections are refused now
    with pytest.raises(ToolError) as raised:
        await bump.call({}, CONTEXT)
    assert raised.value.code == "server_unavailable"  # the call never reached it
    assert files.bumps() == 1


async def test_a_server_that_cannot_start_leaves_the_other_tools_working(
    files: Files, http_server: HttpServer
) -> None:
    broken = McpServer(name="broken", command="/nonexistent/mcp-server")
    unreachable = McpServer(name="gone", url="http://127.0.0.1:9/mcp")
    toolbox = Toolbox(
        local=[(builtins()["calculator"], "builtin")],
        servers=[
            McpConnection(broken, start_timeout=20),
            McpConnection(unreachable, start_timeout=20),
            McpConnection(stdio("good", files), start_timeout=30),
            McpConnection(http_server.settings("web"), start_timeout=30),
        ],
    )
    try:
        listed = {i.name: i for i in await toolbox.available()}
        assert listed["broken.*"].error and "cannot start" in listed["broken.*"].error
        assert listed["gone.*"].error
        assert listed["good.add"].error is None and listed["web.add"].error is None
        assert listed["calculator"].source == "builtin"
        assert listed["good.bump"].source == "mcp:good" and listed["good.bump"].destructive

        tools = await toolbox.resolve(
            ["broken.anything", "good.add", "web.add", "calculator", "nowhere.x", "unknown"]
        )
        assert set(tools) == {"broken.anything", "good.add", "web.add", "calculator"}
        with pytest.raises(ToolError) as raised:
            await tools["broken.anything"].call({}, CONTEXT)
        assert raised.value.code == "server_unavailable"
        assert "/nonexistent/mcp-server" in raised.value.message
        assert await tools["good.add"].call({"a": 1, "b": 2}, CONTEXT) == {"result": 3}
        assert await tools["web.add"].call({"a": 1, "b": 2}, CONTEXT) == {"result": 3}
        assert (await tools["calculator"].call({"expression": "6*7"}, CONTEXT))["result"] == 42
    finally:
        await toolbox.close()


async def test_closing_stops_the_server_process(
    files: Files, connect: Callable[[McpServer], McpConnection]
) -> None:
    connection = connect(stdio("test", files))
    await connection.tools()
    [pid] = files.pids()
    await connection.close()
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) still answers: read its state.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
