"""Live sync across tabs, the chat list, signing in, and the generations page."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, BrowserContext, Page, expect

from gapless.providers.base import Usage
from tests.browser.conftest import (
    Api,
    assert_gapless,
    assistant,
    new_context,
    screenshot,
    sign_in,
    wait_final,
)
from tests.support.scripted import Fail, Gate, Think
from tests.support.server import LiveServer


def open_page(context: BrowserContext, path: str) -> Page:
    page = context.new_page()
    page.goto(path)
    expect(page.locator("#shell")).to_be_visible()
    return page


def test_a_message_sent_in_one_tab_streams_in_both(
    context: BrowserContext, server: LiveServer, api: Api
) -> None:
    chat = api.chat("Two tabs")
    first = open_page(context, f"/chats/{chat['id']}")
    second = open_page(context, f"/chats/{chat['id']}")
    expect(second.locator("#connection")).to_have_attribute("data-state", "live")
    gate = Gate()
    server.script("Streaming ", "to ", gate, "both tabs.")
    first.locator("#prompt").fill("Hello from tab one")
    first.locator("#prompt").press("Enter")
    assert gate.reached.wait(30)
    expect(second.locator(".msg.user .content")).to_have_text("Hello from tab one")
    expect(second.locator(".msg.assistant .content")).to_have_text("Streaming to")
    expect(first.locator(".msg.assistant .content")).to_have_text("Streaming to")
    gate.set()
    reply = second.locator(".msg.assistant").get_attribute("data-id") or ""
    for page in (first, second):
        wait_final(page, reply)
        assert_gapless(page, server, reply)


def test_replies_streaming_at_once_each_render_correctly(
    page: Page, server: LiveServer, api: Api
) -> None:
    chat = api.chat("At once")
    one, two = Gate(), Gate()
    server.script("Alpha one, ", one, "alpha two.")
    server.script("Beta one, ", two, "beta two.")
    page.goto(f"/chats/{chat['id']}")
    alpha = api.send(chat["id"], "First", parent_id=None)["assistant_message"]["id"]
    assert one.reached.wait(30)
    beta = api.send(chat["id"], "Second", parent_id=None)["assistant_message"]["id"]
    assert two.reached.wait(30)
    expect(assistant(page, beta).locator(".content")).to_have_text("Beta one,")
    one.set()
    two.set()
    wait_final(page, beta)
    assert_gapless(page, server, beta)
    page.locator(".msg.user").get_by_role("button", name="Previous version").click()
    wait_final(page, alpha)
    expect(assistant(page, alpha).locator(".content")).to_have_text("Alpha one, alpha two.")
    assert (
        page.evaluate(f"window.gapless.messages['{alpha}'].content")
        == server.message(alpha)["content"]
    )


def test_the_chat_list_is_newest_first_and_live_across_tabs(
    context: BrowserContext, server: LiveServer, api: Api
) -> None:
    api.chat("Older chat")
    first = open_page(context, "/")
    second = open_page(context, "/")
    expect(second.locator("#connection")).to_be_hidden()
    server.script("Sure.")
    first.locator("#prompt").fill("Plan a trip to Lisbon")
    first.locator("#prompt").press("Enter")
    newest = second.locator(".chat-item").first
    expect(newest.locator(".chat-link")).to_have_text("Plan a trip to Lisbon")
    expect(second.locator(".chat-item").nth(1).locator(".chat-link")).not_to_have_text(
        "Plan a trip to Lisbon"
    )
    expect(first.locator(".msg.assistant .content")).to_have_text("Sure.")
    expect(first).to_have_url(re.compile(r"/chats/[^/]+$"))

    item = first.locator(".chat-item.current")
    item.hover()
    item.get_by_role("button", name="Rename chat").click()
    title = item.get_by_role("textbox", name="Chat title")
    title.fill("Lisbon in May")
    title.press("Enter")
    expect(second.locator(".chat-item").first.locator(".chat-link")).to_have_text("Lisbon in May")
    expect(first.locator("#page-title")).to_have_text("Lisbon in May")

    first.once("dialog", lambda dialog: dialog.accept())
    item = first.locator(".chat-item.current")
    item.hover()
    item.get_by_role("button", name="Delete chat").click()
    expect(second.locator(".chat-link", has_text="Lisbon in May")).to_have_count(0)
    expect(first.locator(".chat-link", has_text="Lisbon in May")).to_have_count(0)
    expect(first).to_have_url(f"{server.url}/")


def test_sign_in_with_a_session_cookie_and_csrf_protection(
    browser: Browser, server: LiveServer
) -> None:
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.goto("/generations")
    expect(page).to_have_url(f"{server.url}/login")
    screenshot(page, "sign-in")
    page.get_by_label("Email").fill(server.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-error")).to_have_text("Wrong email or password.")
    page.get_by_label("Password").fill(server.password)
    page.get_by_label("Password").press("Enter")
    expect(page).to_have_url(f"{server.url}/generations")
    expect(page.locator("#account-email")).to_have_text(server.email)
    cookies = context.cookies()
    assert cookies and all(cookie["httpOnly"] for cookie in cookies)
    forged = context.request.post(f"{server.url}/api/chats", data={"title": "no token"})
    assert forged.status == 403
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#login-form")).to_be_visible()
    context.close()


def test_the_generations_page_lists_model_tokens_timing_cost_and_errors(
    page: Page, server: LiveServer, api: Api
) -> None:
    chat = api.chat("Generations")
    server.script(
        Think("Short."), "Fine.", Usage(input_tokens=1200, output_tokens=345, reasoning_tokens=12)
    )
    done = api.send(chat["id"], "One")["assistant_message"]["id"]
    server.script(Fail("context_length", "The prompt is too long for this model."))
    failed = api.send(chat["id"], "Two")["assistant_message"]["id"]
    server.drain()
    page.goto("/generations")
    expect(page.locator("#page-title")).to_have_text("Generations")
    rows = page.locator("#generations-body tr")
    expect(rows.first).to_be_visible()
    failed_row = rows.filter(has_text="The prompt is too long for this model.")
    expect(failed_row).to_have_count(1)
    expect(failed_row.locator(".status")).to_have_text("failed")
    expect(rows.first.locator(".model-name")).to_have_text("scripted:default")
    counted = rows.filter(has_text="1,200 / 345")
    expect(counted).to_have_count(1)
    expect(counted).to_contain_text("12 reasoning")
    expect(counted.locator(".status")).to_have_text("complete")
    assert done != failed
    screenshot(page, "generations")


def test_a_session_ended_elsewhere_brings_back_the_sign_in_page(
    browser: Browser, server: LiveServer, api: Api
) -> None:
    context = new_context(browser, server)
    sign_in(context, server)  # a session of its own, as it ends it
    chat = api.chat("Signed out elsewhere")
    page = open_page(context, f"/chats/{chat['id']}")
    page.locator("#prompt").fill("Are you there?")
    csrf = context.request.get(f"{server.url}/api/session").json()["csrf_token"]
    ended = context.request.delete(f"{server.url}/api/session", headers={"X-CSRF-Token": csrf})
    assert ended.status == 204
    # The page may notice at once (its live streams are ended with the session);
    # if not, sending is answered 401. Either way the sign-in page comes back.
    page.keyboard.press("Enter")
    expect(page.locator("#login-form")).to_be_visible()
    expect(page).to_have_url(f"{server.url}/login")
    context.close()
