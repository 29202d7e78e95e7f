"""The terminal client's engine: post, stream over SSE, resume, stop — only the public API.

Proof that PROTOCOL.md is enough for a third-party client: it keeps a
`stream.Replica`, resumes a dropped stream from its last cursor, and refetches
the state on `reset` or a gap. A reply's parts are printed in order, each
piece once: its text and thinking, and its tool calls (name, arguments as they
stream, each status, a summary of the output or the error). A reply that
`requires_action` asks for each tool call awaiting approval and posts the
answer. Imports `stream`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import httpx
from httpx_sse import connect_sse

from gapless.stream import FINAL_STATUSES, Replica

Printer = Callable[[str, str], None]  # (kind: "content" | "thinking" | "tool" | "status", text)
Asker = Callable[[dict[str, Any]], bool]  # a tool part awaiting approval -> approve it?

SUMMARY = 160  # characters of a tool's output shown on its line


def call_text(part: dict[str, Any]) -> str:
    """`name(arguments)`, the arguments compacted when they are whole JSON."""
    arguments = part.get("arguments") or ""
    with contextlib.suppress(ValueError):
        arguments = json.dumps(json.loads(arguments), ensure_ascii=False, separators=(",", ":"))
    return f"{part.get('name') or 'tool'}({arguments})"


def summary(text: str) -> str:
    """An output on one line (JSON compacted), cut to SUMMARY characters."""
    line = " ".join(text.split())
    with contextlib.suppress(ValueError):
        line = json.dumps(json.loads(text), ensure_ascii=False, separators=(", ", ": "))
    return line if len(line) <= SUMMARY else line[: SUMMARY - 1] + "…"


def ask_in_terminal(part: dict[str, Any]) -> bool:
    """Ask `Approve <tool>(<args>)? [y/n]` until the answer is y or n (end of input: no)."""
    while True:
        try:
            answer = input(f"\nApprove {call_text(part)}? [y/n] ").strip().lower()
        except EOFError:
            return False
        if answer in ("y", "yes"):
            return True
        if answer in ("n", "no"):
            return False


class ApiError(RuntimeError):
    """The server said no: `status` is the HTTP status, the text `code: message`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code


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
                raise ApiError(response.status_code, problem["code"], problem["message"])
            except (ValueError, KeyError):
                response.raise_for_status()
        return response.json() if response.content else None

    def new_chat(self, model: str | None = None, agent_id: str | None = None) -> dict[str, Any]:
        body = {"title": "Terminal chat"} | ({"model": model} if model else {})
        body |= {"agent_id": agent_id} if agent_id else {}
        result: dict[str, Any] = self.call("POST", "/api/chats", json=body)
        return result

    def send(self, chat_id: str, content: str, model: str | None = None) -> dict[str, Any]:
        body = {"content": content} | ({"model": model} if model else {})
        result: dict[str, Any] = self.call("POST", f"/api/chats/{chat_id}/messages", json=body)
        return result

    def stop(self, message_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", f"/api/messages/{message_id}/stop")
        return result

    def decide(
        self, message_id: str, tool_call_id: str, approve: bool, reason: str | None = None
    ) -> dict[str, Any]:
        """Approve or deny a tool call awaiting approval; answers the Message."""
        body: dict[str, Any] = {"decision": "approve" if approve else "deny"}
        if reason:
            body["reason"] = reason
        result: dict[str, Any] = self.call(
            "POST", f"/api/messages/{message_id}/tools/{tool_call_id}", json=body
        )
        return result

    def follow(
        self,
        chat_id: str,
        message_id: str,
        show: Printer,
        max_tries: int = 20,
        ask: Asker = ask_in_terminal,
    ) -> dict[str, Any]:
        """Stream one reply until it ends, printing only what is new; survives drops and
        resets, and asks `ask` about each tool call that awaits approval."""
        replica = Replica()
        shown = Shown()
        tries = 0
        while True:
            if replica.cursor is None or replica.stale:
                state = self.call("GET", f"/api/chats/{chat_id}")
                replica.load(state["messages"], state["cursor"])
            message = replica.messages.get(message_id)
            if message is not None:
                shown.show_new(message, show)
                if message["status"] in FINAL_STATUSES:
                    return message  # it ended before we listened
                if message["status"] == "requires_action":
                    self._answer(message, shown, ask, replica)
            try:
                self._listen(chat_id, message_id, replica, shown, show)
            except (httpx.TransportError, httpx.HTTPStatusError):
                tries += 1
                if tries > max_tries:
                    raise
                show("status", "\n[connection lost; resuming]\n")
                continue

    def _answer(
        self, message: dict[str, Any], shown: Shown, ask: Asker, replica: Replica
    ) -> None:
        """Ask about each tool call awaiting approval (once each) and post the decisions."""
        for part in message.get("parts") or []:
            if part.get("type") != "tool" or part.get("status") != "awaiting_approval":
                continue
            if part["id"] in shown.asked:
                continue
            shown.asked.add(part["id"])
            try:
                answered = self.decide(message["id"], part["id"], ask(part))
            except ApiError as exc:
                if exc.status != 409:
                    raise
                continue  # answered elsewhere, or the reply was stopped: the stream says which
            replica.receive("message.updated", answered, None)

    def _listen(
        self, chat_id: str, message_id: str, replica: Replica, shown: Shown, show: Printer
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
                shown.show_new(message, show)
                if message["status"] in FINAL_STATUSES:
                    return
                if message["status"] == "requires_action" and shown.waiting(message):
                    return  # the caller asks, then listens on from the cursor


class Shown:
    """What of one reply was printed already, part by part, so each piece shows once."""

    def __init__(self) -> None:
        self.texts: dict[str, int] = {}  # text/thinking part id -> characters printed
        self.arguments: dict[str, int] = {}  # tool call id -> argument characters printed
        self.closed: set[str] = set()  # tool calls whose arguments were printed whole
        self.states: dict[str, tuple[str, bool, bool]] = {}  # id -> (status, output?, error?)
        self.asked: set[str] = set()
        self.last: str | None = None  # the id of the part printed last

    def waiting(self, message: dict[str, Any]) -> bool:
        """Whether a tool call of `message` awaits approval and was not asked about yet."""
        return any(
            p.get("type") == "tool"
            and p.get("status") == "awaiting_approval"
            and p["id"] not in self.asked
            for p in message.get("parts") or []
        )

    def show_new(self, message: dict[str, Any], show: Printer) -> None:
        parts = message.get("parts")
        if parts is None:  # a server of v1: no parts, its texts are enough
            parts = [
                {"id": "thinking", "type": "thinking", "text": message.get("thinking") or ""},
                {"id": "content", "type": "text", "text": message.get("content") or ""},
            ]
        for index, part in enumerate(parts):
            if part.get("type") == "tool":
                self._tool(part, show, last=index == len(parts) - 1)
            else:
                self._text(part, show)

    def _text(self, part: dict[str, Any], show: Printer) -> None:
        text = part.get("text") or ""
        done = self.texts.get(part["id"], 0)
        if len(text) <= done:
            return
        if self.last is not None and self.last != part["id"] and part["id"] not in self.texts:
            show("status", "\n")  # a new step's text starts on its own line
        show("thinking" if part.get("type") == "thinking" else "content", text[done:])
        self.texts[part["id"]] = len(text)
        self.last = part["id"]

    def _tool(self, part: dict[str, Any], show: Printer, last: bool) -> None:
        call_id, name = part["id"], part.get("name") or "tool"
        arguments = part.get("arguments") or ""
        status = part.get("status") or "input"
        if call_id not in self.arguments:
            show("tool", f"\n⚙ {name}(")
            self.arguments[call_id] = 0
            self.last = call_id
        done = self.arguments[call_id]
        # arguments stream while the call is the last part; a call others followed
        # already (parallel calls) prints the rest of its arguments when they are whole
        if call_id not in self.closed and len(arguments) > done and (last or status != "input"):
            if self.last != call_id:
                show("tool", f"\n⚙ {name}(…")
            show("tool", arguments[done:])
            self.arguments[call_id] = len(arguments)
            self.last = call_id
        if status != "input" and call_id not in self.closed:
            show("tool", ")" if self.last == call_id else f"\n⚙ {name}(…)")
            self.closed.add(call_id)
        state = (status, part.get("output") is not None, part.get("error") is not None)
        if status == "input" or self.states.get(call_id) == state:
            return
        line = f"\n  ↳ {name}: {status.replace('_', ' ')}"
        if part.get("output") is not None:
            line += f" → {summary(str(part['output']))}"
        if part.get("error") is not None:
            line += f" ✗ {part['error'].get('message') or part['error'].get('code')}"
        show("tool", line)
        self.states[call_id] = state
        self.last = call_id
