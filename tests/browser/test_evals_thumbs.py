"""Thumbs in the chat: under each finished reply, pressed once and changeable, a comment
after a thumbs down, kept across a reload, and stored as the reply's score."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import Api, assistant, screenshot, wait_final
from tests.support.server import LiveServer


def test_thumbs_under_a_finished_reply_are_given_changed_commented_and_kept(
    page: Page, server: LiveServer, api: Api
) -> None:
    chat = api.chat("Thumbs")
    server.script("The tide ", "turns at noon.")
    reply_id = api.send(chat["id"], "When does the tide turn?")["assistant_message"]["id"]
    server.drain()
    page.goto(f"/chats/{chat['id']}")
    wait_final(page, reply_id)
    reply = assistant(page, reply_id)
    good = reply.get_by_role("button", name="Good reply")
    bad = reply.get_by_role("button", name="Bad reply")
    expect(good).to_have_attribute("aria-pressed", "false")

    good.click()
    expect(good).to_have_attribute("aria-pressed", "true")
    expect(bad).to_have_attribute("aria-pressed", "false")
    mine = api.call("GET", f"/api/chats/{chat['id']}/feedback")["feedback"]
    assert mine[reply_id]["value"] == "up"

    bad.click()
    expect(bad).to_have_attribute("aria-pressed", "true")
    expect(good).to_have_attribute("aria-pressed", "false")
    comment = reply.get_by_label("What was wrong with this reply?")
    expect(comment).to_be_focused()
    comment.fill("Noon is wrong <img src=x onerror=alert(1)>")
    screenshot(page, "thumbs-comment")
    reply.get_by_role("button", name="Send feedback").click()
    expect(comment).to_be_hidden()
    expect(reply.locator(".thumbs-saved")).to_have_text("Comment sent")
    # the chat itself was not touched: no message was posted by the comment
    assert len(api.call("GET", f"/api/chats/{chat['id']}")["messages"]) == 2

    scores = api.call("GET", f"/api/scores?message_id={reply_id}")["scores"]
    assert [(s["name"], s["value"], s["comment"]) for s in scores] == [
        ("thumbs", False, "Noon is wrong <img src=x onerror=alert(1)>")
    ]

    page.reload()
    wait_final(page, reply_id)
    expect(assistant(page, reply_id).get_by_role("button", name="Bad reply")).to_have_attribute(
        "aria-pressed", "true"
    )
    assistant(page, reply_id).get_by_role("button", name="Bad reply").click()  # taken back
    expect(assistant(page, reply_id).get_by_role("button", name="Bad reply")).to_have_attribute(
        "aria-pressed", "false"
    )
    assert api.call("GET", f"/api/chats/{chat['id']}/feedback")["feedback"] == {}


def test_a_reply_still_streaming_has_no_thumbs_until_it_ends(
    page: Page, server: LiveServer, api: Api
) -> None:
    from tests.support.scripted import Gate

    gate = Gate()
    chat = api.chat("Thumbs later")
    server.script("Half ", gate, "done.")
    reply_id = api.send(chat["id"], "Go")["assistant_message"]["id"]
    page.goto(f"/chats/{chat['id']}")
    reply = assistant(page, reply_id)
    expect(reply.locator(".content")).to_contain_text("Half")
    expect(reply.get_by_role("button", name="Good reply")).to_have_count(0)
    gate.set()
    wait_final(page, reply_id)
    expect(reply.get_by_role("button", name="Good reply")).to_be_visible()
