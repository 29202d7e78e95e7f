"""The streaming rules, pure: cursors, numbered deltas, the reducer, the debounce.

This is the whole of PROTOCOL.md's guarantee as data and functions: no web
framework, database, broker or clock (time is passed in). The server uses it to
number and persist deltas; every client (the terminal client, the tests, and
its JavaScript twin in the browser) uses `Replica` to apply events. Imports
only `errors`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from gapless.errors import CursorError

FINAL_STATUSES = frozenset({"complete", "failed", "cancelled"})
FINAL_EVENTS = frozenset({"message.completed", "message.failed", "message.cancelled"})
MESSAGE_EVENTS = FINAL_EVENTS | {"message.created"}

# epoch "." position; a position is one or two dash-separated integers
# (a memory log counts, a Redis stream id is "ms-seq"). URL-safe by construction.
_CURSOR = re.compile(r"^([A-Za-z0-9_~]{1,64})\.([0-9]{1,20})(?:-([0-9]{1,20}))?$")

Position = tuple[int, int]


@dataclass(frozen=True, order=True)
class Cursor:
    """Where a subscriber stands in one stream: after `position`, in log `epoch`.

    The epoch is drawn at random when a stream's history starts; a cursor from
    another stream, or from history that was lost, carries another epoch and so
    is answered with `reset` instead of a silent gap.
    """

    epoch: str
    position: Position

    def __str__(self) -> str:
        return cursor_text(self.epoch, *self.position)


def cursor_text(epoch: str, major: int, minor: int = 0) -> str:
    """`str(Cursor(epoch, (major, minor)))` without building the Cursor (once per append)."""
    return f"{epoch}.{major}-{minor}"


def parse_cursor(text: str) -> Cursor:
    """Parse a cursor a client sent back; `CursorError` when it is not one of ours."""
    if len(text) > 256:
        raise CursorError("cursor too long")
    match = _CURSOR.match(text)
    if match is None:
        raise CursorError("malformed cursor")
    epoch, major, minor = match.groups()
    return Cursor(epoch, (int(major), int(minor or 0)))


@dataclass(frozen=True)
class Delta:
    """The `seq`-th piece of one message's text (content and thinking, each optional)."""

    message_id: str
    seq: int
    content: str = ""
    thinking: str = ""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"message_id": self.message_id, "seq": self.seq}
        if self.content:
            data["content"] = self.content
        if self.thinking:
            data["thinking"] = self.thinking
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Delta:
        return cls(
            message_id=str(data["message_id"]),
            seq=int(data["seq"]),
            content=str(data.get("content") or ""),
            thinking=str(data.get("thinking") or ""),
        )


class Verdict(Enum):
    APPLY = "apply"
    SKIP = "skip"
    GAP = "gap"


def judge(local_seq: int, delta_seq: int) -> Verdict:
    """Decide what a delta does to a copy that reflects `local_seq` deltas."""
    if delta_seq == local_seq + 1:
        return Verdict.APPLY
    if delta_seq <= local_seq:
        return Verdict.SKIP
    return Verdict.GAP


def apply(message: Mapping[str, Any], delta: Delta) -> dict[str, Any]:
    """The message with `delta` appended; the caller has judged it APPLY."""
    updated = dict(message)
    updated["content"] = (message.get("content") or "") + delta.content
    updated["thinking"] = (message.get("thinking") or "") + delta.thinking
    updated["seq"] = delta.seq
    if updated.get("status") == "pending":
        updated["status"] = "streaming"
    return updated


def is_final(message: Mapping[str, Any]) -> bool:
    return message.get("status") in FINAL_STATUSES


def supersedes(incoming: Mapping[str, Any], local: Mapping[str, Any]) -> bool:
    """Whether a whole Message replaces the local copy: unless the local one is newer."""
    if int(local.get("seq", 0)) > int(incoming.get("seq", 0)):
        return False
    return not (is_final(local) and not is_final(incoming))


def flush_due(last_flush: float, now: float, interval: float) -> bool:
    """Whether a debounced writer may write again (`now` is passed in, never read)."""
    return now - last_flush >= interval


@dataclass
class Replica:
    """A client's copy of one chat, kept by PROTOCOL.md's rules.

    `receive` returns False when the client must refetch the state and
    resubscribe from its cursor (a gap, or `reset`); the replica then ignores
    everything until `load` is called again.
    """

    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    held: dict[str, list[Delta]] = field(default_factory=dict)
    cursor: str | None = None
    stale: bool = False
    deleted: bool = False

    def load(self, messages: list[dict[str, Any]], cursor: str | None) -> None:
        """Adopt a fetched state, keeping local copies that are newer."""
        fresh: dict[str, dict[str, Any]] = {}
        for message in messages:
            local = self.messages.get(message["id"])
            fresh[message["id"]] = message if local is None or supersedes(message, local) else local
        self.messages = fresh
        self.cursor = cursor
        self.stale = False
        held, self.held = self.held, {}
        for deltas in held.values():
            for delta in deltas:
                self._delta(delta)

    def receive(self, type: str, data: Mapping[str, Any], cursor: str | None) -> bool:
        if self.stale:
            return False
        if type == "reset":
            self.stale = True
            return False
        if type == "message.delta":
            ok = self._delta(Delta.from_json(data))
        elif type in MESSAGE_EVENTS:
            ok = self._message(dict(data))
        elif type == "message.deleted":
            self._drop(str(data["id"]))
            ok = True
        elif type == "chat.deleted":
            self.deleted = True
            ok = True
        else:
            ok = True  # unknown types are ignored (PROTOCOL.md)
        if not ok:
            self.stale = True
            return False
        if cursor is not None:
            self.cursor = cursor
        return True

    def _delta(self, delta: Delta) -> bool:
        local = self.messages.get(delta.message_id)
        if local is None:
            self.held.setdefault(delta.message_id, []).append(delta)
            return True
        verdict = judge(int(local.get("seq", 0)), delta.seq)
        if verdict is Verdict.APPLY:
            self.messages[delta.message_id] = apply(local, delta)
        return verdict is not Verdict.GAP

    def _message(self, message: dict[str, Any]) -> bool:
        local = self.messages.get(message["id"])
        if local is None or supersedes(message, local):
            self.messages[message["id"]] = message
        return all(self._delta(delta) for delta in self.held.pop(message["id"], []))

    def _drop(self, message_id: str) -> None:
        doomed = {message_id}
        changed = True
        while changed:
            changed = False
            for message in self.messages.values():
                if message.get("parent_id") in doomed and message["id"] not in doomed:
                    doomed.add(message["id"])
                    changed = True
        for gone in doomed:
            self.messages.pop(gone, None)
            self.held.pop(gone, None)
