"""Events of PROTOCOL.md as values: a type, its JSON (encoded once), and a cursor.

Pure. The log stores `Event`s with their JSON already encoded, so a thousand
subscribers of one chat cost one `json.dumps`, not a thousand. Imports only
`stream`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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
    return make("message.delta", value.to_json())


def message(type: str, message: dict[str, Any]) -> Event:
    """`message.created` or a final `message.completed|failed|cancelled` with the whole Message."""
    return make(type, message)


def reset(reason: str) -> Event:
    return make("reset", {"reason": reason})
