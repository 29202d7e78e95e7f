"""A review queue used as a team uses one: created on its page with a thumbs-down rule, a
thumbs down given in the chat puts the reply's trace in it, and a reviewer scores it."""

from __future__ import annotations

import uuid

from playwright.sync_api import Page, expect

from gapless.observe.recorder import trace_id_of
from tests.browser.conftest import Api, assistant, screenshot, wait_final
from tests.support.server import LiveServer


def test_a_thumbs_down_in_the_chat_lands_in_the_queue_and_is_reviewed(
    page: Page, server: LiveServer, api: Api
) -> None:
    name = f"Disliked {uuid.uuid4().hex[:6]}"
    page.goto("/queues")
    expect(page.locator("#page-title")).to_have_text("Review queues")
    page.get_by_role("button", name="New queue").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("A thumbs down", exact=True).check()
    page.get_by_label("Scores to give", exact=True).fill(
        "correct:boolean, issue:categorical:facts|tone|none"
    )
    page.get_by_role("button", name="Create queue").click()
    expect(page.locator("#page-title")).to_have_text(name)
    expect(page.locator("#queue-counts")).to_have_text("0 pending · 0 skipped · 0 done")
    expect(page.locator(".review-empty")).to_have_text("Nothing left to review.")
    queue_id = page.url.rsplit("/", 1)[-1]

    chat = api.chat("Tides")
    server.script("High tide ", "is at 3 am.")
    reply_id = api.send(chat["id"], "When is high tide?")["assistant_message"]["id"]
    server.drain()
    server.run(server.runtime.recorder.flush())
    page.goto(f"/chats/{chat['id']}")
    wait_final(page, reply_id)
    assistant(page, reply_id).get_by_role("button", name="Bad reply").click()
    expect(assistant(page, reply_id).get_by_role("button", name="Bad reply")).to_have_attribute(
        "aria-pressed", "true"
    )

    page.get_by_role("link", name="Review").click()
    page.get_by_role("link", name=name).click()
    expect(page.locator("#queue-counts")).to_have_text("1 pending · 0 skipped · 0 done")
    expect(page.locator(".queues")).not_to_contain_text("null")
    item = page.locator(".review-item")
    expect(item).to_contain_text("Added for: thumbs down")
    expect(item.locator(".review-input")).to_have_text("When is high tide?")
    expect(item.locator(".review-output")).to_have_text("High tide is at 3 am.")
    page.get_by_label("correct", exact=True).select_option("false")
    page.get_by_label("issue", exact=True).select_option("facts")
    page.get_by_label("Note", exact=True).fill("It is 4 am.")
    screenshot(page, "review-queue")
    page.get_by_role("button", name="Done").click()
    expect(page.locator(".review-empty")).to_have_text("Nothing left to review.")
    expect(page.locator("#queue-counts")).to_have_text("0 pending · 0 skipped · 1 done")

    trace_id = api.call("GET", f"/api/queues/{queue_id}/items")["items"][0]["trace_id"]
    assert trace_id == trace_id_of(reply_id)
    scores = api.call("GET", f"/api/scores?trace_id={trace_id}&source=annotation")["scores"]
    assert sorted((s["name"], s["value"]) for s in scores) == [
        ("correct", False),
        ("issue", "facts"),
    ]
    assert [s["comment"] for s in scores if s["name"] == "correct"] == ["It is 4 am."]
