"""Leases and fences: a run presumed dead is ended by another, and a zombie run can
never publish after the final event."""

from __future__ import annotations

from typing import Any

from gapless import generation
from gapless.leases import Watch
from gapless.runtime import INTERRUPTED
from tests.conftest import client_for
from tests.support.clients import Tab, converge_sse, fetch_state, read_events
from tests.support.scripted import Gate
from tests.test_streaming import send, start_chat, wait_until


async def test_a_run_that_stops_heart_beating_is_ended_interrupted(make_live_server: Any) -> None:
    server = make_live_server(debounce=0, settings={"lease_ttl": 0.6})
    gate = Gate()
    server.script("partial ", "text ", gate, "never")
    async with client_for(server) as http:
        chat_id = await start_chat(http)
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))
        reply_id = await send(http, chat_id)
        await gate.wait_reached()
        await wait_until(lambda: server.amessage(reply_id), lambda m: m["seq"] == 2)
        runner = server.runtime.runner

        async def kill() -> None:  # the worker dies: its task vanishes, no final write
            task, _ = runner._runs[reply_id]  # type: ignore[attr-defined]
            task.cancel()

        await server.arun(kill())
        await converge_sse(http, tab, [reply_id])  # the reaper ends it; clients leave the spinner
        ended = await server.amessage(reply_id)
        assert ended["status"] == "failed" and ended["error"]["code"] == "interrupted"
        assert ended["content"] == "partial text "
        assert tab.replica.messages[reply_id] == ended
        gate.set()


async def test_a_zombie_run_cannot_publish_after_the_final_event(make_live_server: Any) -> None:
    server = make_live_server(debounce=0)
    gate = Gate()
    server.script("before ", gate, "after ", "more")
    async with client_for(server) as http:
        chat_id = await start_chat(http)
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))
        reply_id = await send(http, chat_id)
        await gate.wait_reached()
        await wait_until(lambda: server.amessage(reply_id), lambda m: m["seq"] == 1)
        # Another process presumes the run dead and ends the reply, while the run lives on.
        await server.arun(
            generation.end_unstarted(server.runtime.context, reply_id, "failed", INTERRUPTED)
        )
        gate.set()  # the zombie wakes up and tries to publish "after "
        await server.adrain()
        # Read the whole log, to its head: nothing of the reply may follow its final event.
        head = (await fetch_state(http, chat_id))["cursor"]
        log = await read_events(http, chat_id, tab.replica.cursor, until_cursor=head)
        for type_, data, cursor in log:
            tab.receive(type_, data, cursor)
        ended = await server.amessage(reply_id)
        assert ended["status"] == "failed" and ended["content"] == "before "
        types = [t for t, d, _ in tab.events if d.get("message_id", d.get("id")) == reply_id]
        assert types.count("message.delta") == 1
        assert types[-1] == "message.failed"
        assert tab.replica.messages[reply_id] == ended


def test_a_beat_unchanged_for_the_ttl_of_regular_looks_is_presumed_dead() -> None:
    watch: Watch[str] = Watch(ttl=6.0, gap=4.0)
    for now in (0.0, 2.0, 4.0):
        assert watch.look(now, ["run a @1"]) == []
    assert watch.look(6.0, ["run a @1"]) == ["run a @1"]


def test_a_beat_that_moves_is_alive_however_long_it_runs() -> None:
    watch: Watch[str] = Watch(ttl=6.0, gap=4.0)
    for step in range(20):
        assert watch.look(step * 2.0, [f"run a @{step}"]) == []


def test_a_stall_longer_than_half_the_ttl_between_looks_starts_the_watch_over() -> None:
    # The database (or this process) stalled for 10 s: nobody could write, so the
    # unchanged beat says nothing; the run gets a whole ttl from the next look.
    # (A look every 2 s; one late look, up to `gap`, is still watching.)
    watch: Watch[str] = Watch(ttl=6.0, gap=4.0)
    assert watch.look(0.0, ["run a @1"]) == []
    assert watch.look(10.0, ["run a @1"]) == []
    assert watch.look(13.0, ["run a @1"]) == []
    assert watch.look(16.0, ["run a @1"]) == ["run a @1"]


def test_runs_that_ended_are_forgotten() -> None:
    watch: Watch[str] = Watch(ttl=6.0, gap=4.0)
    watch.look(0.0, ["run a @1", "run b @1"])
    watch.look(3.0, ["run b @1"])
    assert watch.look(6.0, ["run a @1", "run b @1"]) == ["run b @1"]  # a came back: new watch
