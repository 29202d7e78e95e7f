"""The EventLog contract: every engine replays after a cursor, goes live, and resets loudly."""

from __future__ import annotations

import asyncio
import uuid

from gapless import events
from gapless.log.base import BATCH, EventLog
from gapless.stream import parse_cursor


def fresh() -> str:
    return f"chat:{uuid.uuid4().hex}"


async def append_n(log: EventLog, stream: str, n: int, start: int = 0) -> list[str]:
    cursors = []
    for i in range(start, start + n):
        stored = await log.append(stream, events.make("test", {"i": i}))
        cursors.append(stored.cursor)
    return cursors


async def drain(sub, count: int) -> list[events.Event]:  # type: ignore[no-untyped-def]
    got: list[events.Event] = []
    while len(got) < count:
        got.extend(await sub.next())
    return got


async def test_appended_events_get_increasing_valid_cursors(log: EventLog) -> None:
    stream = fresh()
    cursors = await append_n(log, stream, 5)
    parsed = [parse_cursor(c) for c in cursors]
    assert parsed == sorted(parsed)
    assert len(set(cursors)) == 5
    assert all(len(c) <= 256 for c in cursors)


async def test_subscribe_from_cursor_replays_everything_after_it_then_goes_live(
    log: EventLog,
) -> None:
    stream = fresh()
    cursors = await append_n(log, stream, 5)
    sub = await log.subscribe(stream, cursors[1])
    replayed = await drain(sub, 3)
    assert [e.payload()["i"] for e in replayed] == [2, 3, 4]
    assert [e.cursor for e in replayed] == cursors[2:]
    await append_n(log, stream, 2, start=5)
    live = await drain(sub, 2)
    assert [e.payload()["i"] for e in live] == [5, 6]
    await sub.close()


async def test_subscribe_without_cursor_delivers_only_what_is_appended_after(log: EventLog) -> None:
    stream = fresh()
    await append_n(log, stream, 3)
    sub = await log.subscribe(stream, None)
    await append_n(log, stream, 2, start=3)
    got = await drain(sub, 2)
    assert [e.payload()["i"] for e in got] == [3, 4]
    await sub.close()


async def test_head_of_an_empty_stream_replays_its_first_event(log: EventLog) -> None:
    stream = fresh()
    head = await log.head(stream)
    await append_n(log, stream, 1)
    sub = await log.subscribe(stream, head)
    got = await drain(sub, 1)
    assert got[0].payload() == {"i": 0}
    await sub.close()


async def test_head_is_the_newest_cursor(log: EventLog) -> None:
    stream = fresh()
    cursors = await append_n(log, stream, 3)
    assert await log.head(stream) == cursors[-1]


async def test_a_waiting_subscriber_wakes_on_append(log: EventLog) -> None:
    stream = fresh()
    sub = await log.subscribe(stream, await log.head(stream))
    waiting = asyncio.create_task(sub.next())
    await asyncio.sleep(0)
    assert not waiting.done()
    await append_n(log, stream, 1)
    got = await asyncio.wait_for(waiting, 5)
    assert got[0].payload() == {"i": 0}
    await sub.close()


async def test_many_subscribers_each_get_every_event_in_order(log: EventLog) -> None:
    stream = fresh()
    start = await log.head(stream)
    subs = [await log.subscribe(stream, start) for _ in range(5)]
    await append_n(log, stream, 50)
    for sub in subs:
        got = await drain(sub, 50)
        assert [e.payload()["i"] for e in got] == list(range(50))
        await sub.close()


async def test_a_subscriber_that_reads_nothing_does_not_block_the_producer_or_others(
    log: EventLog,
) -> None:
    stream = fresh()
    start = await log.head(stream)
    idle = await log.subscribe(stream, start)
    busy = await log.subscribe(stream, start)
    await append_n(log, stream, 1000)
    got = await drain(busy, 1000)
    assert len(got) == 1000
    late = await drain(idle, 1000)  # the idle one still catches up from the log
    assert [e.payload()["i"] for e in late] == list(range(1000))
    await idle.close()
    await busy.close()


async def reset_reason(log: EventLog, stream: str, cursor: str) -> str:
    sub = await log.subscribe(stream, cursor)
    got = await asyncio.wait_for(sub.next(), 5)
    await sub.close()
    assert [e.type for e in got] == ["reset"]
    assert got[0].cursor == ""
    return str(got[0].payload()["reason"])


async def test_malformed_cursor_is_reset(log: EventLog) -> None:
    stream = fresh()
    await append_n(log, stream, 1)
    for bad in ["", "nonsense", "a.b.c", "x" * 300, "../etc", "abc.-1", "abc.1-2-3"]:
        assert await reset_reason(log, stream, bad)


async def test_cursor_from_another_stream_is_reset(log: EventLog) -> None:
    one, other = fresh(), fresh()
    await append_n(log, one, 3)
    foreign = await append_n(log, other, 3)
    assert await reset_reason(log, one, foreign[0])


async def test_cursor_from_the_future_is_reset(log: EventLog) -> None:
    stream = fresh()
    cursors = await append_n(log, stream, 1)
    parsed = parse_cursor(cursors[0])
    future = f"{parsed.epoch}.{parsed.position[0] + 10**9}-0"
    assert await reset_reason(log, stream, future)


async def test_trimmed_history_resets_an_old_cursor_but_not_a_recent_one(log: EventLog) -> None:
    stream = fresh()
    cursors = await append_n(log, stream, 3)
    await log.trim(older_than=4e9, keep={stream: cursors[1]})  # everything is old; keep after [1]
    assert await reset_reason(log, stream, cursors[0])
    sub = await log.subscribe(stream, cursors[1])
    got = await drain(sub, 1)
    assert got[0].payload() == {"i": 2}
    await sub.close()


async def test_trim_keeps_recent_events(log: EventLog) -> None:
    stream = fresh()
    cursors = await append_n(log, stream, 3)
    await log.trim(older_than=0, keep={})
    sub = await log.subscribe(stream, cursors[0])
    got = await drain(sub, 2)
    assert [e.payload()["i"] for e in got] == [1, 2]
    await sub.close()


async def test_a_subscriber_overtaken_by_trimming_gets_reset_not_a_gap(log: EventLog) -> None:
    stream = fresh()
    start = await log.head(stream)
    sub = await log.subscribe(stream, start)
    await append_n(log, stream, 3)
    await log.trim(older_than=4e9, keep={})
    got = await sub.next()
    assert got[-1].type == "reset"
    assert all(e.type == "reset" for e in got)
    await sub.close()


async def test_fully_trimmed_stream_still_answers_a_usable_head(log: EventLog) -> None:
    stream = fresh()
    await append_n(log, stream, 2)
    await log.trim(older_than=4e9, keep={})
    head = await log.head(stream)
    sub = await log.subscribe(stream, head)
    await append_n(log, stream, 1, start=7)
    got = await drain(sub, 1)
    assert got[0].payload() == {"i": 7}
    await sub.close()


async def test_streams_are_independent(log: EventLog) -> None:
    one, other = fresh(), fresh()
    sub = await log.subscribe(one, await log.head(one))
    await append_n(log, other, 3)
    await append_n(log, one, 1, start=9)
    got = await drain(sub, 1)
    assert got[0].payload() == {"i": 9}
    await sub.close()


async def test_replay_of_more_than_a_batch_arrives_whole_in_order_in_bounded_batches(
    log: EventLog,
) -> None:
    stream = fresh()
    start = await log.head(stream)
    total = 2 * BATCH + 10
    await append_n(log, stream, total)
    sub = await log.subscribe(stream, start)
    got: list[events.Event] = []
    while len(got) < total:
        batch = await sub.next()
        assert 0 < len(batch) <= BATCH
        got.extend(batch)
    assert [e.payload()["i"] for e in got] == list(range(total))
    await sub.close()


async def test_events_appended_during_a_replay_follow_it_exactly_once(log: EventLog) -> None:
    stream = fresh()
    start = await log.head(stream)
    await append_n(log, stream, BATCH + 5)
    sub = await log.subscribe(stream, start)
    got = await sub.next()
    await append_n(log, stream, BATCH + 5, start=BATCH + 5)
    got.extend(await drain(sub, 2 * BATCH + 10 - len(got)))
    assert [e.payload()["i"] for e in got] == list(range(2 * BATCH + 10))
    await sub.close()


async def test_resubscribing_after_the_last_subscriber_left_misses_nothing(log: EventLog) -> None:
    stream = fresh()
    first = await log.subscribe(stream, None)
    await append_n(log, stream, 1)
    seen = await drain(first, 1)
    await first.close()
    await append_n(log, stream, 2, start=1)
    again = await log.subscribe(stream, seen[-1].cursor)
    got = await drain(again, 2)
    assert [e.payload()["i"] for e in got] == [1, 2]
    await again.close()


async def test_subscribers_joining_while_events_stream_get_each_later_one_once_in_order(
    log: EventLog,
) -> None:
    stream = fresh()
    total, joiners = 1200, 24  # joiner k joins after about k / joiners of the events
    cursors: list[str] = []
    subscribed: list[int] = []
    appended = asyncio.Condition()

    async def produce() -> None:
        for i in range(total):
            if i == total - 1:  # the last one waits for every joiner, so each has one to see
                async with appended:
                    await appended.wait_for(lambda: len(subscribed) == joiners)
            cursors.append((await log.append(stream, events.make("test", {"i": i}))).cursor)
            async with appended:
                appended.notify_all()
            await asyncio.sleep(0)  # let joiners in between appends, for every engine

    async def join(k: int) -> None:
        async with appended:
            await appended.wait_for(lambda: len(cursors) >= k * total // joiners)
        known = len(cursors)
        cursor = cursors[known - 1 - k % 7] if k % 2 and known > 7 else None
        sub = await log.subscribe(stream, cursor)
        async with appended:
            subscribed.append(k)
            appended.notify_all()
        got = [e.payload()["i"] for e in await drain(sub, 1)]
        while got[-1] != total - 1:
            got.extend(e.payload()["i"] for e in await sub.next())
        await sub.close()
        if cursor is None:
            assert got[0] >= known  # nothing from before the subscription
        else:
            assert got[0] == cursors.index(cursor) + 1  # everything after the cursor
        assert got == list(range(got[0], total))

    await asyncio.wait_for(asyncio.gather(produce(), *(join(k) for k in range(joiners))), 60)


async def test_a_revoked_fence_refuses_appends_and_others_go_on(log: EventLog) -> None:
    from gapless.errors import FencedError

    stream = fresh()
    fence = f"msg_{uuid.uuid4().hex}"
    first = await log.append(stream, events.make("test", {"i": 0}), fence=fence)
    await log.revoke(fence)
    try:
        await log.append(stream, events.make("test", {"i": 1}), fence=fence)
        raise AssertionError("a revoked fence must refuse the append")
    except FencedError:
        pass
    last = await log.append(stream, events.make("test", {"i": 2}))  # unfenced: the final event
    other = await log.append(stream, events.make("test", {"i": 3}), fence=f"{fence}x")
    sub = await log.subscribe(stream, first.cursor)
    got = await drain(sub, 2)
    assert [e.payload()["i"] for e in got] == [2, 3]
    assert [e.cursor for e in got] == [last.cursor, other.cursor]
    await sub.close()


async def test_cancelling_a_waiting_next_loses_nothing(log: EventLog) -> None:
    stream = fresh()
    sub = await log.subscribe(stream, await log.head(stream))
    waiting = asyncio.create_task(sub.next())
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    await append_n(log, stream, 2)
    got = await drain(sub, 2)
    assert [e.payload()["i"] for e in got] == [0, 1]
    await sub.close()
