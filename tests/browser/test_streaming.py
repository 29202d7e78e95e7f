"""Streaming as a person sees it: every render a prefix, the end equal to the database.

The model is scripted and held at gates, so the page is opened, reloaded or
cut off at an exact point of the reply; nothing waits on a timer.
"""

from __future__ import annotations

import json

from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import (
    Api,
    assert_gapless,
    assistant,
    renders,
    screenshot,
    shown,
    wait_final,
)
from tests.support.scripted import Gate, Think
from tests.support.server import LiveServer

SLOW_3G = {
    "offline": False,
    "latency": 2000,
    "downloadThroughput": 50_000,
    "uploadThroughput": 50_000,
}
ONLINE = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
# How far the conversation is scrolled from its bottom, as a JavaScript expression.
DISTANCE = (
    "((s) => s.scrollHeight - s.scrollTop - s.clientHeight)(document.getElementById('scroller'))"
)
OFFLINE = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}


def prose(start: int, count: int) -> list[str]:
    """Chunks of plain text, split mid-word, with paragraph breaks."""
    chunks = []
    for i in range(start, start + count):
        chunks.append(f"Sentence {i} is strea")
        chunks.append("med in two chunks." + ("\n\n" if i % 5 == 4 else " "))
    return chunks


def test_a_chat_opened_before_the_debounced_write_converges_on_the_database_text(
    page: Page, server: LiveServer, api: Api
) -> None:
    gate = Gate()
    server.script(*prose(0, 10), gate, *prose(10, 10))
    chat = api.chat("Opened mid-stream")
    server.flush_gate.clear()  # the database copy lags the log from now on
    try:
        sent = api.send(chat["id"], "Tell me a story")
        reply = sent["assistant_message"]["id"]
        assert gate.reached.wait(30)
        assert server.message(reply)["seq"] == 0  # nothing of the reply is in the database yet
        page.goto(f"/chats/{chat['id']}")
        expect(assistant(page, reply).locator(".content")).to_contain_text("Sentence 9 is streamed")
        assert shown(page, reply)["status"] == "streaming"
        page.evaluate("window.__same_page = true")
    finally:
        server.flush_gate.set()
        gate.set()
    wait_final(page, reply)
    stored = assert_gapless(page, server, reply)
    assert stored["content"] == "".join(prose(0, 20))
    assert page.evaluate("window.__same_page") is True  # converged without a reload


def test_a_reload_mid_stream_shows_the_reply_again_and_it_converges(
    page: Page, server: LiveServer, api: Api
) -> None:
    first, second = Gate(), Gate()
    server.script(*prose(0, 5), first, *prose(5, 5), second, *prose(10, 5))
    chat = api.chat("Reloaded")
    page.goto(f"/chats/{chat['id']}")
    reply = api.send(chat["id"], "Go")["assistant_message"]["id"]
    assert first.reached.wait(30)
    expect(assistant(page, reply).locator(".content")).to_contain_text("Sentence 4 is streamed")
    first.set()
    assert second.reached.wait(30)
    page.reload()
    expect(assistant(page, reply).locator(".content")).to_contain_text("Sentence 9 is streamed")
    second.set()
    wait_final(page, reply)
    assert_gapless(page, server, reply)


def test_a_reply_resumes_after_the_network_drops_mid_stream(
    page: Page, server: LiveServer, api: Api
) -> None:
    first, second = Gate(), Gate()
    server.script(*prose(0, 5), first, *prose(5, 10), second, *prose(15, 5))
    chat = api.chat("Offline")
    page.goto(f"/chats/{chat['id']}")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    reply = api.send(chat["id"], "Go")["assistant_message"]["id"]
    assert first.reached.wait(30)
    expect(assistant(page, reply).locator(".content")).to_contain_text("Sentence 4 is streamed")
    page.evaluate("window.__same_page = true")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", OFFLINE)
    expect(page.locator("#connection")).to_have_attribute("data-state", "offline")
    first.set()  # the model goes on while the reader is offline
    assert second.reached.wait(30)
    assert "Sentence 14" not in (assistant(page, reply).text_content() or "")
    cdp.send("Network.emulateNetworkConditions", ONLINE)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=20_000)
    expect(assistant(page, reply).locator(".content")).to_contain_text("Sentence 14 is streamed")
    second.set()
    wait_final(page, reply)
    assert_gapless(page, server, reply)
    assert page.evaluate("window.__same_page") is True


def test_a_reply_converges_over_slow_3g(page: Page, server: LiveServer, api: Api) -> None:
    gate = Gate()
    server.script(*prose(0, 2), gate, *prose(2, 60))
    chat = api.chat("Slow 3G")
    page.goto(f"/chats/{chat['id']}")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    reply = api.send(chat["id"], "Go")["assistant_message"]["id"]
    assert gate.reached.wait(30)
    # The text before the gate is on the page before the network slows, so the
    # reply is rendered at least twice whatever the batching over slow 3G.
    expect(assistant(page, reply).locator(".content")).to_contain_text("Sentence 1 is streamed")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", SLOW_3G)
    gate.set()
    wait_final(page, reply)
    assert_gapless(page, server, reply)
    assert len(renders(page, reply)) > 1


def fake_stream_once(page: Page, body: str) -> list[str]:
    """Answer the page's first chat subscription with `body`; later ones reach the server."""
    urls: list[str] = []

    def handle(route: Route) -> None:
        urls.append(route.request.url)
        if len(urls) == 1:
            route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)
        else:
            route.continue_()

    page.route("**/api/chats/*/events*", handle)
    return urls


def test_a_gap_in_the_events_makes_the_page_refetch_and_resubscribe(
    page: Page, server: LiveServer, api: Api
) -> None:
    gate = Gate()
    server.script(*prose(0, 3), gate, *prose(3, 3))
    chat = api.chat("Gap")
    reply = api.send(chat["id"], "Go")["assistant_message"]["id"]
    assert gate.reached.wait(30)
    skipped = {"message_id": reply, "seq": 999, "content": "NEVER SHOWN"}
    urls = fake_stream_once(
        page, f"id: e.fake\nevent: message.delta\ndata: {json.dumps(skipped)}\n\n"
    )
    page.goto(f"/chats/{chat['id']}")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    assert len(urls) == 2 and "cursor=" in urls[1]
    gate.set()
    wait_final(page, reply)
    assert_gapless(page, server, reply)
    assert not any("NEVER" in text for text in renders(page, reply))


def test_a_reset_makes_the_page_refetch_and_subscribe_from_the_fresh_cursor(
    page: Page, server: LiveServer, api: Api
) -> None:
    gate = Gate()
    server.script(*prose(0, 3), gate, *prose(3, 3))
    chat = api.chat("Reset")
    reply = api.send(chat["id"], "Go")["assistant_message"]["id"]
    assert gate.reached.wait(30)
    urls = fake_stream_once(page, 'event: reset\ndata: {"reason": "too_far_behind"}\n\n')
    page.goto(f"/chats/{chat['id']}")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    page.evaluate("window.__same_page = true")
    gate.set()
    wait_final(page, reply)
    assert len(urls) == 2 and "cursor=" in urls[1]
    assert_gapless(page, server, reply)
    assert page.evaluate("window.__same_page") is True  # never reloaded


def test_markdown_renders_while_streaming_with_an_open_code_fence_shown_as_code(
    page: Page, server: LiveServer, api: Api
) -> None:
    gate = Gate()
    server.script(
        "# Plan\n\n",
        "Some **bold",
        " text** and a [link](https://exa",
        "mple.com/).\n\n",
        "- one\n- two\n\n",
        "```python\n",
        "def f(x):\n    return x",
        gate,
        " + 1\n```\n\n",
        "| a | b |\n|---|---|\n| 1 | 2 |\n",
    )
    chat = api.chat("Markdown")
    page.goto(f"/chats/{chat['id']}")
    reply = api.send(chat["id"], "Markdown please")["assistant_message"]["id"]
    assert gate.reached.wait(30)
    content = assistant(page, reply).locator(".content")
    expect(content.locator("pre code")).to_contain_text("return x")
    assert "```" not in (content.text_content() or "")
    expect(content.locator("pre code .hljs-keyword").first).to_have_text("def")
    expect(content.locator("pre")).to_have_attribute("data-lang", "python")
    expect(content.locator("h1")).to_have_text("Plan")
    expect(content.locator("strong")).to_have_text("bold text")
    expect(content.locator("li")).to_have_count(2)
    gate.set()
    wait_final(page, reply)
    expect(content.locator("table td")).to_have_text(["1", "2"])
    link = content.locator("a")
    expect(link).to_have_attribute("href", "https://example.com/")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    assert shown(page, reply)["content"] == server.message(reply)["content"]


def test_thinking_streams_in_a_section_above_the_answer_that_folds_when_the_answer_starts(
    page: Page, server: LiveServer, api: Api
) -> None:
    gate = Gate()
    server.script(Think("Let me think "), Think("about this."), gate, "The answer is 42.")
    chat = api.chat("Thinking")
    page.goto(f"/chats/{chat['id']}")
    reply = api.send(chat["id"], "Why?")["assistant_message"]["id"]
    assert gate.reached.wait(30)
    thinking = assistant(page, reply).locator("details.thinking")
    expect(thinking).to_have_attribute("open", "")
    expect(thinking.locator(".thinking-text")).to_have_text("Let me think about this.")
    expect(thinking.locator("summary")).to_have_text("Thinking…")
    gate.set()
    wait_final(page, reply)
    expect(thinking).not_to_have_attribute("open", "")
    expect(thinking.locator("summary")).to_have_text("Thoughts")
    expect(assistant(page, reply).locator(".content")).to_have_text("The answer is 42.")
    thinking.locator("summary").click()
    expect(thinking.locator(".thinking-text")).to_be_visible()
    assert_gapless(page, server, reply)


def test_a_typing_indicator_shows_while_the_reply_is_pending(
    page: Page, server: LiveServer, api: Api
) -> None:
    gate = Gate()
    server.script(gate, "Here.")
    chat = api.chat("Typing")
    page.goto(f"/chats/{chat['id']}")
    reply = api.send(chat["id"], "Hello?")["assistant_message"]["id"]
    assert gate.reached.wait(30)
    expect(assistant(page, reply).locator(".typing")).to_be_visible()
    gate.set()
    wait_final(page, reply)
    expect(assistant(page, reply).locator(".typing")).to_be_hidden()


def test_auto_scroll_follows_the_reply_stops_when_the_reader_scrolls_up_and_resumes_at_the_bottom(
    page: Page, server: LiveServer, api: Api
) -> None:
    first, second, third = Gate(), Gate(), Gate()
    server.script(*prose(0, 80), first, *prose(80, 20), second, *prose(100, 20), third, "The end.")
    chat = api.chat("Scrolling")
    page.set_viewport_size({"width": 1000, "height": 600})
    page.goto(f"/chats/{chat['id']}")
    reply = api.send(chat["id"], "Long please")["assistant_message"]["id"]
    assert first.reached.wait(30)
    expect(assistant(page, reply).locator(".content")).to_contain_text("Sentence 79 is streamed")
    at_bottom = f"() => {DISTANCE} < 2"
    page.wait_for_function(at_bottom)
    page.locator("#scroller").hover()
    page.mouse.wheel(0, -300)
    page.wait_for_function(f"() => {DISTANCE} > 200 && !document.getElementById('jump').hidden")
    top = page.evaluate("() => document.getElementById('scroller').scrollTop")
    first.set()
    assert second.reached.wait(30)
    expect(assistant(page, reply).locator(".content")).to_contain_text("Sentence 99 is streamed")
    assert page.evaluate("() => document.getElementById('scroller').scrollTop") == top
    page.locator("#jump").click()
    page.wait_for_function(at_bottom)
    second.set()
    assert third.reached.wait(30)
    expect(assistant(page, reply).locator(".content")).to_contain_text("Sentence 119 is streamed")
    page.wait_for_function(at_bottom)
    third.set()
    wait_final(page, reply)


def test_screenshots_of_a_chat_mid_stream_and_at_the_end(
    page: Page, server: LiveServer, api: Api
) -> None:
    for width, height, name in ((1280, 860, "desktop"), (375, 812, "mobile")):
        page.set_viewport_size({"width": width, "height": height})
        gate = Gate()
        server.script(
            Think("The user wants a short comparison. A table and an example will do."),
            "## Lists or tuples?\n\nBoth hold **ordered** items; the difference is mutability.\n\n",
            "| | list | tuple |\n|---|---|---|\n",
            "| mutable | yes | no |\n| hashable | no | yes |\n\n",
            "```python\npoints = [(0, 0), (1, 2)]\npoints.append((3, 4))\n",
            gate,
            "```\n\nUse a **tuple** for a fixed record and a **list** for a collection that grows. "
            "See [the tutorial](https://docs.python.org/3/tutorial/datastructures.html).",
        )
        chat = api.chat(f"Lists or tuples ({name})")
        api.send(chat["id"], "When should I use a list and when a tuple?")
        page.goto(f"/chats/{chat['id']}")
        assert gate.reached.wait(30)
        expect(page.locator(".msg.assistant pre code")).to_contain_text("points.append")
        screenshot(page, f"chat-{name}-streaming")
        gate.set()
        expect(page.locator(".msg.assistant")).to_have_attribute("data-status", "complete")
        screenshot(page, f"chat-{name}-complete")
    page.get_by_role("button", name="Open sidebar").click()
    page.wait_for_function(
        "() => document.getElementById('sidebar').getBoundingClientRect().left === 0"
    )
    screenshot(page, "chat-mobile-sidebar")


def test_streaming_redraws_only_the_growing_part_of_the_reply(
    page: Page, server: LiveServer, api: Api
) -> None:
    server.script("An earlier answer.")
    chat = api.chat("Redraw")
    earlier = api.send(chat["id"], "One")["assistant_message"]["id"]
    page.goto(f"/chats/{chat['id']}")
    wait_final(page, earlier)
    page.evaluate(
        """() => {
        window.__touched = 0;
        for (const el of document.querySelectorAll('.msg .content')) {
          new MutationObserver((records) => { window.__touched += records.length; })
            .observe(el, {subtree: true, childList: true, characterData: true, attributes: true});
        }
      }"""
    )
    gate = Gate()
    server.script("The first paragraph is done.\n\n", "The second ", gate, "is not.")
    reply = api.send(chat["id"], "Two")["assistant_message"]["id"]
    assert gate.reached.wait(30)
    paragraphs = assistant(page, reply).locator(".content p")
    expect(paragraphs.nth(1)).to_have_text("The second")
    paragraphs.first.evaluate("p => { p.__kept = true; }")
    gate.set()
    wait_final(page, reply)
    expect(paragraphs.nth(1)).to_have_text("The second is not.")
    assert paragraphs.first.evaluate("p => p.__kept === true")  # the finished paragraph stayed put
    assert page.evaluate("window.__touched") == 0  # earlier messages were not redrawn
