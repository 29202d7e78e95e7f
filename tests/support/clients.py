"""Test clients that behave like a browser tab: load state, subscribe, apply the rules.

They record every text they would have shown for each message, so tests can
check PROTOCOL.md's guarantee: every shown text is a prefix of the final one
(prefix), the end equals the database (convergence), nothing twice (exactly once).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from websockets.asyncio.client import connect

from gapless.stream import FINAL_STATUSES, TOOL_STATUSES, Replica


@dataclass
class Tab:
    """One client's view of a chat, and everything it showed."""

    chat_id: str
    replica: Replica = field(default_factory=Replica)
    shown: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    shown_parts: dict[str, list[list[dict[str, Any]]]] = field(default_factory=dict)
    events: list[tuple[str, dict[str, Any], str | None]] = field(default_factory=list)
    refetches: int = 0
    resets: int = 0

    def load(self, state: dict[str, Any]) -> None:
        self.replica.load(state["messages"], state["cursor"])
        self.record()

    def receive(self, type: str, data: dict[str, Any], cursor: str | None) -> bool:
        self.events.append((type, data, cursor))
        if type == "reset":
            self.resets += 1
        ok = self.replica.receive(type, data, cursor)
        self.record()
        return ok

    def record(self) -> None:
        for message_id, message in self.replica.messages.items():
            view = (message.get("content") or "", message.get("thinking") or "")
            history = self.shown.setdefault(message_id, [])
            if not history or history[-1] != view:
                history.append(view)
            parts = self.shown_parts.setdefault(message_id, [])
            if message.get("parts") is not None and (not parts or parts[-1] != message["parts"]):
                parts.append(message["parts"])

    def done(self, message_ids: list[str]) -> bool:
        return all(
            self.replica.messages.get(m, {}).get("status") in FINAL_STATUSES for m in message_ids
        )

    def assert_prefixes(self, message_id: str, final: dict[str, Any]) -> None:
        for content, thinking in self.shown.get(message_id, []):
            assert final["content"].startswith(content), (content, final["content"])
            assert final["thinking"].startswith(thinking), (thinking, final["thinking"])
        for parts in self.shown_parts.get(message_id, []):
            assert_parts_prefix(parts, final["parts"])
        statuses: dict[str, int] = {}
        for parts in self.shown_parts.get(message_id, []):
            for part in parts:
                if part["type"] == "tool":
                    rank = TOOL_STATUSES.index(part["status"])
                    assert rank >= statuses.get(part["id"], 0), ("status went back", part)
                    statuses[part["id"]] = rank


def assert_parts_prefix(shown: list[dict[str, Any]], final: list[dict[str, Any]]) -> None:
    """Every part shown is, in place, a prefix of the final part (PROTOCOL.md "Parts")."""
    assert len(shown) <= len(final), (shown, final)
    for part, last in zip(shown, final, strict=False):
        assert (part["id"], part["type"]) == (last["id"], last["type"]), (part, last)
        key = "arguments" if part["type"] == "tool" else "text"
        assert last[key].startswith(part[key]), (part, last)


async def fetch_state(http: httpx.AsyncClient, chat_id: str) -> dict[str, Any]:
    response = await http.get(f"/api/chats/{chat_id}")
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


async def follow_sse(
    http: httpx.AsyncClient,
    tab: Tab,
    until: list[str],
    *,
    drop_after: int | None = None,
    on_event: Callable[[int], Any] | None = None,
) -> str:
    """Follow from the tab's cursor until `until` are final ("done"), a refetch is due
    ("refetch"), or `drop_after` events were read ("dropped": the connection is cut)."""
    headers = {"Last-Event-ID": tab.replica.cursor} if tab.replica.cursor else {}
    count = 0
    async with aconnect_sse(
        http, "GET", f"/api/chats/{tab.chat_id}/events", headers=headers
    ) as source:
        assert source.response.status_code == 200, source.response.status_code
        async for sse in source.aiter_sse():
            if not sse.event or sse.event == "message":
                continue
            count += 1
            if not tab.receive(sse.event, json.loads(sse.data), sse.id or None):
                return "refetch"
            if on_event is not None:
                await on_event(count)
            if tab.done(until):
                return "done"
            if drop_after is not None and count >= drop_after:
                return "dropped"
    return "closed"


async def converge_sse(
    http: httpx.AsyncClient,
    tab: Tab,
    until: list[str],
    *,
    drop_every: int | None = None,
    max_rounds: int = 200,
) -> Tab:
    """Load, follow, and on a drop resume from the last cursor, on reset/gap refetch: until done."""
    if tab.replica.cursor is None:
        tab.load(await fetch_state(http, tab.chat_id))
    for _ in range(max_rounds):
        if tab.done(until):
            return tab
        outcome = await follow_sse(http, tab, until, drop_after=drop_every)
        if outcome == "refetch":
            tab.refetches += 1
            tab.load(await fetch_state(http, tab.chat_id))
    raise AssertionError("did not converge")


async def converge_ws(
    base_url: str,
    token: str,
    http: httpx.AsyncClient,
    tab: Tab,
    until: list[str],
    *,
    drop_every: int | None = None,
    max_rounds: int = 200,
) -> Tab:
    """The same over the WebSocket transport."""
    url = base_url.replace("http://", "ws://") + "/api/ws"
    if tab.replica.cursor is None:
        tab.load(await fetch_state(http, tab.chat_id))
    for _ in range(max_rounds):
        if tab.done(until):
            return tab
        async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
            request: dict[str, Any] = {"op": "subscribe", "chat_id": tab.chat_id}
            if tab.replica.cursor:
                request["cursor"] = tab.replica.cursor
            await ws.send(json.dumps(request))
            assert json.loads(await ws.recv()) == {"op": "subscribed", "chat_id": tab.chat_id}
            count = 0
            while not tab.done(until):
                frame = json.loads(await ws.recv())
                assert frame["chat_id"] == tab.chat_id
                count += 1
                if not tab.receive(frame["type"], frame["data"], frame["cursor"]):
                    tab.refetches += 1
                    tab.load(await fetch_state(http, tab.chat_id))
                    break
                if drop_every is not None and count >= drop_every:
                    break
    if not tab.done(until):
        raise AssertionError("did not converge")
    return tab


Received = tuple[str, dict[str, Any], str | None]


async def read_events(
    http: httpx.AsyncClient,
    chat_id: str,
    cursor: str | None,
    *,
    count: int | None = None,
    until_type: str | None = None,
    until_cursor: str | None = None,
) -> list[Received]:
    """The events after `cursor`, raw (no reducer), until `count` were read, an event of
    `until_type` or at `until_cursor` arrived, or a `reset` ended the stream."""
    found: list[Received] = []
    if until_cursor is not None and cursor == until_cursor:
        return found
    headers = {"Last-Event-ID": cursor} if cursor else {}
    async with aconnect_sse(http, "GET", f"/api/chats/{chat_id}/events", headers=headers) as src:
        async for sse in src.aiter_sse():
            if not sse.event or sse.event == "message":
                continue
            found.append((sse.event, json.loads(sse.data), sse.id or None))
            if (
                sse.event in ("reset", until_type)
                or len(found) == count
                or (until_cursor is not None and sse.id == until_cursor)
            ):
                return found
    return found
