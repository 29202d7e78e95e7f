"""Events of PROTOCOL.md as values: a type, its JSON (encoded once), and a cursor.

Pure. The log stores `Event`s with their JSON already encoded, so a thousand
subscribers of one chat cost one `json.dumps`, not a thousand. Imports only
`stream`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from json.encoder import encode_basestring as _string  # what dumps uses for a str, in C
from typing import Any

from gapless.stream import Delta


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a stream. `cursor` is empty until the log appends it; `reset` has none."""

    type: str
    data: str
    cursor: str = ""

    def payload(self) -> Any:
        return json.loads(self.data)


def encode(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def make(type: str, payload: Any) -> Event:
    return Event(type, encode(payload))


def delta(value: Delta) -> Event:
    """`message.delta`, encoded by hand: the hottest JSON of the service (one per token), and
    byte for byte what `encode(value.to_json())` gives, at a third of the cost."""
    data = f'{{"message_id":{_string(value.message_id)},"seq":{value.seq}'
    if value.content:
        data += f',"content":{_string(value.content)}'
    if value.thinking:
        data += f',"thinking":{_string(value.thinking)}'
    if value.tool:
        data += f',"tool":{_tool(value.tool)}'
    return Event("message.delta", data + "}")


def _tool(change: Any) -> str:
    """A tool change's JSON: by hand while every value is text (a call's name, each piece
    of its arguments, its status, its output), as `encode` would write it; else `encode`."""
    fields = []
    for key, item in change.items():
        if not isinstance(item, str):
            return encode(change)
        fields.append(f"{_string(key)}:{_string(item)}")
    return "{" + ",".join(fields) + "}"


def message(type: str, message: dict[str, Any]) -> Event:
    """`message.created`, `message.updated` (entering `requires_action`) or a final
    `message.completed|failed|cancelled`, with the whole Message."""
    return make(type, message)


def reset(reason: str) -> Event:
    return make("reset", {"reason": reason})
