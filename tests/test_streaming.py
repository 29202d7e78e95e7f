"""PROTOCOL.md's guarantee end to end: late joiners, resumes and refetches converge.

Interleavings are forced with gates on the model and on the debounced writer,
never with sleeps. Every client records each text it shows; the tests check
prefix, convergence (client == database == model) and exactly-once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.conftest import client_for
from tests.support.clients import Tab, converge_sse, converge_ws, fetch_state, read_events
from tests.support.scripted import Gate, Think, text_of
from tests.support.server import LiveServer

WORDS = tuple(f"w{i} " for i in range(12))


async def start_chat(http: httpx.AsyncClient) -> str:
    chat = (await http.post("/api/chats", json={"title": "t"})).json()
    return str(chat["id"])


async def send(http: httpx.AsyncClient, chat_id: str, text: str = "hi", **extra: Any) -> str:
    response = await http.post(f"/api/chats/{chat_id}/messages", json={"content": text, **extra})
    assert response.status_code == 201, response.text
    return str(response.json()["assistant_message"]["id"])


async def check_converged(server: LiveServer, tab: Tab, reply_id: str, expected: str) -> None:
    stored = await server.amessage(reply_id)
    shown = tab.replica.messages[reply_id]
    assert stored["content"] == expected
    assert shown["content"] == stored["content"]
    assert shown["thinking"] == stored["thinking"]
    assert shown["seq"] == stored["seq"]
    tab.assert_prefixes(reply_id, stored)


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_late_subscriber_before_the_debounced_write_converges(
    make_live_server: Any, transport: str
) -> None:
    # The debounce is long: the database holds nothing of the reply while 6 deltas are out.
    server = make_live_server(debounce=3600)
    gate = Gate()
    steps = (Think("hmm "), *WORDS[:5], gate, *WORDS[5:])
    server.script(*steps)
    async with client_for(server) as http:
        chat_id = await start_chat(http)
        reply_id = await send(http, chat_id)
        await gate.wait_reached()
        state = await fetch_state(http, chat_id)
        lagging = next(m for m in state["messages"] if m["id"] == reply_id)
        assert lagging["seq"] == 0 and lagging["content"] == ""  # the row lags the log
        tab = Tab(chat_id)
        tab.load(state)
        gate.set()
        if transport == "sse":
            await converge_sse(http, tab, [reply_id])
        else:
            await converge_ws(server.url, server.token, http, tab, [reply_id])
        await check_converged(server, tab, reply_id, text_of(steps))
        assert tab.replica.messages[reply_id]["thinking"] == "hmm "
        assert tab.refetches == 0


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_subscriber_joining_between_two_flushes_converges(
    make_live_server: Any, transport: str
) -> None:
    # A flush happened at seq 3, then more deltas went out; the state's cursor must
    # reach back to the flushed position, and the overlap is dropped.
    server = make_live_server(debounce=0)
    first, second = Gate(), Gate()
    steps = (*WORDS[:3], first, *WORDS[3:7], second, *WORDS[7:])
    server.script(*steps)
    async with client_for(server) as http:
        chat_id = await start_chat(http)
        reply_id = await send(http, chat_id)
        await first.wait_reached()
        await wait_until(lambda: server.amessage(reply_id), lambda m: m["seq"] == 3)
        server.flush_gate.clear()  # hold the writer: the next deltas outrun the database
        first.set()
        await second.wait_reached()
        state = await fetch_state(http, chat_id)
        assert next(m for m in state["messages"] if m["id"] == reply_id)["seq"] == 3
        tab = Tab(chat_id)
        tab.load(state)
        server.flush_gate.set()
        second.set()
        if transport == "sse":
            await converge_sse(http, tab, [reply_id])
        else:
            await converge_ws(server.url, server.token, http, tab, [reply_id])
        await check_converged(server, tab, reply_id, text_of(steps))


async def wait_until(read: Any, check: Any, attempts: int = 500) -> Any:
    """Poll a condition (not a timing guess): fails only if it never becomes true."""
    for _ in range(attempts):
        value = await read()
        if check(value):
            return value
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_client_that_drops_and_resumes_from_its_cursor_converges(
    live_server: LiveServer, transport: str
) -> None:
    gate = Gate()
    steps = (*WORDS[:4], gate, *WORDS[4:])
    live_server.script(*steps)
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))
        reply_id = await send(http, chat_id)
        await gate.wait_reached()
        gate.set()
        # Drop the connection after every 2 events, resuming each time from the last cursor.
        if transport == "sse":
            await converge_sse(http, tab, [reply_id], drop_every=2)
        else:
            await converge_ws(
                live_server.url, live_server.token, http, tab, [reply_id], drop_every=2
            )
        await check_converged(live_server, tab, reply_id, text_of(steps))
        assert tab.refetches == 0 and tab.resets == 0
        seqs = [d["seq"] for t, d, _ in tab.events if t == "message.delta"]
        assert seqs == list(range(1, len(WORDS) + 1))  # each delta exactly once, in order


async def test_client_joining_after_the_end_sees_the_final_text(live_server: LiveServer) -> None:
    live_server.script(*WORDS)
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        reply_id = await send(http, chat_id)
        await live_server.adrain()
        tab = await converge_sse(http, Tab(chat_id), [reply_id])
        await check_converged(live_server, tab, reply_id, "".join(WORDS))
        tab2 = await converge_ws(live_server.url, live_server.token, http, Tab(chat_id), [reply_id])
        await check_converged(live_server, tab2, reply_id, "".join(WORDS))


async def test_replayed_deltas_are_applied_once(live_server: LiveServer) -> None:
    live_server.script(*WORDS)
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))
        start = tab.replica.cursor
        reply_id = await send(http, chat_id)
        await converge_sse(http, tab, [reply_id])
        # Replay the whole history again into the same replica: every delta is a duplicate.
        tab.replica.cursor = start
        again = await read_events(http, chat_id, start, until_type="message.completed")
        for type_, data, cursor in again:
            assert tab.receive(type_, data, cursor)
        await check_converged(live_server, tab, reply_id, "".join(WORDS))


async def test_a_gap_leads_to_a_refetch_and_still_converges(live_server: LiveServer) -> None:
    gate = Gate()
    steps = (*WORDS[:6], gate, *WORDS[6:])
    live_server.script(*steps)
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        before = await fetch_state(http, chat_id)
        reply_id = await send(http, chat_id)
        await gate.wait_reached()
        log = await read_events(http, chat_id, before["cursor"], count=6)
        assert [t for t, _, _ in log] == ["message.created"] * 2 + ["message.delta"] * 4
        # A client that knows the reply at seq 0 but resumes after delta 2: 1 and 2 are lost.
        tab = Tab(chat_id)
        tab.load({"messages": [d for _, d, _ in log[:2]], "cursor": log[3][2]})
        gate.set()
        await converge_sse(http, tab, [reply_id])
        assert tab.refetches == 1
        await check_converged(live_server, tab, reply_id, text_of(steps))


@pytest.mark.parametrize("bad", ["garbage", "", "x" * 300, "foreign", "expired", "future"])
async def test_unusable_cursors_get_reset_and_the_client_converges(
    live_server: LiveServer, bad: str
) -> None:
    live_server.script(*WORDS)
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        first = await fetch_state(http, chat_id)
        reply_id = await send(http, chat_id)
        await live_server.adrain()
        cursor = bad
        if bad == "foreign":
            other = await start_chat(http)
            await send(http, other)
            await live_server.adrain()
            cursor = (await fetch_state(http, other))["cursor"]
        elif bad == "expired":
            await live_server.arun(live_server.runtime.log.trim(4e9, {}))
            cursor = first["cursor"]
        elif bad == "future":
            epoch = first["cursor"].split(".")[0]
            cursor = f"{epoch}.999999-0"
        if cursor:
            got = await read_events(http, chat_id, cursor, count=1)
            assert [e[0] for e in got] == ["reset"] and got[0][2] is None
        tab = Tab(chat_id)
        tab.load({"messages": [], "cursor": cursor or None})
        tab.replica.cursor = cursor or tab.replica.cursor
        await converge_sse(http, tab, [reply_id])
        await check_converged(live_server, tab, reply_id, "".join(WORDS))


async def test_reset_over_websocket_has_a_null_cursor(live_server: LiveServer) -> None:
    import json

    from websockets.asyncio.client import connect

    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        url = live_server.url.replace("http", "ws") + "/api/ws"
        headers = {"Authorization": f"Bearer {live_server.token}"}
        async with connect(url, additional_headers=headers) as ws:
            await ws.send(json.dumps({"op": "subscribe", "chat_id": chat_id, "cursor": "nope"}))
            assert json.loads(await ws.recv())["op"] == "subscribed"
            frame = json.loads(await ws.recv())
            assert frame["type"] == "reset" and frame["cursor"] is None
            assert frame["chat_id"] == chat_id


async def test_two_replies_in_one_chat_and_in_two_chats_each_converge(
    live_server: LiveServer,
) -> None:
    gates = [Gate() for _ in range(3)]
    scripts = [(f"a{i} ", f"b{i} ", gates[i], f"c{i} ", f"d{i}") for i in range(3)]
    for steps in scripts:
        live_server.script(*steps)
    async with client_for(live_server) as http:
        one, two = await start_chat(http), await start_chat(http)
        tabs = {one: Tab(one), two: Tab(two)}
        for tab in tabs.values():
            tab.load(await fetch_state(http, tab.chat_id))
        first = await send(http, one, "x")
        second = await send(http, one, "y", parent_id=None)  # a second root: runs at once
        third = await send(http, two, "z")
        for gate in gates:
            await gate.wait_reached()  # all three are streaming at the same time
        for gate in gates:
            gate.set()
        await asyncio.gather(
            converge_sse(http, tabs[one], [first, second]),
            converge_ws(live_server.url, live_server.token, http, tabs[two], [third]),
        )
        for tab, reply_id, steps in [
            (tabs[one], first, scripts[0]),
            (tabs[one], second, scripts[1]),
            (tabs[two], third, scripts[2]),
        ]:
            await check_converged(live_server, tab, reply_id, text_of(steps))


async def test_a_reply_waits_for_an_unfinished_reply_on_its_path(live_server: LiveServer) -> None:
    gate = Gate()
    live_server.script("first ", gate, "answer")
    live_server.script("second answer")
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        first = await send(http, chat_id, "one")
        await gate.wait_reached()
        second = await send(http, chat_id, "two")  # appends under the streaming reply
        state = await fetch_state(http, chat_id)
        by_id = {m["id"]: m for m in state["messages"]}
        assert by_id[by_id[second]["parent_id"]]["parent_id"] == first
        assert len(live_server.provider.prompts) == 1  # the second has not started
        assert (await live_server.amessage(second))["status"] == "pending"
        gate.set()
        await live_server.adrain()
        assert (await live_server.amessage(second))["content"] == "second answer"
        prompt = live_server.provider.prompts[1]
        assert [(t.role, t.content) for t in prompt.turns] == [
            ("user", "one"),
            ("assistant", "first answer"),
            ("user", "two"),
        ]


async def test_trimming_keeps_what_an_unfinished_reply_still_needs(make_live_server: Any) -> None:
    # Retention is (almost) zero: the janitor's trim drops every old event, except
    # those after the stored position of the reply that is still streaming.
    server = make_live_server(debounce=3600, settings={"retention": 1e-6})
    gate = Gate()
    steps = (*WORDS[:5], gate, *WORDS[5:])
    server.script(*steps)
    async with client_for(server) as http:
        chat_id = await start_chat(http)
        old_cursor = (await fetch_state(http, chat_id))["cursor"]
        reply_id = await send(http, chat_id)
        await gate.wait_reached()
        await server.arun(server.runtime.trim())
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))  # seq 0 in the row, 5 deltas in the log
        assert tab.replica.messages[reply_id]["seq"] == 0
        gate.set()
        await converge_sse(http, tab, [reply_id])
        assert tab.resets == 0 and tab.refetches == 0
        await check_converged(server, tab, reply_id, text_of(steps))
        # ...while a cursor from before the reply's position was trimmed away: reset.
        got = await read_events(http, chat_id, old_cursor, count=1)
        assert [e[0] for e in got] == ["reset"]


async def test_a_single_message_is_served_with_its_cursor(make_live_server: Any) -> None:
    server = make_live_server(debounce=3600)
    gate = Gate()
    steps = (*WORDS[:4], gate, *WORDS[4:])
    server.script(*steps)
    async with client_for(server) as http:
        chat_id = await start_chat(http)
        reply_id = await send(http, chat_id)
        await gate.wait_reached()
        body = (await http.get(f"/api/messages/{reply_id}")).json()
        assert set(body) == {"message", "cursor"} and body["message"]["seq"] == 0
        tab = Tab(chat_id)
        tab.load({"messages": [body["message"]], "cursor": body["cursor"]})
        gate.set()
        await converge_sse(http, tab, [reply_id])
        await check_converged(server, tab, reply_id, text_of(steps))
        assert (await http.get("/api/messages/msg_nope")).status_code == 404
