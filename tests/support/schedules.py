"""One client's life against one reply's log, driven by a random schedule (hypothesis).

A schedule reads events, replays some already seen, loses some (the next one
is a gap), receives `reset`, or reloads the page; a client that must refetch
loads the state the server would serve at that moment (`state_at`: the row
lagging the log by any number of deltas, with the cursor the server computes).
The property tests of the text rules and of the parts rules share it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from gapless.stream import Replica

StateAt = Callable[[list[dict[str, Any]], int, int], dict[str, Any]]

actions = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.integers(1, 6)),
        st.tuples(st.just("replay"), st.integers(1, 5)),
        st.tuples(st.just("lose"), st.integers(1, 3)),
        st.tuples(st.just("reset"), st.integers(0, 0)),
        st.tuples(st.just("reload"), st.integers(0, 60)),
    ),
    max_size=40,
)


def play(
    log: list[dict[str, Any]],
    state_at: StateAt,
    start: int,
    flushed: int,
    schedule: list[tuple[str, int]],
    check: Callable[[Replica, bool], None],
) -> Replica:
    """Run the schedule, then the stream to its end; `check(replica, reloaded)` after each
    step (`reloaded`: a fresh page, whose own history starts there). The last replica."""
    head = min(start, len(log))  # events published before the client shows up
    replica = Replica()

    def load(at: int, rows: int) -> int:
        state = state_at(log, at, rows)
        replica.load(state["messages"], state["cursor"])
        return int(state["cursor"].split(".")[1])

    position = load(head, flushed)  # the subscription delivers log[position:]
    delivered = position  # the replica reflects log[:delivered]: only that can be replayed
    check(replica, True)
    for action, amount in schedule:
        reloaded = False
        if action == "read":
            for event in log[position : position + amount]:
                position += 1
                head = max(head, position)
                if not replica.receive(event["type"], event["data"], event["cursor"]):
                    position = load(head, amount)
                    break
            delivered = position
        elif action == "replay":  # an overlapping replay: duplicates only
            for event in log[max(0, delivered - amount) : delivered]:
                assert replica.receive(event["type"], event["data"], event["cursor"])
        elif action == "lose":  # deltas that never arrive: the next one is a gap
            position = min(position + amount, len(log) - 1)
            head = max(head, position)
        elif action == "reset":
            assert not replica.receive("reset", {"reason": "test"}, None)
            position = delivered = load(head, flushed)
        else:  # reload the page: a fresh replica from a fresh state
            replica, reloaded = Replica(), True
            head = min(max(head, amount), len(log))
            position = delivered = load(head, amount)
        check(replica, reloaded)
    for _ in range(len(log) + 2):  # then the stream runs to its end
        if position >= len(log):
            break
        event = log[position]
        position += 1
        if not replica.receive(event["type"], event["data"], event["cursor"]):
            position = load(len(log) - 1, len(log))
        check(replica, False)
    return replica
