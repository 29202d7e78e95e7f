"""The pure streaming rules: cursors, judge/apply/supersedes, and the reducer under any schedule.

`reducer_cases.json` is shared with the browser's reducer (tests/js), so the
two implementations cannot drift. The hypothesis schedules play a reply's log
against a client that loads lagging states, loses its connection, receives
duplicates, misses deltas and gets resets, and check prefix, convergence and
exactly-once at every step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gapless import events
from gapless.errors import CursorError
from gapless.stream import (
    Cursor,
    Delta,
    Replica,
    Verdict,
    apply,
    flush_due,
    judge,
    parse_cursor,
    supersedes,
)
from tests.support.schedules import actions, play

CASES = json.loads((Path(__file__).parent / "reducer_cases.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_shared_reducer_case(case: dict[str, Any]) -> None:
    replica = Replica()
    replica.load(case["state"], case.get("cursor"))
    refetch = False
    for event in case["events"]:
        if not replica.receive(event["type"], event["data"], event.get("cursor")):
            refetch = True
    expect = case["expect"]
    assert refetch == expect.get("refetch", False)
    for message_id, fields in expect.get("messages", {}).items():
        assert message_id in replica.messages, message_id
        for name, value in fields.items():
            assert replica.messages[message_id].get(name) == value, (message_id, name)
    for message_id in expect.get("absent", []):
        assert message_id not in replica.messages


def test_cursor_round_trips_and_sorts() -> None:
    cursor = Cursor("abc_~Z9", (17, 3))
    assert parse_cursor(str(cursor)) == cursor
    assert parse_cursor("e.5") == Cursor("e", (5, 0))
    assert parse_cursor("e.5-0") < parse_cursor("e.5-1") < parse_cursor("e.6-0")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "e",
        "e.",
        ".5",
        "e.5-",
        "e.-5",
        "e.5-1-2",
        "e f.5",
        "e.5x",
        "x" * 70 + ".1",
        "é.1",
        "e.1" + "0" * 300,
    ],
)
def test_malformed_cursors_are_refused(bad: str) -> None:
    with pytest.raises(CursorError):
        parse_cursor(bad)


@given(
    st.text(alphabet="abcXYZ019_~", min_size=1, max_size=64),
    st.integers(0, 10**19),
    st.integers(0, 10**19),
)
def test_every_cursor_is_url_safe_and_parses_back(epoch: str, major: int, minor: int) -> None:
    text = str(Cursor(epoch, (major, minor)))
    assert len(text) <= 256
    assert all(c.isalnum() or c in "-_.~" for c in text)
    assert parse_cursor(text) == Cursor(epoch, (major, minor))


def test_judge() -> None:
    assert judge(3, 4) is Verdict.APPLY
    assert judge(3, 3) is Verdict.SKIP
    assert judge(3, 1) is Verdict.SKIP
    assert judge(3, 5) is Verdict.GAP
    assert judge(0, 1) is Verdict.APPLY


def test_apply_appends_both_texts_and_starts_streaming() -> None:
    message = {"content": "a", "thinking": None, "seq": 1, "status": "pending"}
    updated = apply(message, Delta("m", 2, content="b", thinking="t"))
    assert updated == {
        "content": "ab",
        "thinking": "t",
        "parts": [
            {"id": "p0", "type": "text", "text": "a"},
            {"id": "p1", "type": "thinking", "text": "t"},
            {"id": "p2", "type": "text", "text": "b"},
        ],
        "seq": 2,
        "status": "streaming",
    }
    assert message["content"] == "a"  # pure: the input is untouched


def test_supersedes() -> None:
    streaming = {"seq": 3, "status": "streaming"}
    assert supersedes({"seq": 3, "status": "complete"}, streaming)
    assert supersedes({"seq": 4, "status": "streaming"}, streaming)
    assert not supersedes({"seq": 2, "status": "complete"}, streaming)
    assert not supersedes({"seq": 3, "status": "streaming"}, {"seq": 3, "status": "cancelled"})
    assert supersedes({"seq": 3, "status": "failed"}, {"seq": 3, "status": "complete"})


def test_flush_due() -> None:
    assert not flush_due(10.0, 10.1, 0.2)
    assert flush_due(10.0, 10.25, 0.2)
    assert flush_due(10.0, 10.0, 0.0)


# ---- schedules ---------------------------------------------------------------


def build_log(chunks: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """created, deltas 1..n, completed: positions 1..n+2 (cursor "e.<pos>")."""
    base = {"id": "a", "chat_id": "c", "parent_id": None, "role": "assistant", "error": None}
    log = [
        {
            "type": "message.created",
            "data": {**base, "content": "", "thinking": "", "seq": 0, "status": "pending"},
        }
    ]
    for seq, (content, thinking) in enumerate(chunks, 1):
        log.append(
            {
                "type": "message.delta",
                "data": {"message_id": "a", "seq": seq, "content": content, "thinking": thinking},
            }
        )
    log.append(
        {
            "type": "message.completed",
            "data": {
                **base,
                "content": "".join(c for c, _ in chunks),
                "thinking": "".join(t for _, t in chunks),
                "seq": len(chunks),
                "status": "complete",
            },
        }
    )
    for position, event in enumerate(log, 1):
        event["cursor"] = f"e.{position}"
    return log


def state_at(log: list[dict[str, Any]], head: int, flushed: int) -> dict[str, Any]:
    """What GET /api/chats answers when `head` events are out and the row reflects
    `flushed` deltas: the row, and the cursor the server computes for it."""
    if head == 0:
        return {"messages": [], "cursor": "e.0"}
    n = len(log) - 2
    if head == len(log):
        return {"messages": [log[-1]["data"]], "cursor": log[-1]["cursor"]}
    flushed = min(flushed, head - 1)
    deltas = [e["data"] for e in log[1 : 1 + flushed]]
    row = {
        **log[0]["data"],
        "seq": flushed,
        "content": "".join(d["content"] for d in deltas),
        "thinking": "".join(d["thinking"] for d in deltas),
        "status": "streaming" if flushed else "pending",
    }
    assert flushed <= n
    # the oldest of the head and the row's stored position (its last flushed delta)
    position = min(head, 1 + flushed)
    return {"messages": [row], "cursor": f"e.{position}"}


@settings(max_examples=400, deadline=None)
@given(
    chunks=st.lists(st.tuples(st.text(max_size=3), st.text(max_size=2)), min_size=0, max_size=15),
    start=st.integers(0, 20),
    flushed=st.integers(0, 20),
    schedule=actions,
)
def test_any_schedule_keeps_prefix_and_converges_exactly_once(
    chunks: list[tuple[str, str]], start: int, flushed: int, schedule: list[tuple[str, int]]
) -> None:
    # Tag every chunk so a doubled or reordered chunk could never pass as a prefix.
    chunks = [(f"<{i}:{c}>", f"[{i}:{t}]" if t else "") for i, (c, t) in enumerate(chunks)]
    log = build_log(chunks)
    final = log[-1]["data"]

    def check(replica: Replica, reloaded: bool) -> None:
        shown = replica.messages.get("a")
        if shown is not None:
            assert final["content"].startswith(shown["content"] or "")
            assert final["thinking"].startswith(shown["thinking"] or "")

    replica = play(log, state_at, start, flushed, schedule, check)
    assert replica.messages["a"]["content"] == final["content"]
    assert replica.messages["a"]["thinking"] == final["thinking"]
    assert replica.messages["a"]["seq"] == final["seq"]
    assert replica.messages["a"]["status"] == "complete"


@given(
    st.text(),
    st.integers(min_value=1, max_value=10**9),
    st.text(),
    st.text(),
)
def test_a_hand_encoded_delta_is_byte_for_byte_the_json_encoding(
    message_id: str, seq: int, content: str, thinking: str
) -> None:
    value = Delta(message_id, seq, content=content, thinking=thinking)
    assert events.delta(value).data == events.encode(value.to_json())
