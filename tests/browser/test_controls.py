"""Stop, retry, edit, the version switcher, copy, errors, and sending from the composer."""

from __future__ import annotations

import re

from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import Api, assert_gapless, assistant, screenshot, wait_final
from tests.support.scripted import Fail, Gate
from tests.support.server import LiveServer


def last_reply(page: Page) -> str:
    """The id of the newest assistant message on the page, once it exists."""
    reply = page.locator(".msg.assistant").last
    expect(reply).to_have_attribute("data-id", re.compile(r"^(?!local-).+"))
    return reply.get_attribute("data-id") or ""


def send_from_composer(page: Page, text: str) -> None:
    page.locator("#prompt").fill(text)
    page.locator("#prompt").press("Enter")


def test_stop_ends_a_streaming_reply_and_keeps_its_text(
    page: Page, server: LiveServer, api: Api
) -> None:
    gate = Gate()
    server.script("Counting: one, ", "two, ", gate, "three.")
    chat = api.chat("Stop")
    page.goto(f"/chats/{chat['id']}")
    send_from_composer(page, "Count to three")
    assert gate.reached.wait(30)
    reply = last_reply(page)
    expect(assistant(page, reply).locator(".content")).to_have_text("Counting: one, two,")
    expect(page.locator("#send")).to_be_hidden()
    page.locator("#stop").click()
    wait_final(page, reply, "cancelled")
    gate.set()
    expect(assistant(page, reply).locator(".stopped")).to_have_text("Stopped")
    expect(page.locator("#stop")).to_be_hidden()
    stored = assert_gapless(page, server, reply)
    assert stored["status"] == "cancelled"
    assert stored["content"] == "Counting: one, two, "


def test_retry_makes_a_sibling_and_the_switcher_moves_between_versions(
    page: Page, server: LiveServer, api: Api
) -> None:
    server.script("First answer.")
    chat = api.chat("Retry")
    first = api.send(chat["id"], "Question")["assistant_message"]["id"]
    page.goto(f"/chats/{chat['id']}")
    wait_final(page, first)
    server.script("Second answer.")
    assistant(page, first).get_by_role("button", name="Regenerate reply").click()
    reply = page.locator(".msg.assistant")
    expect(reply.locator(".content")).to_have_text("Second answer.")
    second = reply.get_attribute("data-id") or ""
    assert second != first
    wait_final(page, second)
    expect(reply.locator(".switcher-count")).to_have_text("2/2")
    reply.get_by_role("button", name="Previous version").click()
    expect(reply).to_have_attribute("data-id", first)
    expect(reply.locator(".content")).to_have_text("First answer.")
    expect(reply.locator(".switcher-count")).to_have_text("1/2")
    expect(reply.get_by_role("button", name="Previous version")).to_be_disabled()
    screenshot(page, "chat-versions")
    reply.get_by_role("button", name="Next version").click()
    expect(reply.locator(".content")).to_have_text("Second answer.")
    assert server.message(first)["content"] == "First answer."
    assert_gapless(page, server, second)


def test_editing_a_user_message_makes_a_sibling_with_its_own_reply(
    page: Page, server: LiveServer, api: Api
) -> None:
    server.script("About cats.")
    chat = api.chat("Edit")
    api.send(chat["id"], "Tell me about cats")
    page.goto(f"/chats/{chat['id']}")
    expect(page.locator(".msg.assistant .content")).to_have_text("About cats.")
    server.script("About dogs.")
    user = page.locator(".msg.user")
    user.hover()
    user.get_by_role("button", name="Edit message").click()
    editor = user.get_by_role("textbox", name="Edit message")
    expect(editor).to_be_focused()
    editor.fill("Tell me about dogs")
    screenshot(page, "chat-editing")
    editor.press("Enter")
    expect(page.locator(".msg.user .content")).to_have_text("Tell me about dogs")
    expect(page.locator(".msg.assistant .content")).to_have_text("About dogs.")
    expect(page.locator(".msg.user .switcher-count")).to_have_text("2/2")
    page.locator(".msg.user").hover()
    page.locator(".msg.user").get_by_role("button", name="Previous version").click()
    expect(page.locator(".msg.user .content")).to_have_text("Tell me about cats")
    expect(page.locator(".msg.assistant .content")).to_have_text("About cats.")


def test_a_provider_error_is_shown_on_the_message_with_a_retry(
    page: Page, server: LiveServer, api: Api
) -> None:
    server.script("Partial ", Fail("rate_limited", "Rate limit reached. Try again in 20 seconds."))
    chat = api.chat("Errors")
    failed = api.send(chat["id"], "Hi")["assistant_message"]["id"]
    page.goto(f"/chats/{chat['id']}")
    wait_final(page, failed, "failed")
    error = assistant(page, failed).locator(".msg-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Rate limit reached. Try again in 20 seconds.")
    assert server.message(failed)["error"]["code"] == "rate_limited"
    screenshot(page, "chat-provider-error")
    server.script("Recovered.")
    error.get_by_role("button", name="Retry").click()
    expect(page.locator(".msg.assistant .content")).to_have_text("Recovered.")
    expect(page.locator(".msg.assistant .switcher-count")).to_have_text("2/2")


def test_copy_puts_the_reply_markdown_on_the_clipboard(
    page: Page, server: LiveServer, api: Api
) -> None:
    server.script("Use **bold** ", "and `code`.")
    chat = api.chat("Copy")
    reply = api.send(chat["id"], "Hi")["assistant_message"]["id"]
    page.goto(f"/chats/{chat['id']}")
    wait_final(page, reply)
    assistant(page, reply).get_by_role("button", name="Copy reply").click()
    expect(page.locator("#toast")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "Use **bold** and `code`."


def test_a_failed_send_keeps_the_message_with_its_reason_for_a_retry(
    page: Page, server: LiveServer, api: Api
) -> None:
    chat = api.chat("Failed send")
    page.goto(f"/chats/{chat['id']}")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")

    def unavailable(route: Route) -> None:
        route.fulfill(
            status=503,
            content_type="application/json",
            body='{"error": {"code": "unavailable", "message": "The service is restarting."}}',
        )

    page.route("**/api/chats/*/messages", unavailable)
    send_from_composer(page, "Please keep this text")
    local = page.locator(".msg.user.local")
    expect(local).to_have_attribute("data-status", "failed")
    expect(local.locator(".content")).to_have_text("Please keep this text")
    expect(local.locator(".send-failed")).to_contain_text("Not sent: The service is restarting.")
    screenshot(page, "chat-failed-send")
    page.reload()  # what the user typed survives a reload
    expect(local.locator(".content")).to_have_text("Please keep this text")
    expect(local.locator(".send-failed")).to_contain_text("Not sent: The service is restarting.")

    page.unroute("**/api/chats/*/messages")
    page.route("**/api/chats/*/messages", lambda route: route.abort("connectionrefused"))
    local.get_by_role("button", name="Retry").click()
    expect(local.locator(".send-failed")).to_contain_text("Can't reach the server")

    page.unroute("**/api/chats/*/messages")
    server.script("Got it.")
    local.get_by_role("button", name="Retry").click()
    expect(page.locator(".msg.user.local")).to_have_count(0)
    expect(page.locator(".msg.user .content")).to_have_text("Please keep this text")
    expect(page.locator(".msg.assistant .content")).to_have_text("Got it.")
    messages = api.call("GET", f"/api/chats/{chat['id']}")["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["Please keep this text"]


def test_a_double_click_on_send_posts_once(page: Page, server: LiveServer, api: Api) -> None:
    chat = api.chat("Double click")
    page.goto(f"/chats/{chat['id']}")
    posts: list[str] = []
    page.on(
        "request",
        lambda r: (
            posts.append(r.url) if r.method == "POST" and r.url.endswith("/messages") else None
        ),
    )
    server.script("Once.")
    page.locator("#prompt").fill("Only once")
    page.locator("#send").dblclick()
    expect(page.locator(".msg.assistant .content")).to_have_text("Once.")
    messages = api.call("GET", f"/api/chats/{chat['id']}")["messages"]
    assert len(messages) == 2
    assert len(posts) == 1


def test_the_composer_sends_on_enter_and_breaks_lines_on_shift_enter(
    page: Page, server: LiveServer, api: Api
) -> None:
    chat = api.chat("Keyboard")
    page.goto(f"/chats/{chat['id']}")
    prompt = page.get_by_role("textbox", name="Message")
    expect(prompt).to_be_focused()
    prompt.press("Enter")  # nothing to send
    expect(page.locator(".msg")).to_have_count(0)
    server.script("Two lines received.")
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    expect(prompt).to_have_value("line one\nline two")
    page.keyboard.press("Enter")
    expect(prompt).to_have_value("")
    expect(page.locator(".msg.assistant .content")).to_have_text("Two lines received.")
    messages = api.call("GET", f"/api/chats/{chat['id']}")["messages"]
    assert messages[0]["content"] == "line one\nline two"
    expect(page.locator(".msg.user .content")).to_have_text("line one\nline two")


def test_html_and_scripts_in_a_reply_render_inert(page: Page, server: LiveServer, api: Api) -> None:
    server.script(
        "Look: <img src=x onerror=\"window.__pwned='img'\"> and ",
        "<script>window.__pwned='script'</script>\n\n",
        "[click me](javascript:window.__pwned='link') and ",
        "![pic](javascript:window.__pwned='image')\n\n",
        "<a href=\"javascript:window.__pwned='raw'\">raw</a> ",
        "<svg onload=\"window.__pwned='svg'\"></svg>",
    )
    chat = api.chat("Inert")
    reply = api.send(chat["id"], "Hi")["assistant_message"]["id"]
    page.goto(f"/chats/{chat['id']}")
    wait_final(page, reply)
    content = assistant(page, reply).locator(".content")
    expect(content).to_contain_text("onerror=")  # shown as the text the model wrote
    assert content.locator("img, script, svg, iframe").count() == 0
    hrefs = content.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert all(href is None or not href.lower().startswith("javascript") for href in hrefs)
    content.get_by_text("click me").click()
    assert page.evaluate("window.__pwned") is None
    assert (
        page.evaluate(f"window.gapless.messages['{reply}'].content")
        == server.message(reply)["content"]
    )


def test_the_system_prompt_and_model_are_set_from_the_chat_page(
    page: Page, server: LiveServer, api: Api
) -> None:
    page.goto("/")
    models = page.locator("#composer").get_by_label("Model")
    expect(models.locator("option")).to_have_text(
        [m["label"] for m in api.call("GET", "/api/models")["models"]]
    )
    expect(models).to_have_value("scripted:default")
    page.get_by_role("button", name="Chat settings").click()
    dialog = page.get_by_role("dialog", name="Chat settings")
    dialog.get_by_label("System prompt").fill("Answer like a pirate.")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    server.script("Arr.")
    send_from_composer(page, "Hello")
    expect(page.locator(".msg.assistant .content")).to_have_text("Arr.")
    assert server.provider.prompts[-1].system == "Answer like a pirate."

    page.get_by_role("button", name="Chat settings").click()
    expect(dialog.get_by_label("System prompt")).to_have_value("Answer like a pirate.")
    dialog.get_by_label("System prompt").fill("Answer briefly.")
    dialog.get_by_label("Title").fill("Pirate talk")
    dialog.get_by_role("button", name="Save").click()
    expect(page.locator("#page-title")).to_have_text("Pirate talk")
    chat_id = page.url.rsplit("/", 1)[1]
    chat = api.call("GET", f"/api/chats/{chat_id}")["chat"]
    assert (chat["title"], chat["system_prompt"], chat["model"]) == (
        "Pirate talk",
        "Answer briefly.",
        "scripted:default",
    )
