"""What only the Redis engine shows: lost history resets, one reader per process, processes meet.

Real Redis (see `tests/contract/redis_engine.py`); its keys are deleted, never FLUSHALL,
since the server may be shared. Nothing sleeps: tests await the events themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from gapless import events
from gapless.errors import FencedError
from gapless.log import redis_lua
from gapless.log.base import BATCH, Subscription
from gapless.log.redis import RedisLog
from tests.contract import test_log_contract as contract
from tests.contract.redis_engine import URL, drop_prefix, scoped
from tests.contract.test_log_contract import append_n, drain, fresh


async def next_types(sub: Subscription) -> list[str]:
    return [e.type for e in await asyncio.wait_for(sub.next(), 10)]


async def reason(sub: Subscription) -> str:
    got = await asyncio.wait_for(sub.next(), 10)
    assert [e.type for e in got] == ["reset"]
    return str(got[0].payload()["reason"])


async def connections(name: str) -> int:
    client = Redis.from_url(URL, decode_responses=True)
    try:
        return sum(1 for c in await client.client_list() if c.get("name") == name)
    finally:
        await client.aclose()


async def test_a_cursor_into_lost_history_is_reset_never_replayed() -> None:
    log = scoped()
    stream = fresh()
    cursors = await append_n(log, stream, 3)
    await drop_prefix(log.prefix)  # what FLUSHALL or a restart without persistence does to us
    await append_n(log, stream, 2)
    assert await reason(await log.subscribe(stream, cursors[0])) == "unknown"
    assert (await log.head(stream)).split(".")[0] != cursors[0].split(".")[0]
    await log.close()


async def test_a_live_subscriber_whose_history_is_lost_is_reset() -> None:
    log = scoped()
    stream = fresh()
    sub = await log.subscribe(stream, None)
    await append_n(log, stream, 1)
    await drain(sub, 1)
    await drop_prefix(log.prefix)
    await append_n(log, stream, 1, start=1)  # a new history: the reader sees its epoch
    assert await reason(sub) == "lost"
    await sub.close()
    await log.close()


async def test_a_stream_lost_while_its_epoch_survived_gets_a_new_epoch() -> None:
    log = scoped()
    stream = fresh()
    cursors = await append_n(log, stream, 2)
    client = Redis.from_url(URL)
    await client.delete(f"{log.prefix}s:{stream}")  # e.g. evicted alone
    await client.aclose()
    await append_n(log, stream, 1, start=2)
    assert await reason(await log.subscribe(stream, cursors[1])) == "unknown"
    await log.close()


async def test_many_subscribers_share_one_reader_and_an_idle_one_blocks_nobody() -> None:
    name = f"gapless-test-{uuid.uuid4().hex}"
    log = scoped(f"{URL}?client_name={name}")
    streams = [fresh() for _ in range(10)]
    first = await log.subscribe(streams[0], None)
    await append_n(log, streams[0], 1)
    await drain(first, 1)
    before = await connections(name)
    subs = [await log.subscribe(stream, None) for stream in streams for _ in range(20)]
    idle = subs.pop()  # never reads until the end
    for stream in streams:
        await append_n(log, stream, 50)
    for sub in subs:
        assert [e.payload()["i"] for e in await drain(sub, 50)] == list(range(50))
    assert await connections(name) == before == 3  # commands, pipelined appends, one reader
    assert len(await drain(idle, 50)) == 50
    for sub in [first, idle, *subs]:
        await sub.close()
    await log.close()


async def test_a_subscriber_behind_the_ring_replays_from_redis_then_joins_it() -> None:
    log = scoped(ring=4)
    stream = fresh()
    start = await log.head(stream)
    live = await log.subscribe(stream, start)
    lagging = await log.subscribe(stream, start)
    await append_n(log, stream, BATCH + 100)
    await drain(live, BATCH + 100)  # the reader has read them all: the ring holds only the last
    got = await lagging.next()
    await append_n(log, stream, 10, start=BATCH + 100)
    got.extend(await drain(lagging, BATCH + 110 - len(got)))
    assert [e.payload()["i"] for e in got] == list(range(BATCH + 110))
    for sub in (live, lagging):
        await sub.close()
    await log.close()


async def test_an_event_appended_by_one_process_reaches_a_subscriber_of_another() -> None:
    one = scoped()
    other = scoped(prefix=one.prefix)
    stream = fresh()
    sub = await other.subscribe(stream, await one.head(stream))
    stored = await append_n(one, stream, 3)
    got = await drain(sub, 3)
    assert [e.cursor for e in got] == stored
    await sub.close()
    await other.close()
    await one.close()


async def test_a_lagging_subscriber_is_reset_when_another_process_trimmed_its_history() -> None:
    here = scoped(ring=4)
    there = scoped(prefix=here.prefix)
    stream = fresh()
    start = await here.head(stream)
    live = await here.subscribe(stream, start)
    lagging = await here.subscribe(stream, start)
    await append_n(here, stream, 20)
    await drain(live, 20)
    await there.trim(older_than=4e9, keep={})
    assert await reason(lagging) == "behind"
    for sub in (live, lagging):
        await sub.close()
    await there.close()
    await here.close()


async def test_closing_the_log_ends_a_waiting_subscriber_with_reset() -> None:
    log = scoped()
    stream = fresh()
    sub = await log.subscribe(stream, None)
    waiting = asyncio.create_task(sub.next())
    await append_n(log, stream, 1)
    assert await asyncio.wait_for(waiting, 10)
    waiting = asyncio.create_task(sub.next())
    await log.close()
    got = await asyncio.wait_for(waiting, 10)
    assert [e.type for e in got] == ["reset"]


async def test_from_url_builds_a_log_whose_empty_stream_starts_at_zero() -> None:
    prefix = f"gapless:test:{uuid.uuid4().hex}:"
    log = RedisLog.from_url(URL, prefix=prefix)
    try:
        assert (await log.head(fresh())).endswith(".0-0")
    finally:
        await log.close()
        await drop_prefix(prefix)


@pytest.mark.parametrize("name", [name for name in dir(contract) if name.startswith("test_")])
async def test_the_contract_holds_when_the_ring_is_tiny(name: str) -> None:
    """A ring of 4 sends nearly every read through the replay-then-join path."""
    log = scoped(ring=4)
    try:
        await getattr(contract, name)(log)
    finally:
        await log.close()


async def test_the_reader_survives_a_dropped_connection_without_losing_events() -> None:
    name = f"gapless-test-{uuid.uuid4().hex}"
    log = scoped(f"{URL}?client_name={name}")
    stream = fresh()
    sub = await log.subscribe(stream, None)
    await append_n(log, stream, 1)
    await drain(sub, 1)
    admin = Redis.from_url(URL, decode_responses=True)
    clients = await admin.client_list()
    readers = [c["id"] for c in clients if c.get("name") == name and c.get("cmd") == "xread"]
    assert len(readers) == 1
    await admin.client_kill_filter(_id=readers[0])  # the one connection blocked in XREAD
    await admin.aclose()
    await append_n(log, stream, 2, start=1)
    got = await asyncio.wait_for(drain(sub, 2), 20)
    assert [e.payload()["i"] for e in got] == [1, 2]
    await sub.close()
    await log.close()


async def test_a_restore_from_an_older_snapshot_resets_cursors_and_subscribers_it_undid() -> None:
    log = scoped()
    stream = fresh()
    keys = [f"{log.prefix}s:{stream}", f"{log.prefix}m:{stream}"]
    await append_n(log, stream, 2)
    admin = Redis.from_url(URL)
    snapshot = [await admin.dump(key) for key in keys]
    live = await log.subscribe(stream, None)
    undone = await append_n(log, stream, 2, start=2)
    await drain(live, 2)
    for key, value in zip(keys, snapshot, strict=True):  # what restarting from it does
        await admin.restore(key, 0, value, replace=True)
    await asyncio.sleep(0.002)  # ids come from the clock: any real restore takes longer
    await admin.aclose()
    await append_n(log, stream, 3, start=4)  # new ids pass the undone ones: same epoch
    assert await reason(live) == "lost"
    assert await reason(await log.subscribe(stream, undone[0])) == "unknown"
    await live.close()
    await log.close()


async def test_a_cursor_that_names_no_entry_is_reset_not_served() -> None:
    log = scoped()
    stream = fresh()
    cursors = await append_n(log, stream, 3)
    epoch, position = cursors[0].split(".")
    before_first = f"{epoch}.{int(position.split('-')[0]) - 1}-7"  # above the floor, no entry
    for made_up in [before_first, f"{epoch}.{'9' * 20}-0"]:
        assert await reason(await log.subscribe(stream, made_up)) == "unknown"
    await log.close()


# What a process of the previous version appended: the entry's four fields.
FOUR_FIELDS = redis_lua.APPEND.replace(
    "'e',\n                      n .. ' ' .. epoch .. ' ' .. ARGV[3] .. ' ' .. ARGV[4]",
    "'type', ARGV[3], 'data', ARGV[4], 'epoch', epoch, 'n', n",
)


async def test_entries_appended_with_four_fields_by_an_older_version_are_still_read() -> None:
    assert FOUR_FIELDS != redis_lua.APPEND
    log = scoped()
    older = scoped(prefix=log.prefix)
    older._append = older._redis.register_script(FOUR_FIELDS)  # that version's script
    stream = fresh()
    start = await log.head(stream)
    live = await log.subscribe(stream, start)
    await append_n(older, stream, 2)
    await append_n(log, stream, 2, start=2)
    assert [e.payload()["i"] for e in await drain(live, 4)] == [0, 1, 2, 3]  # XREAD
    another = scoped(prefix=log.prefix)  # its follow starts at the head: replays by XRANGE
    replay = await another.subscribe(stream, start)
    assert [e.payload()["i"] for e in await drain(replay, 4)] == [0, 1, 2, 3]
    for sub in (live, replay):
        await sub.close()
    for each in (another, older, log):
        await each.close()


async def test_a_fence_revoked_by_one_process_refuses_the_appends_of_another() -> None:
    runner = scoped()
    stopper = scoped(prefix=runner.prefix)
    stream, fence = fresh(), f"msg_{uuid.uuid4().hex}"
    await runner.append(stream, events.make("test", {"i": 0}), fence=fence)
    await stopper.revoke(fence)
    with pytest.raises(FencedError):
        await runner.append(stream, events.make("test", {"i": 1}), fence=fence)
    await stopper.close()
    await runner.close()


class Proxy:
    """A TCP proxy to the real Redis that can lose one reply in flight, as a network would:
    the next bytes Redis sends back are dropped with the connection, after Redis ran it."""

    def __init__(self) -> None:
        self.dropping = False
        self.dropped = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = URL.removeprefix("redis://").split("/")[0].split(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))

        async def pump(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, back: bool
        ) -> None:
            while data := await source.read(65536):
                if back and self.dropping:
                    self.dropping = False
                    self.dropped += 1
                    break
                sink.write(data)
                await sink.drain()
            for end in (writer, up_writer):
                end.close()

        with contextlib.suppress(OSError):
            await asyncio.gather(pump(reader, up_writer, False), pump(up_reader, writer, True))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.mark.parametrize("fence", [None, "msg_fenced"])
async def test_an_append_whose_reply_was_lost_is_retried_and_stored_once(
    fence: str | None,
) -> None:
    proxy = Proxy()
    await proxy.start()
    log = scoped(f"redis://127.0.0.1:{proxy.port}/0")
    stream = fresh()
    try:
        await append_n(log, stream, 1)
        proxy.dropping = True  # Redis appends the next one; its answer never arrives
        stored = await log.append(stream, events.make("test", {"i": 1}), fence=fence)
        assert proxy.dropped == 1
        admin = Redis.from_url(URL, decode_responses=True)
        entries = await admin.xrange(f"{log.prefix}s:{stream}")
        await admin.aclose()
        stored_data = [fields["e"].split(" ", 3)[3] for _, fields in entries]
        assert [json.loads(data)["i"] for data in stored_data] == [0, 1]
        assert stored.cursor.endswith(f".{entries[-1][0]}")  # the retry answered that entry
        sub = await log.subscribe(stream, None)
        await append_n(log, stream, 1, start=2)  # and the log goes on, counting right
        assert [e.payload()["i"] for e in await drain(sub, 1)] == [2]
        await sub.close()
    finally:
        await log.close()
        await proxy.close()


async def test_concurrent_appends_whose_replies_were_lost_together_are_each_stored_once() -> None:
    """Appends waiting together on the pipelined connection lose their replies together
    (Redis ran them all): each is retried, and each stream holds its entry once."""
    proxy = Proxy()
    await proxy.start()
    log = scoped(f"redis://127.0.0.1:{proxy.port}/0")
    streams = [fresh() for _ in range(20)]
    try:
        await append_n(log, streams[0], 1)  # connected: the next replies all share one line
        proxy.dropping = True
        stored = await asyncio.gather(
            *(
                log.append(stream, events.make("test", {"i": i}), fence=f"msg_{i}")
                for i, stream in enumerate(streams[1:])
            )
        )
        assert proxy.dropped == 1
        admin = Redis.from_url(URL, decode_responses=True)
        for stream, event in zip(streams[1:], stored, strict=True):
            entries = await admin.xrange(f"{log.prefix}s:{stream}")
            assert len(entries) == 1 and event.cursor.endswith(f".{entries[0][0]}")
        await admin.aclose()
    finally:
        await log.close()
        await proxy.close()


async def test_an_error_reply_fails_only_its_own_append() -> None:
    log = scoped()
    broken, fine = fresh(), fresh()
    admin = Redis.from_url(URL)
    await admin.set(f"{log.prefix}m:{broken}", "not a hash")  # the script's HGET is refused
    await admin.aclose()
    results = await asyncio.gather(
        log.append(broken, events.make("test", {"i": 0})),
        log.append(fine, events.make("test", {"i": 0})),
        return_exceptions=True,
    )
    assert isinstance(results[0], ResponseError) and "WRONGTYPE" in str(results[0])
    assert isinstance(results[1], events.Event)
    sub = await log.subscribe(fine, None)
    await append_n(log, fine, 1, start=1)  # the connection goes on
    assert [e.payload()["i"] for e in await drain(sub, 1)] == [1]
    await sub.close()
    await log.close()


async def test_an_append_to_a_redis_gone_for_longer_than_retry_for_fails() -> None:
    proxy = Proxy()
    await proxy.start()
    log = scoped(f"redis://127.0.0.1:{proxy.port}/0", retry_for=0.3)
    stream = fresh()
    await append_n(log, stream, 1)
    await proxy.close()  # nothing listens on that port any more
    proxy.dropping = True  # and the pooled connection loses its next answer
    asked = time.monotonic()
    with pytest.raises(RedisConnectionError):
        await log.append(stream, events.make("test", {"i": 1}))
    assert time.monotonic() - asked < 3.0  # bounded: the caller decides what to do
    await log.close()
