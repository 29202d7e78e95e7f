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
MESSAGE_EVENTS = FINAL_EVENTS | {"message.created", "message.updated"}

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
    """The `seq`-th piece of one message: text, thinking, and a change of one tool part
    (`tool`: `{id, name?, arguments?, status?, output?, error?}`), each optional."""

    message_id: str
    seq: int
    content: str = ""
    thinking: str = ""
    tool: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"message_id": self.message_id, "seq": self.seq}
        if self.content:
            data["content"] = self.content
        if self.thinking:
            data["thinking"] = self.thinking
        if self.tool:
            data["tool"] = dict(self.tool)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Delta:
        tool = data.get("tool")
        return cls(
            message_id=str(data["message_id"]),
            seq=int(data["seq"]),
            content=str(data.get("content") or ""),
            thinking=str(data.get("thinking") or ""),
            tool=dict(tool) if isinstance(tool, Mapping) and "id" in tool else None,
        )


# A tool part's status only moves forward through these (PROTOCOL.md "Parts").
TOOL_STATUSES = (
    "input",
    "awaiting_approval",
    "running",
    "complete",
    "failed",
    "denied",
    "cancelled",
)
TOOL_FINAL = frozenset({"complete", "failed", "denied", "cancelled"})


class Parts:
    """A message's parts, built from its deltas by PROTOCOL.md's rules.

    Mutable and append-only, so the job keeps one per reply and adds each delta
    in O(1) (texts are lists of pieces, joined when read); clients build one from
    a Message's `parts` and add a delta (`apply`). One implementation of the
    rules for both, mirrored by `reducer.js`.
    """

    def __init__(self, parts: list[dict[str, Any]] | None = None) -> None:
        self._parts: list[dict[str, Any]] = []
        self._tools: dict[str, dict[str, Any]] = {}
        for part in parts or []:
            copy = dict(part)
            if copy.get("type") == "tool":
                copy["arguments"] = [copy.get("arguments") or ""]
                self._tools[str(copy["id"])] = copy
            else:
                copy["text"] = [copy.get("text") or ""]
            self._parts.append(copy)

    def add(self, delta: Delta) -> None:
        """Thinking, then content, then tool (the order PROTOCOL.md gives)."""
        if delta.thinking:
            self._text("thinking", delta.thinking)
        if delta.content:
            self._text("text", delta.content)
        if delta.tool:
            self._tool(delta.tool)

    def _text(self, kind: str, text: str) -> None:
        last = self._parts[-1] if self._parts else None
        if last is not None and last["type"] == kind:
            last["text"].append(text)
        else:
            self._parts.append({"id": f"p{len(self._parts)}", "type": kind, "text": [text]})

    def _tool(self, change: Mapping[str, Any]) -> None:
        call_id = str(change["id"])
        part = self._tools.get(call_id)
        if part is None:
            part = {
                "id": call_id,
                "type": "tool",
                "name": str(change.get("name") or ""),
                "arguments": [],
                "status": "input",
                "output": None,
                "error": None,
            }
            self._tools[call_id] = part
            self._parts.append(part)
        if change.get("arguments"):
            part["arguments"].append(str(change["arguments"]))
        for key in ("status", "output", "error"):
            if key in change:
                part[key] = change[key]

    def tool(self, call_id: str) -> dict[str, Any] | None:
        """One tool part as JSON (None when the message has no such call)."""
        part = self._tools.get(call_id)
        return None if part is None else _part_json(part)

    def tools(self) -> list[dict[str, Any]]:
        return [_part_json(p) for p in self._parts if p["type"] == "tool"]

    def json(self) -> list[dict[str, Any]]:
        return [_part_json(p) for p in self._parts]

    def text(self, kind: str) -> str:
        """The concatenation of the `text` or `thinking` parts (`content`, `thinking`)."""
        return "".join("".join(p["text"]) for p in self._parts if p["type"] == kind)

    def sign(self, signature: str) -> None:
        """Keep a thinking block's signature (Anthropic's) on the last thinking part, so a
        later step can hand the block back. Stored, never streamed: no delta carries it."""
        for part in reversed(self._parts):
            if part["type"] == "thinking":
                part["signature"] = signature
                return

    def plain(self) -> bool:
        """Whether the parts are only [thinking?, text?]: what `content` and `thinking` say
        alone, so storage need not keep them (`parts_of` derives them back)."""
        kinds = [p["type"] for p in self._parts]
        plain = kinds in ([], ["text"], ["thinking"], ["thinking", "text"])
        return plain and not any("signature" in p for p in self._parts)

    def __len__(self) -> int:
        return len(self._parts)


def _part_json(part: Mapping[str, Any]) -> dict[str, Any]:
    copy = dict(part)
    key = "arguments" if part["type"] == "tool" else "text"
    copy[key] = "".join(part[key])
    return copy


def parts_of(content: str, thinking: str) -> list[dict[str, Any]]:
    """The parts of a message stored without any: its thinking, then its text."""
    parts: list[dict[str, Any]] = []
    if thinking:
        parts.append({"id": "p0", "type": "thinking", "text": thinking})
    if content:
        parts.append({"id": f"p{len(parts)}", "type": "text", "text": content})
    return parts


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
    parts = message.get("parts")
    if parts is None:  # a Message of v1, without parts: they follow from its texts
        parts = parts_of(message.get("content") or "", message.get("thinking") or "")
    built = Parts(parts)
    built.add(delta)
    updated["parts"] = built.json()
    updated["seq"] = delta.seq
    if updated.get("status") in ("pending", "requires_action"):
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
