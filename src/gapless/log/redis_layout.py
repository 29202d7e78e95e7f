"""How `RedisLog` lays a log out in Redis, and what a cursor means against it: pure rules.

One Redis stream per log stream (`<prefix>s:<name>`), whose entries carry, in
one field `e` (`n epoch type data`: one field parses in half the time of four),
a count `n`, the stream's epoch, the event's type and its already-encoded JSON.
A hash beside it (`<prefix>m:<name>`) holds the epoch, the count, the last id
ever appended and the trim floor (the highest id trimmed away). A cursor is
`epoch.<ms>-<seq>`, the Redis id under the epoch: a FLUSHALL, a restart without
persistence or an expiry loses the hash with the stream, so an old cursor
carries an unknown epoch and is answered `reset`, never a silent gap.
Kept apart from the I/O so that `redis.py` (commands) and `redis_reader.py` (the
follower) read the same layout from one place. Imports `stream`, `errors`; no `redis`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from gapless.errors import CursorError
from gapless.stream import Cursor, Position, parse_cursor


def stream_keys(prefix: str, stream: str) -> list[str]:
    """The keys of `stream`'s entries and of its hash, first of every script's KEYS."""
    return [f"{prefix}s:{stream}", f"{prefix}m:{stream}"]


def parse_id(redis_id: str | None) -> Position:
    major, _, minor = (redis_id or "0-0").partition("-")
    return int(major), int(minor or 0)


def format_id(position: Position) -> str:
    return f"{position[0]}-{position[1]}"


def unpack(fields: list[str] | Mapping[str, str]) -> tuple[int, str, str, str]:
    """An entry's count, epoch, type and data (raw from XREAD, or as redis-py reads it):
    from its one field `e` (`n epoch type data`: only the data has spaces), or from
    the four fields `n`, `epoch`, `type`, `data` of entries appended by older versions."""
    if isinstance(fields, list):
        if len(fields) == 2:
            n, epoch, type_, data = fields[1].split(" ", 3)
            return int(n), epoch, type_, data
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    if "e" in fields:
        n, epoch, type_, data = fields["e"].split(" ", 3)
        return int(n), epoch, type_, data
    return int(fields.get("n", 0)), fields.get("epoch", ""), fields["type"], fields["data"]


def new_epoch() -> str:
    return secrets.token_urlsafe(9).replace("-", "~")


def trim_bound(cursor: str | None, age: Position) -> tuple[str, str]:
    """The keep cursor's epoch and the id trimming may reach: the entry after it, or `age`."""
    if cursor is None:
        return "", format_id(age)
    try:
        parsed = parse_cursor(cursor)
    except CursorError:
        return "", format_id(age)
    major, minor = parsed.position
    return parsed.epoch, format_id(min(age, (major, minor + 1)))


def judge(cursor: Cursor | None, state: State) -> str:
    """Why `cursor` cannot be followed in `state`, or "" when it can.

    Cursors name appended entries, or the empty start, so a valid one above the
    floor is still in Redis: one that is not was lost (say, a restore from an
    older snapshot) or made up, and replaying after it could skip events.
    """
    if cursor is None:
        return ""
    if cursor.epoch != state.epoch or cursor.position > state.last:
        return "unknown"
    if cursor.position < state.floor:
        return "expired"
    return "" if state.seen or cursor.position == state.floor else "unknown"


@dataclass(frozen=True)
class State:
    """A stream's hash as `redis_lua.STATE` read it, with whether a cursor's entry is there."""

    epoch: str
    last: Position
    floor: Position
    n: int
    seen: bool  # the entry at the position asked about is still in Redis
