"""Tool calls as a person sees them: one card per call, live, in every tab, inert.

The scripted model makes exact tool calls and is held at gates; the test kit's
`gated` tool runs until the test opens its gate, and `flood` answers its text
many times over (a text output, cut at the server's output cap). Nothing waits
on a timer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page, expect

from gapless.providers.base import Finish
from tests.browser import agents_fixtures as fixtures
from tests.browser.agents_fixtures import AgentApi
from tests.browser.conftest import assistant, screenshot, shown, wait_final
from tests.support.scripted import Args, End, Gate, Start
from tests.support.server import LiveServer

mcp_files, tool_server, tool_api = fixtures.mcp_files, fixtures.tool_server, fixtures.tool_api
tool_state, tool_context, open_tab = fixtures.tool_state, fixtures.tool_context, fixtures.open_tab

# Every (status, arguments text) a tool card showed, per card, in order.
CARD_RECORDER = """
window.__cards = {};
new MutationObserver(() => {
  for (const el of document.querySelectorAll('.tool-card[data-tool]')) {
    const seen = (window.__cards[el.dataset.tool] ||= []);
    const now = [el.dataset.status, el.querySelector('.tool-args code').textContent];
    const last = seen.at(-1);
    if (!last || last[0] !== now[0] || last[1] !== now[1]) seen.push(now);
  }
}).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
"""


# Counts the nodes and texts redrawn under an element from now on.
UNTOUCHED = """el => {
  el.__mutations = 0;
  new MutationObserver((changes) => (el.__mutations += changes.length))
    .observe(el, {subtree: true, childList: true, characterData: true});
}"""


def call(call_id: str, name: str, *pieces: Any) -> tuple[Any, ...]:
    """A tool call as the model streams it: start, argument pieces (or gates), end."""
    steps = [piece if isinstance(piece, Gate) else Args(call_id, piece) for piece in pieces]
    return (Start(call_id, name), *steps, End(call_id))


def card(page: Page, reply: str, call_id: str) -> Any:
    return assistant(page, reply).locator(f'.tool-card[data-tool="{call_id}"]')


def args_text(page: Page, reply: str, call_id: str) -> str:
    return card(page, reply, call_id).locator(".tool-args code").evaluate("e => e.textContent")


def assert_parts_match(page: Page, server: LiveServer, reply: str) -> dict[str, Any]:
    """The page's parts are the database's, and it shows one card per tool part."""
    stored = server.message(reply)
    assert shown(page, reply)["parts"] == stored["parts"]
    tools = [p for p in stored["parts"] if p["type"] == "tool"]
    expect(assistant(page, reply).locator(".tool-card")).to_have_count(len(tools))
    return stored


def test_a_tool_card_streams_its_arguments_then_shows_its_status_and_output(
    open_tab: Callable[[str], Page], tool_server: LiveServer, tool_api: AgentApi
) -> None:
    gate = Gate()
    tool_server.script(
        "Let me work that out.",
        *call("call_1", "calculator", '{"expression": ', gate, '"6 * 7"}'),
        Finish("tool_calls"),
    )
    tool_server.script("The answer is **42**.")
    chat = tool_api.agent_chat("Arithmetic", tools=["calculator"], approval={"calculator": "never"})
    page = open_tab(f"/chats/{chat['id']}")
    page.evaluate(CARD_RECORDER)
    sent = tool_api.send(chat["id"], "What is 6 times 7?")
    reply = sent["assistant_message"]["id"]
    question = page.locator(f'.msg.user[data-id="{sent["user_message"]["id"]}"]')
    question.evaluate(UNTOUCHED)
    try:
        assert gate.reached.wait(30)
        tool = card(page, reply, "call_1")
        expect(tool).to_have_attribute("data-status", "input")
        expect(tool.locator(".tool-name")).to_have_text("calculator")
        expect(tool.locator(".tool-status")).to_have_text("Preparing…")
        expect(tool.locator(".tool-args code")).to_have_text('{"expression":')
        assert args_text(page, reply, "call_1") == '{"expression": '  # raw, as streamed
        expect(assistant(page, reply).locator(".step-text").first).to_have_text(
            "Let me work that out."
        )
        screenshot(page, "tool-card-streaming")
    finally:
        gate.set()
    wait_final(page, reply)
    tool = card(page, reply, "call_1")
    expect(tool).to_have_attribute("data-status", "complete")
    expect(tool.locator(".tool-status")).to_have_text("Done")
    assert args_text(page, reply, "call_1") == '{\n  "expression": "6 * 7"\n}'  # formatted
    output = tool.locator(".tool-output")
    expect(output.locator(".tool-output-summary")).to_contain_text("42")
    output.locator("summary").click()
    # a JSON output is shown as formatted JSON
    expect(output.locator(".tool-output-body pre code")).to_contain_text('"result": 42')
    expect(assistant(page, reply).locator(".step-text").last).to_have_text("The answer is 42.")
    expect(assistant(page, reply).locator(".step-text strong")).to_have_text("42")
    stored = assert_parts_match(page, tool_server, reply)
    assert [p["type"] for p in stored["parts"]] == ["text", "tool", "text"]
    screenshot(page, "tool-card-complete")
    history = page.evaluate("window.__cards['call_1']")
    streamed = [text for status, text in history if status == "input"]
    assert streamed, "the arguments were never shown while streaming"
    for text in streamed:
        assert '{"expression": "6 * 7"}'.startswith(text), f"not a prefix: {text!r}"
    statuses = [s for i, (s, _) in enumerate(history) if i == 0 or s != history[i - 1][0]]
    assert len(statuses) == len(set(statuses))  # the status only moved forward
    assert statuses[0] == "input" and statuses[-1] == "complete"
    assert question.evaluate("el => el.__mutations") == 0  # only the reply redrew


def test_a_reload_mid_call_shows_the_same_card_once_and_it_converges(
    open_tab: Callable[[str], Page], tool_server: LiveServer, tool_api: AgentApi
) -> None:
    gate = Gate()
    tool_server.script(
        *call("call_g", "gated", '{"text": ', gate, '"through"}'), Finish("tool_calls")
    )
    tool_server.script("The gate opened.")
    kit = tool_server.kit
    kit.reached.clear()
    kit.opened.clear()
    chat = tool_api.agent_chat("Reload mid-call", tools=["gated"])
    page = open_tab(f"/chats/{chat['id']}")
    tool_server.flush_gate.clear()  # the database copy lags the log from here
    try:
        reply = tool_api.send(chat["id"], "Go through the gate")["assistant_message"]["id"]
        assert gate.reached.wait(30)
        expect(card(page, reply, "call_g").locator(".tool-args code")).to_have_text('{"text":')
        page.reload()  # in the middle of the arguments, before the debounced write
        expect(card(page, reply, "call_g")).to_have_attribute("data-status", "input")
        assert args_text(page, reply, "call_g") == '{"text": '
        expect(assistant(page, reply).locator(".tool-card")).to_have_count(1)
    finally:
        tool_server.flush_gate.set()
        gate.set()
    try:
        assert kit.reached.wait(30)  # the tool is running, held at its gate
        expect(card(page, reply, "call_g")).to_have_attribute("data-status", "running")
        page.reload()  # while the tool runs
        tool = card(page, reply, "call_g")
        expect(tool).to_have_attribute("data-status", "running")
        expect(tool.locator(".tool-status")).to_have_text("Running…")
        assert args_text(page, reply, "call_g") == '{\n  "text": "through"\n}'
        expect(assistant(page, reply).locator(".tool-card")).to_have_count(1)
        screenshot(page, "tool-card-running-after-reload")
    finally:
        kit.opened.set()
    wait_final(page, reply)
    expect(tool).to_have_attribute("data-status", "complete")
    expect(tool.locator(".tool-output-summary")).to_contain_text("through")
    expect(assistant(page, reply).locator(".step-text")).to_have_text("The gate opened.")
    assert kit.calls["gated"] >= 1
    assert_parts_match(page, tool_server, reply)


def test_approve_in_one_tab_runs_the_tool_and_the_other_tab_shows_it(
    open_tab: Callable[[str], Page], tool_server: LiveServer, tool_api: AgentApi
) -> None:
    tool_server.script(
        "I need your approval.",
        *call("call_a", "echo", '{"text": ', '"approved run"}'),
        Finish("tool_calls"),
    )
    tool_server.script("Echoed.")
    chat = tool_api.agent_chat("Approval", tools=["echo"], approval={"echo": "always"})
    first = open_tab(f"/chats/{chat['id']}")
    second = open_tab(f"/chats/{chat['id']}")
    reply = tool_api.send(chat["id"], "Echo something")["assistant_message"]["id"]
    for page in (first, second):
        tool = card(page, reply, "call_a")
        expect(tool).to_have_attribute("data-status", "awaiting_approval")
        expect(tool.get_by_role("button", name="Approve")).to_be_visible()
        expect(assistant(page, reply)).to_have_attribute("data-status", "requires_action")
        expect(page.locator("#stop")).to_be_visible()  # stop works while it waits
    screenshot(second, "tool-card-awaiting-approval")
    second.reload()  # a tab opened while the call waits shows the same, once
    expect(card(second, reply, "call_a").get_by_role("button", name="Approve")).to_be_visible()
    expect(assistant(second, reply).locator(".tool-card")).to_have_count(1)
    card(first, reply, "call_a").get_by_role("button", name="Approve").click()
    wait_final(second, reply)
    tool = card(second, reply, "call_a")
    expect(tool).to_have_attribute("data-status", "complete")
    expect(tool.locator(".tool-approval")).to_be_hidden()
    expect(tool.locator(".tool-output-summary")).to_contain_text("approved run")
    expect(assistant(second, reply).locator(".step-text").last).to_have_text("Echoed.")
    wait_final(first, reply)
    expect(card(first, reply, "call_a").locator(".tool-approval")).to_be_hidden()
    for page in (first, second):
        assert_parts_match(page, tool_server, reply)


def test_deny_ends_the_call_denied_and_the_reply_goes_on(
    open_tab: Callable[[str], Page], tool_server: LiveServer, tool_api: AgentApi
) -> None:
    tool_server.script(*call("call_d", "danger", '{"text": "rm -rf"}'), Finish("tool_calls"))
    tool_server.script("Understood, I did not run it.")
    chat = tool_api.agent_chat("Deny", tools=["danger"])  # destructive: approval by default
    page = open_tab(f"/chats/{chat['id']}")
    before = tool_server.kit.calls["danger"]
    reply = tool_api.send(chat["id"], "Do the dangerous thing")["assistant_message"]["id"]
    card(page, reply, "call_d").get_by_role("button", name="Deny").click()
    wait_final(page, reply)
    tool = card(page, reply, "call_d")
    expect(tool).to_have_attribute("data-status", "denied")
    expect(tool.locator(".tool-status")).to_have_text("Denied")
    expect(tool.locator(".tool-approval")).to_be_hidden()
    expect(assistant(page, reply).locator(".step-text").last).to_have_text(
        "Understood, I did not run it."
    )
    assert tool_server.kit.calls["danger"] == before  # the tool never ran
    assert_parts_match(page, tool_server, reply)


HOSTILE = (
    "# Result\n\n"
    '<img src=x onerror="window.__pwned = 1">\n\n'
    "[click me](javascript:window.__pwned=2) and <script>window.__pwned = 3</script>\n\n"
    '<a href="javascript:window.__pwned=4">raw link</a> '
    "![pixel](https://example.invalid/pixel.png)"
)
HOSTILE_ERROR = '<img src=x onerror="window.__pwned=6">'
HOSTILE_JSON = '{"html": "<img src=x onerror=window.__pwned=5>", "n": [1, 2]}'


def test_a_hostile_tool_output_renders_inert(
    open_tab: Callable[[str], Page], tool_server: LiveServer, tool_api: AgentApi
) -> None:
    tool_server.script(
        *call("call_h", "flood", json.dumps({"text": HOSTILE + "\n\n"})),
        *call("call_j", "echo", json.dumps({"text": HOSTILE_JSON})),
        *call("call_f", "boom", json.dumps({"text": HOSTILE_ERROR})),
        Finish("tool_calls"),
    )
    tool_server.script("Done.")
    chat = tool_api.agent_chat("Hostile", tools=["flood", "echo", "boom"])
    page = open_tab(f"/chats/{chat['id']}")
    reply = tool_api.send(chat["id"], "Render this")["assistant_message"]["id"]
    wait_final(page, reply)
    for call_id in ("call_h", "call_j"):
        card(page, reply, call_id).locator(".tool-output summary").click()
    hostile = card(page, reply, "call_h")
    body = hostile.locator(".tool-output-body")
    expect(body.locator("h1").first).to_have_text("Result")  # a text output is Markdown
    expect(body).to_contain_text('<img src=x onerror="window.__pwned = 1">')  # HTML as text
    expect(body.locator("img, script, iframe")).to_have_count(0)
    for link in body.locator("a").all():
        href = link.get_attribute("href")
        assert href is None or href.startswith("https:"), href
    body.get_by_text("click me").first.click()
    json_body = card(page, reply, "call_j").locator(".tool-output-body")
    expect(json_body.locator("pre code")).to_contain_text('"echo": ')  # a JSON output as code
    expect(json_body.locator("pre code")).to_contain_text("<img src=x onerror=window.__pwned=5>")
    expect(json_body.locator("img")).to_have_count(0)
    failed = card(page, reply, "call_f")
    expect(failed).to_have_attribute("data-status", "failed")
    expect(failed.locator(".tool-error")).to_contain_text(HOSTILE_ERROR)
    expect(assistant(page, reply).locator("img")).to_have_count(0)
    assert page.evaluate("window.__pwned") is None
    screenshot(page, "tool-output-hostile")
    assert_parts_match(page, tool_server, reply)


def test_stop_while_a_call_awaits_approval_ends_the_reply_and_the_call(
    open_tab: Callable[[str], Page], tool_server: LiveServer, tool_api: AgentApi
) -> None:
    tool_server.script("Shall I?", *call("call_x", "danger", '{"text": "x"}'), Finish("tool_calls"))
    chat = tool_api.agent_chat("Stop while waiting", tools=["danger"])
    page = open_tab(f"/chats/{chat['id']}")
    before = tool_server.kit.calls["danger"]
    reply = tool_api.send(chat["id"], "Maybe")["assistant_message"]["id"]
    expect(card(page, reply, "call_x")).to_have_attribute("data-status", "awaiting_approval")
    page.get_by_role("button", name="Stop generating").click()
    wait_final(page, reply, "cancelled")
    tool = card(page, reply, "call_x")
    expect(tool).not_to_have_attribute("data-status", "awaiting_approval")
    expect(tool.locator(".tool-approval")).to_be_hidden()
    expect(assistant(page, reply).locator(".stopped")).to_have_text("Stopped")
    expect(page.locator("#send")).to_be_visible()  # the composer is free again
    assert tool_server.kit.calls["danger"] == before
    assert_parts_match(page, tool_server, reply)
