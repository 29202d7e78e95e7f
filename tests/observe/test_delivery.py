"""Delivery figures move as they should: a resume counts a replay and the events it
carried, a garbage cursor a reset by its reason, a stalled reader a slow-subscriber end;
`/api/delivery` is a site admin's, Prometheus `/metrics` is off or behind its token."""

from __future__ import annotations

from typing import Any

from httpx_sse import aconnect_sse

from gapless import events
from gapless.log.base import chat_stream
from tests.conftest import client_for
from tests.support.clients import Tab, fetch_state, follow_sse
from tests.support.server import LiveServer
from tests.test_access import outsider
from tests.test_streaming import send, start_chat


async def figures(http: Any) -> dict[str, Any]:
    response = await http.get("/api/delivery")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def test_a_resume_counts_a_replay_and_the_events_it_carried(
    live_server: LiveServer,
) -> None:
    live_server.script("One", " two", " three.")
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))  # its cursor: before the reply
        reply_id = await send(http, chat_id, "count")
        await live_server.adrain()
        before = (await figures(http))["process"]
        assert await follow_sse(http, tab, [reply_id]) == "done"  # resumes from the cursor
        after = await figures(http)
    process = after["process"]
    assert process["reconnects"] == before["reconnects"] + 1
    assert process["replays"] == before["replays"] + 1
    carried = len([e for e in tab.events if e[0] != "reset"])
    assert process["replayed"] - before["replayed"] == carried >= 5  # 2 created, 3 deltas, end
    assert process["delivered"] - before["delivered"] >= carried
    assert process["subscribers"].get("sse", 0) == 0  # it closed
    assert process["appended"] >= carried
    [chat] = [c for c in after["chats"] if c["chat_id"] == chat_id]
    assert chat["replays"] == 1 and chat["appended"] >= carried
    assert process["lag_samples"] > 0 and process["lag_ms"]["p50"] is not None


async def test_a_garbage_cursor_counts_a_reset_by_its_reason(live_server: LiveServer) -> None:
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        before = (await figures(http))["process"]["resets"]
        async with aconnect_sse(
            http, "GET", f"/api/chats/{chat_id}/events", headers={"Last-Event-ID": "garbage!"}
        ) as source:
            got = [(e.event, e.data) async for e in source.aiter_sse() if e.event == "reset"]
        reason = events.Event("reset", got[0][1]).payload()["reason"]
        after = (await figures(http))["process"]["resets"]
    assert after.get(reason, 0) == before.get(reason, 0) + 1


async def test_a_stalled_reader_is_counted_as_a_slow_subscriber_ended(
    live_server: LiveServer,
) -> None:
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        stream = chat_stream(chat_id)
        log = live_server.runtime.log

        async def stall() -> list[events.Event]:
            subscription = await log.subscribe(stream, await log.head(stream))
            for n in range(5):  # appended while the reader reads nothing
                await log.append(stream, events.make("chat.updated", {"n": n}))
            await log.trim(4e9, {})  # the log drops what the reader never took
            batch = await subscription.next()
            await subscription.close()
            return batch

        before = (await figures(http))["process"]
        batch = await live_server.arun(stall())
        after = (await figures(http))["process"]
    assert [e.type for e in batch] == ["reset"] and batch[0].payload()["reason"] == "behind"
    assert after["slow_ended"] == before["slow_ended"] + 1
    assert after["resets"]["behind"] == before["resets"].get("behind", 0) + 1
    assert after["subscribers"].get("internal", 0) == before["subscribers"].get("internal", 0)


async def test_delivery_is_a_site_admins_and_prometheus_is_behind_its_token(
    make_live_server: Any,
) -> None:
    quiet: LiveServer = make_live_server()
    async with client_for(quiet) as http:
        assert (await http.get("/metrics")).status_code == 404  # off by default
    server: LiveServer = make_live_server(settings={"metrics_token": "s3cret"})
    async with client_for(server) as http:
        await send(http, await start_chat(http), "hi")
        await server.adrain()
        eve = await outsider(server)
        assert (await http.get("/metrics")).status_code == 401  # the API token is not it
        scraped = await http.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert scraped.status_code == 200
    text = scraped.text
    assert "gapless_delivery_events_appended_total" in text
    assert 'gapless_delivery_subscribers{transport="internal"}' in text or "subscribers" in text
    async with client_for(server, eve) as other:
        assert (await other.get("/api/delivery")).status_code == 404


async def test_with_observability_off_nothing_is_recorded_or_counted(
    make_live_server: Any,
) -> None:
    server: LiveServer = make_live_server(settings={"observe": False})
    async with client_for(server) as http:
        reply_id = await send(http, await start_chat(http), "hi")
        await server.adrain()
        await server.arun(server.runtime.recorder.flush())
        assert (await http.get("/api/traces")).json()["traces"] == []
        assert (await http.get(f"/api/traces/trc_{reply_id.partition('_')[2]}")).status_code == 404
        assert (await http.get("/api/delivery")).status_code == 404
