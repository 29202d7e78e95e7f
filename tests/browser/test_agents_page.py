"""The agents page and the agent picker, used as a person uses them.

The server offers the built-in tools, the test MCP server's tools (`t.*`) and a
server that cannot start (`broken`), whose error the checklist must show.
"""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.browser import agents_fixtures as fixtures
from tests.browser.agents_fixtures import AgentApi
from tests.browser.conftest import screenshot
from tests.support.server import LiveServer

mcp_files, tool_server, tool_api = fixtures.mcp_files, fixtures.tool_server, fixtures.tool_api
tool_state, tool_context, open_tab = fixtures.tool_state, fixtures.tool_context, fixtures.open_tab

INSTRUCTIONS = "Answer with sources. Use the calculator for sums."
# The chat's agent as the server has it now (a page function: a promise of it).
AGENT_OF_CHAT = "async ([id]) => (await (await fetch(`/api/chats/${id}`)).json()).chat.agent_id"


def test_the_agents_page_creates_an_agent_with_tools_and_approval_edits_and_deletes_it(
    open_tab: Callable[[str], Page], tool_server: LiveServer, tool_api: AgentApi
) -> None:
    page = open_tab("/")
    page.get_by_role("link", name="Agents").click()
    expect(page).to_have_url(f"{tool_server.url}/agents")
    expect(page.locator("#page-title")).to_have_text("Agents")
    page.get_by_role("link", name="New agent").click()
    expect(page).to_have_url(f"{tool_server.url}/agents/new")

    page.get_by_label("Name", exact=True).fill("Researcher")
    page.get_by_label("Description", exact=True).fill("Looks things up")
    page.get_by_label("Instructions", exact=True).fill(INSTRUCTIONS)
    page.locator("#agent-model").select_option("scripted:default")
    page.get_by_label("Temperature", exact=True).fill("0.3")
    page.get_by_label("Max output tokens", exact=True).fill("500")
    page.get_by_label("Step limit", exact=True).fill("4")

    calculator = page.locator('.tool-row[data-tool="calculator"]')
    echo = page.locator('.tool-row[data-tool="t.echo"]')
    bump = page.locator('.tool-row[data-tool="t.bump"]')
    expect(calculator.locator(".tool-ask-first")).to_be_hidden()  # only for chosen tools
    calculator.locator(".tool-check").check()
    echo.locator(".tool-check").check()
    bump.locator(".tool-check").check()
    expect(calculator.locator(".approval-check")).not_to_be_checked()
    expect(bump.locator(".tool-risk")).to_be_visible()
    expect(bump.locator(".approval-check")).to_be_checked()  # destructive: asks by default
    echo.get_by_label("Ask before running t.echo", exact=True).check()
    broken = page.locator(".tool-row").filter(has=page.locator(".tool-broken:visible"))
    expect(broken).not_to_have_count(0)
    expect(broken.first).to_contain_text("broken")
    expect(broken.first.locator(".tool-check")).to_be_disabled()
    screenshot(page, "agent-editor")
    page.get_by_role("button", name="Save").click()

    expect(page).to_have_url(f"{tool_server.url}/agents")
    item = page.locator(".agent-item", has_text="Researcher")
    expect(item).to_contain_text("3 tools")
    screenshot(page, "agents-list")
    agents = tool_api.call("GET", "/api/agents")["agents"]
    (agent,) = [a for a in agents if a["name"] == "Researcher"]
    assert agent["description"] == "Looks things up"
    assert agent["instructions"] == INSTRUCTIONS
    assert agent["model"] == "scripted:default"
    assert agent["temperature"] == 0.3
    assert agent["max_tokens"] == 500
    assert agent["step_limit"] == 4
    assert sorted(agent["tools"]) == ["calculator", "t.bump", "t.echo"]
    assert agent["approval"] == {"calculator": "never", "t.bump": "always", "t.echo": "always"}

    item.locator(".agent-link").click()
    expect(page).to_have_url(f"{tool_server.url}/agents/{agent['id']}")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Researcher")
    expect(page.get_by_label("Step limit", exact=True)).to_have_value("4")
    expect(echo.locator(".approval-check")).to_be_checked()
    calculator.locator(".tool-check").uncheck()
    page.get_by_label("Step limit", exact=True).fill("6")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".agent-item", has_text="Researcher")).to_contain_text("2 tools")
    edited = tool_api.call("GET", f"/api/agents/{agent['id']}")
    assert edited["step_limit"] == 6
    assert sorted(edited["tools"]) == ["t.bump", "t.echo"]

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(".agent-item", has_text="Researcher").get_by_role(
        "button", name="Delete Researcher"
    ).click()
    expect(page.locator(".agent-item", has_text="Researcher")).to_have_count(0)
    names = [a["name"] for a in tool_api.call("GET", "/api/agents")["agents"]]
    assert "Researcher" not in names


def test_the_agent_picker_sets_the_chats_agent_and_a_new_chat_starts_with_it(
    open_tab: Callable[[str], Page], tool_server: LiveServer, tool_api: AgentApi
) -> None:
    agent = tool_api.agent("Calculator bot", tools=["calculator"])
    chat = tool_api.chat("Pick an agent")
    page = open_tab(f"/chats/{chat['id']}")
    picker = page.locator("#agent")
    expect(picker).to_have_value("")
    picker.select_option(label="Calculator bot")
    expect(page.locator("#toast")).to_be_hidden()
    page.wait_for_function(AGENT_OF_CHAT + " !== null", arg=[chat["id"]])
    assert tool_api.call("GET", f"/api/chats/{chat['id']}")["chat"]["agent_id"] == agent["id"]
    page.reload()
    expect(page.locator("#agent")).to_have_value(agent["id"])
    screenshot(page, "agent-picker")
    page.locator("#agent").select_option(label="No agent")
    page.wait_for_function(AGENT_OF_CHAT + " === null", arg=[chat["id"]])

    tool_server.script("Hello from the agent.")
    page.goto("/")
    page.locator("#agent").select_option(label="Calculator bot")
    page.locator("#prompt").fill("Start with an agent")
    page.locator("#prompt").press("Enter")
    expect(page.locator(".msg.assistant .content")).to_have_text("Hello from the agent.")
    chat_id = page.url.rsplit("/", 1)[1]
    assert tool_api.call("GET", f"/api/chats/{chat_id}")["chat"]["agent_id"] == agent["id"]
