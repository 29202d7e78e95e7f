"""Fixtures of the agent and tool-call browser tests: a server with tools.

Its toolbox is the built-ins, the test MCP server (`tests/support/mcp_server.py`)
over stdio as `t` (`t.echo`, `t.fail`, `t.slow`, ...), and a server `broken`
whose command does not exist, so the agents page has an error to show. The
model is the scripted one, so a test says exactly which tool calls it makes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from gapless.config import McpServer
from tests.browser.conftest import Api, new_context, sign_in
from tests.support.mcp_setup import Files, stdio
from tests.support.server import LiveServer

# Two cores shared with other test runs: give the page more than Playwright's 5 s to catch up.
expect.set_options(timeout=15_000)

BROKEN = McpServer(name="broken", command="/nonexistent/gapless-test-mcp-server")


class AgentApi(Api):
    """The API as a program uses it, with agents."""

    def agent(self, name: str = "Helper", **fields: Any) -> dict[str, Any]:
        body = {"name": name, "instructions": "Use your tools.", "model": "scripted:default"}
        return self.call("POST", "/api/agents", json=body | fields)

    def agent_chat(self, title: str, **agent: Any) -> dict[str, Any]:
        """A new chat whose agent has these fields (tools, approval, ...)."""
        return self.chat(title, agent_id=self.agent(**agent)["id"])


@pytest.fixture(scope="module")
def mcp_files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    return Files(tmp_path_factory.mktemp("mcp"))


@pytest.fixture(scope="module")
def tool_server(make_server: Callable[..., LiveServer], mcp_files: Files) -> LiveServer:
    # a small output cap: the kit's `flood` answers a text output of a readable size
    settings = {"mcp_servers": (stdio("t", mcp_files), BROKEN), "tool_output_max": 4_000}
    return make_server(settings=settings)


@pytest.fixture
def tool_api(tool_server: LiveServer) -> Iterator[AgentApi]:
    client = AgentApi(tool_server)
    yield client
    client.http.close()


@pytest.fixture(scope="module")
def tool_state(browser: Browser, tool_server: LiveServer) -> Any:
    context = browser.new_context()
    sign_in(context, tool_server)
    state = context.storage_state()
    context.close()
    return state


@pytest.fixture
def tool_context(
    browser: Browser, tool_server: LiveServer, tool_state: Any
) -> Iterator[BrowserContext]:
    context = new_context(browser, tool_server, tool_state)
    yield context
    context.close()


@pytest.fixture
def open_tab(
    tool_context: BrowserContext, tool_server: LiveServer
) -> Iterator[Callable[..., Page]]:
    """Open signed-in tabs; none may raise an error or load anything from elsewhere."""
    errors: list[str] = []
    foreign: list[str] = []

    def open_tab(path: str) -> Page:
        page = tool_context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on(
            "request",
            lambda request: (
                None
                if request.url.startswith((tool_server.url, "data:"))
                else foreign.append(request.url)
            ),
        )
        page.goto(path)
        return page

    yield open_tab
    assert errors == [], f"uncaught errors in the page: {errors}"
    assert foreign == [], f"requests to other origins: {foreign}"
