"""Parts (PROTOCOL.md v1.1) under any schedule: property tests of the pure rules.

A reply's deltas mix text, thinking and tool calls (names, argument pieces,
statuses, outputs). Whatever a client misses, receives twice, or refetches, and
whenever it loads a state that lags the log: every part it shows is, in place,
a prefix of the final part; a tool's status only moves forward; the end is
exactly the final Message's parts. Every piece is tagged, so a doubled or
reordered piece could never pass as a prefix.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gapless import events
from gapless.stream import TOOL_STATUSES, Delta, Parts, Replica
from tests.support.clients import assert_parts_prefix
from tests.support.schedules import actions, play

# one delta: ("text"|"thinking", piece) or ("tool", call index, what)
pieces = st.one_of(
    st.tuples(st.sampled_from(["text", "thinking"]), st.text(max_size=3)),
    st.tuples(st.just("tool"), st.integers(0, 2), st.sampled_from(["args", "run", "end"])),
)


def deltas_of(plan: list[tuple[Any, ...]]) -> list[Delta]:
    """The deltas a run would publish: a call starts when first named, its status only
    moves forward (input -> running -> complete), no change after it ended."""
    made: list[Delta] = []
    state: dict[int, str] = {}
    for n, step in enumerate(plan):
        seq = len(made) + 1
        if step[0] in ("text", "thinking"):
            text = f"<{n}:{step[1]}>"
            made.append(Delta("a", seq, **{"content" if step[0] == "text" else "thinking": text}))
            continue
        _, index, what = step
        call = f"call_{index}"
        status = state.get(index)
        if status is None:
            state[index] = "input"
            made.append(Delta("a", seq, tool={"id": call, "name": f"tool{index}"}))
        elif status == "input" and what == "args":
            made.append(Delta("a", seq, tool={"id": call, "arguments": f"[{n}]"}))
        elif status == "input" and what == "run":
            state[index] = "running"
            made.append(Delta("a", seq, tool={"id": call, "status": "running"}))
        elif status == "running" and what == "end":
            state[index] = "complete"
            made.append(Delta("a", seq, tool={"id": call, "status": "complete", "output": f"o{n}"}))
    return made


def build_log(deltas: list[Delta]) -> list[dict[str, Any]]:
    base = {"id": "a", "chat_id": "c", "parent_id": None, "role": "assistant", "error": None}
    parts = Parts()
    for delta in deltas:
        parts.add(delta)
    empty = {"content": "", "thinking": "", "parts": [], "seq": 0, "status": "pending"}
    log: list[dict[str, Any]] = [{"type": "message.created", "data": {**base, **empty}}]
    log += [{"type": "message.delta", "data": d.to_json()} for d in deltas]
    final = {
        **base,
        "content": parts.text("text"),
        "thinking": parts.text("thinking"),
        "parts": parts.json(),
        "seq": len(deltas),
        "status": "complete",
    }
    log.append({"type": "message.completed", "data": final})
    for position, event in enumerate(log, 1):
        event["cursor"] = f"e.{position}"
    return log


def state_at(log: list[dict[str, Any]], head: int, flushed: int) -> dict[str, Any]:
    """GET /api/chats when `head` events are out and the row reflects `flushed` deltas."""
    if head == 0:
        return {"messages": [], "cursor": "e.0"}
    if head == len(log):
        return {"messages": [log[-1]["data"]], "cursor": log[-1]["cursor"]}
    flushed = min(flushed, head - 1)
    parts = Parts()
    for event in log[1 : 1 + flushed]:
        parts.add(Delta.from_json(event["data"]))
    row = {
        **log[0]["data"],
        "seq": flushed,
        "content": parts.text("text"),
        "thinking": parts.text("thinking"),
        "parts": parts.json(),
        "status": "streaming" if flushed else "pending",
    }
    return {"messages": [row], "cursor": f"e.{min(head, 1 + flushed)}"}


@settings(max_examples=400, deadline=None)
@given(
    plan=st.lists(pieces, max_size=25),
    start=st.integers(0, 30),
    flushed=st.integers(0, 30),
    schedule=actions,
)
def test_any_schedule_of_parts_keeps_prefixes_moves_forward_and_converges(
    plan: list[tuple[Any, ...]], start: int, flushed: int, schedule: list[tuple[str, int]]
) -> None:
    log = build_log(deltas_of(plan))
    final = log[-1]["data"]
    statuses: dict[str, int] = {}

    def check(replica: Replica, reloaded: bool) -> None:
        if reloaded:
            statuses.clear()  # a reloaded page starts its own history
        shown = replica.messages.get("a")
        if shown is None:
            return
        assert_parts_prefix(shown["parts"], final["parts"])
        assert final["content"].startswith(shown["content"])
        assert final["thinking"].startswith(shown["thinking"])
        for part in shown["parts"]:
            if part["type"] == "tool":
                rank = TOOL_STATUSES.index(part["status"])
                assert rank >= statuses.get(part["id"], 0), "a status moved back"
                statuses[part["id"]] = rank

    replica = play(log, state_at, start, flushed, schedule, check)
    assert replica.messages["a"]["parts"] == final["parts"]
    assert replica.messages["a"]["seq"] == final["seq"]


@given(plan=st.lists(pieces, max_size=25))
def test_parts_built_in_one_go_equal_parts_built_delta_by_delta_from_json(
    plan: list[tuple[Any, ...]],
) -> None:
    """The job's builder (pieces kept in lists) and a client's (a Message's parts, one
    delta at a time) agree, and what is stored reads back the same."""
    deltas = deltas_of(plan)
    whole = Parts()
    for delta in deltas:
        whole.add(delta)
    message: list[dict[str, Any]] = []
    for delta in deltas:
        step = Parts(message)
        step.add(Delta.from_json(delta.to_json()))
        message = step.json()
    assert message == whole.json() == Parts(whole.json()).json()


@given(st.text(), st.integers(1, 10**6), st.text(), st.dictionaries(st.text(), st.text()))
def test_a_hand_encoded_tool_delta_is_byte_for_byte_the_json_encoding(
    message_id: str, seq: int, content: str, extra: dict[str, str]
) -> None:
    value = Delta(message_id, seq, content=content, tool={**extra, "id": "c1"})
    assert events.delta(value).data == events.encode(value.to_json())
