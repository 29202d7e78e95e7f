"""The terminal client's engine: post, stream over SSE, resume, stop — only the public API.

Proof that PROTOCOL.md is enough for a third-party client: it keeps a
`stream.Replica`, resumes a dropped stream from its last cursor, and refetches
the state on `reset` or a gap. Imports `stream`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from httpx_sse import connect_sse

from gapless.stream import FINAL_STATUSES, Replica

Printer = Callable[[str, str], None]  # (kind: "content" | "thinking" | "status", text)


class Client:
    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout, read=60.0),
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                problem = response.json()["error"]
                raise RuntimeError(f"{problem['code']}: {problem['message']}")
            except (ValueError, KeyError):
                response.raise_for_status()
        return response.json() if response.content else None

    def new_chat(self, model: str | None = None) -> dict[str, Any]:
        body = {"title": "Terminal chat"} | ({"model": model} if model else {})
        result: dict[str, Any] = self.call("POST", "/api/chats", json=body)
        return result

    def send(self, chat_id: str, content: str, model: str | None = None) -> dict[str, Any]:
        body = {"content": content} | ({"model": model} if model else {})
        result: dict[str, Any] = self.call("POST", f"/api/chats/{chat_id}/messages", json=body)
        return result

    def stop(self, message_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", f"/api/messages/{message_id}/stop")
        return result

    def follow(
        self, chat_id: str, message_id: str, show: Printer, max_tries: int = 20
    ) -> dict[str, Any]:
        """Stream one reply until it ends, printing only what is new; survives drops and resets."""
        replica = Replica()
        shown = {"content": 0, "thinking": 0}
        tries = 0
        while True:
            if replica.cursor is None or replica.stale:
                state = self.call("GET", f"/api/chats/{chat_id}")
                replica.load(state["messages"], state["cursor"])
            message = replica.messages.get(message_id)
            if message is not None and message["status"] in FINAL_STATUSES:
                _show_new(message, shown, show)  # it ended before we listened
                return message
            try:
                self._listen(chat_id, message_id, replica, shown, show)
            except (httpx.TransportError, httpx.HTTPStatusError):
                tries += 1
                if tries > max_tries:
                    raise
                show("status", "\n[connection lost; resuming]\n")
                continue

    def _listen(
        self, chat_id: str, message_id: str, replica: Replica, shown: dict[str, int], show: Printer
    ) -> None:
        headers = {"Last-Event-ID": replica.cursor} if replica.cursor else {}
        with connect_sse(
            self.http, "GET", f"/api/chats/{chat_id}/events", headers=headers
        ) as source:
            for sse in source.iter_sse():
                if not sse.event or sse.event == "message":
                    continue
                if not replica.receive(sse.event, json.loads(sse.data), sse.id or None):
                    return  # reset or gap: the caller refetches
                message = replica.messages.get(message_id)
                if message is None:
                    continue
                _show_new(message, shown, show)
                if message["status"] in FINAL_STATUSES:
                    return


def _show_new(message: dict[str, Any], shown: dict[str, int], show: Printer) -> None:
    for kind in ("thinking", "content"):
        text = message.get(kind) or ""
        if len(text) > shown[kind]:
            show(kind, text[shown[kind] :])
            shown[kind] = len(text)
