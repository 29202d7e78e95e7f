"""The prompts pages and the playground, used as a person uses them: create a prompt, save a
version, move a label, read the side-by-side diff, run a version in the playground."""

from __future__ import annotations

import uuid

from playwright.sync_api import Page, expect

from tests.browser.conftest import Api, screenshot, wait_final
from tests.support.server import LiveServer


def test_a_prompt_is_created_versioned_relabelled_and_diffed_on_its_page(
    page: Page, server: LiveServer, api: Api
) -> None:
    name = f"helper-{uuid.uuid4().hex[:6]}"
    page.goto("/prompts")
    expect(page.locator("#page-title")).to_have_text("Prompts")
    page.get_by_role("button", name="New prompt").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Template", exact=True).fill("You answer questions.\nBe kind to {{ user }}.")
    page.get_by_label("Commit message", exact=True).fill("first cut")
    page.get_by_label("Labels", exact=True).fill("production")
    page.get_by_role("button", name="Create prompt").click()

    expect(page.locator("#page-title")).to_have_text(name)
    panel = page.get_by_role("region", name="Version 1")
    expect(panel.locator(".prompt-content")).to_have_text(
        "You answer questions.\nBe kind to {{ user }}."
    )
    expect(panel).to_contain_text("user")  # its variables

    form = page.get_by_role("form", name="New version")
    form.get_by_label("Template", exact=True).fill(
        "You answer questions briefly.\nBe kind to {{ user }}."
    )
    form.get_by_label("Commit message", exact=True).fill("shorter answers")
    form.get_by_role("button", name="Save new version").click()
    expect(page.get_by_role("region", name="Version 2")).to_be_visible()
    labels = page.locator(".chips")
    expect(labels).to_contain_text("production · v1")
    expect(labels).to_contain_text("latest · v2")

    move = page.get_by_role("form", name="Move a label")
    move.get_by_label("Label", exact=True).fill("production")
    move.locator("#move-version").select_option("2")
    move.get_by_role("button", name="Move label").click()
    expect(page.locator(".chips")).to_contain_text("production · v2")

    diff = page.get_by_role("table", name="Template v1 → v2")
    expect(diff.locator("td.diff-del")).to_have_text(["You answer questions."])
    expect(diff.locator("td.diff-ins")).to_have_text(["You answer questions briefly."])
    expect(diff.locator("ins")).to_have_text([" briefly"])
    expect(diff.locator("tr.diff-same td.diff-text").first).to_have_text("Be kind to {{ user }}.")

    history = page.get_by_role("region", name="Label history").locator("tbody tr")
    expect(history.first).to_contain_text("production")
    expect(history.first).to_contain_text("v1")
    expect(history.first).to_contain_text("v2")
    page.locator("#evals-view").evaluate("el => el.scrollTo(0, 0)")
    screenshot(page, "prompt-page")

    stored = api.call("GET", f"/api/prompts/{name}/labels/production")
    assert stored["version"] == 2 and stored["message"] == "shorter answers"
    moves = api.call("GET", f"/api/prompts/{name}/history")["moves"]
    assert (moves[0]["label"], moves[0]["from_version"], moves[0]["to_version"]) == (
        "production",
        1,
        2,
    )

    agent = api.call(
        "POST",
        "/api/agents",
        json={
            "name": f"bot-{name}",
            "model": "scripted:default",
            "prompt": {"name": name, "variables": {"user": "Ann"}},
        },
    )
    page.reload()
    expect(page.locator(".used-by")).to_have_text(f"Used by bot-{name} (production)")
    api.call("DELETE", f"/api/agents/{agent['id']}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete prompt").click()
    expect(page.locator("#page-title")).to_have_text("Prompts")
    expect(page.get_by_role("link", name=name)).to_have_count(0)
    assert name not in [p["name"] for p in api.call("GET", "/api/prompts")["prompts"]]


def test_the_playground_renders_a_version_and_streams_its_reply_as_a_traced_chat(
    page: Page, server: LiveServer, api: Api
) -> None:
    name = f"tutor-{uuid.uuid4().hex[:6]}"
    api.call(
        "POST",
        "/api/prompts",
        json={
            "name": name,
            "content": "You tutor {{ student }} in {{ subject }}.",
            "config": {"model": "scripted:default"},
            "labels": ["production"],
        },
    )
    server.script("Let's ", "start ", "with ", "fractions.")
    page.goto(f"/playground?prompt={name}")
    expect(page.locator("#page-title")).to_have_text("Playground")
    expect(page.locator(".playground-system")).to_have_text(
        "You tutor {{ student }} in {{ subject }}."
    )
    page.get_by_label("student", exact=True).fill("Ada")
    page.get_by_label("subject", exact=True).fill("maths")
    page.get_by_label("User message", exact=True).fill("Where do we begin?")
    page.get_by_role("button", name="Run").click()

    expect(page.locator(".playground-system")).to_have_text("You tutor Ada in maths.")
    reply = page.locator(".playground-output .msg.assistant")
    expect(reply).to_have_count(1)
    reply_id = reply.get_attribute("data-id")
    assert reply_id
    wait_final(page, reply_id)
    expect(reply.locator(".content")).to_have_text("Let's start with fractions.")
    expect(page.locator(".playground-output .msg.user .content")).to_have_text("Where do we begin?")
    screenshot(page, "playground")

    chat_id = server.message(reply_id)["chat_id"]
    chat = api.call("GET", f"/api/chats/{chat_id}")["chat"]
    assert chat["system_prompt"] == "You tutor Ada in maths."
    assert chat["title"] == f"Playground · {name} v1"
    server.run(server.runtime.recorder.flush())
    trace_href = page.locator("#playground-trace").get_attribute("href")
    assert trace_href
    trace = api.call("GET", f"/api/{trace_href.lstrip('/')}")
    assert trace["reply_id"] == reply_id and trace["status"] == "complete"
    page.locator("#playground-trace").click()
    expect(page).to_have_url(f"{server.url}{trace_href}")
