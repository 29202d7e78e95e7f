"""The WebSocket transport from a real browser: session cookie, the page's own Origin, and
Chromium's offer of per-message deflate, which the server declines."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

from tests.browser.conftest import Api
from tests.support.server import LiveServer

FOLLOW = """
async (chatId) => {
  const ws = new WebSocket(`ws://${location.host}/api/ws`);
  const frames = [];
  await new Promise((resolve, reject) => {
    ws.onerror = () => reject(new Error("websocket error"));
    ws.onopen = () => ws.send(JSON.stringify({op: "subscribe", chat_id: chatId}));
    ws.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      frames.push(frame);
      if (frame.op === "subscribed") window.__subscribed = true;
      if (frame.type === "message.completed" || frame.op === "error") resolve();
    };
  });
  const extensions = ws.extensions;
  ws.close();
  return {frames, extensions};
}
"""


def test_a_signed_in_page_follows_a_chat_over_the_websocket(
    page: Page, server: LiveServer, api: Api
) -> None:
    chat = api.chat("Over the WebSocket")
    page.goto("/")
    server.script("Hello ", "over ", "the socket.")
    # started, not awaited: it runs until the reply completes
    page.evaluate(f"chatId => {{ window.__following = ({FOLLOW})(chatId); }}", chat["id"])
    page.wait_for_function("() => window.__subscribed === true")  # a function: no eval (CSP)
    reply = api.send(chat["id"], "hi")["assistant_message"]
    result: dict[str, Any] = page.evaluate("() => window.__following")
    frames = result["frames"]
    assert result["extensions"] == ""  # offered by Chromium, declined: plain frames
    assert frames[0] == {"op": "subscribed", "chat_id": chat["id"]}
    deltas = [f["data"] for f in frames if f.get("type") == "message.delta"]
    assert [d["seq"] for d in deltas] == [1, 2, 3]
    assert "".join(d["content"] for d in deltas) == "Hello over the socket."
    assert frames[-1]["type"] == "message.completed"
    assert frames[-1]["data"]["id"] == reply["id"]
    assert frames[-1]["data"]["content"] == server.message(reply["id"])["content"]
