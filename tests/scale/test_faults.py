"""The guarantee scaled out, under faults injected at a chosen moment: API processes, workers,
PostgreSQL and Redis are real, and every client ends showing the database's final text
byte for byte, which is the model's output (or a prefix of it, marked failed).

A client loads its state from one API process and streams from another.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import sqlalchemy as sa
from redis.asyncio import Redis
from saq import Job as SaqJob

from gapless.db.tables import generations
from gapless.jobs.saq import queue_from_url
from gapless.providers.demo import answer_for, thinking_for
from gapless.stream import FINAL_EVENTS
from tests.providers.wire import Wire
from tests.scale.cluster import Cluster, until
from tests.support.clients import Tab, converge_sse, converge_ws, fetch_state

QUESTION = "hello, scaled out"
THINKING, ANSWER = thinking_for(QUESTION), answer_for(QUESTION)
CONVERGE = 30.0  # seconds clients may take to reach the end of one reply


async def start_chat(http: httpx.AsyncClient, **fields: Any) -> str:
    response = await http.post("/api/chats", json={"title": "scaled", **fields})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def send(http: httpx.AsyncClient, chat_id: str, **extra: Any) -> str:
    response = await http.post(
        f"/api/chats/{chat_id}/messages", json={"content": QUESTION, **extra}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["assistant_message"]["id"])


def seq_shown(tab: Tab, reply_id: str) -> int:
    return int(tab.replica.messages.get(reply_id, {}).get("seq", 0))


async def shown(tab: Tab, reply_id: str, at_least: int) -> None:
    async def seq() -> int:
        return seq_shown(tab, reply_id)

    await until(seq, lambda n: n >= at_least, CONVERGE)


class Watchers:
    """Two clients of one chat: SSE from API `b` (state from `a`), WebSocket on `a`
    (state from `b`), each following until the reply is final, reconnecting as told."""

    def __init__(
        self,
        cluster: Cluster,
        a: str,
        b: str,
        chat_id: str,
        drop: int | None = None,
        patient: bool = False,
    ):
        self.cluster, self.a, self.b, self.drop = cluster, a, b, drop
        self.patient = patient  # retry, as a browser would, while a service is down
        self.sse, self.ws = Tab(chat_id), Tab(chat_id)
        self.tasks: list[asyncio.Task[Tab]] = []
        self.errors = 0

    async def load(self) -> None:
        async with self.cluster.client(self.a) as http_a, self.cluster.client(self.b) as http_b:
            self.sse.load(await fetch_state(http_a, self.sse.chat_id))
            self.ws.load(await fetch_state(http_b, self.ws.chat_id))

    def follow(self, reply_id: str) -> None:
        self.tasks = [
            asyncio.create_task(self._again(self._sse, reply_id)),
            asyncio.create_task(self._again(self._ws, reply_id)),
        ]

    async def _again(self, follow: Callable[[str], Awaitable[Tab]], reply_id: str) -> Tab:
        while True:
            try:
                return await follow(reply_id)
            except Exception:
                if not self.patient:
                    raise
                self.errors += 1
                await asyncio.sleep(0.2)  # the state and cursor the tab has are still valid

    async def _sse(self, reply_id: str) -> Tab:
        async with self.cluster.client(self.b) as http:
            return await converge_sse(http, self.sse, [reply_id], drop_every=self.drop)

    async def _ws(self, reply_id: str) -> Tab:
        async with self.cluster.client(self.b) as http:
            return await converge_ws(
                self.a, self.cluster.token, http, self.ws, [reply_id], drop_every=self.drop
            )

    async def done(self, seconds: float = CONVERGE) -> None:
        await asyncio.wait_for(asyncio.gather(*self.tasks), seconds)

    @property
    def tabs(self) -> tuple[Tab, Tab]:
        return self.sse, self.ws


def check_clients(tabs: tuple[Tab, ...], reply_id: str, stored: dict[str, Any]) -> None:
    """Every client shows the database's final copy byte for byte, showed only prefixes of
    it, and saw no delta of the reply after its final event."""
    for tab in tabs:
        local = tab.replica.messages[reply_id]
        for key in ("status", "content", "thinking", "seq", "error"):
            assert local[key] == stored[key], (key, local[key], stored[key])
        tab.assert_prefixes(reply_id, stored)
        ended = False
        for type_, data, _ in tab.events:
            if data.get("id", data.get("message_id")) != reply_id:
                continue
            assert not (ended and type_ == "message.delta"), "a delta after the final event"
            ended = ended or type_ in FINAL_EVENTS


def check_model_output(stored: dict[str, Any]) -> None:
    """The database holds what the demo model produced, whole when complete."""
    if stored["status"] == "complete":
        assert (stored["thinking"], stored["content"]) == (THINKING, ANSWER)
    else:
        assert THINKING.startswith(stored["thinking"])
        assert ANSWER.startswith(stored["content"])
        assert not stored["content"] or stored["thinking"] == THINKING


async def test_a_worker_killed_mid_stream_is_ended_interrupted_by_another_process(
    any_queue_cluster: Cluster,
) -> None:
    cluster = any_queue_cluster
    a, b = await cluster.api(), await cluster.api()
    victim = await cluster.worker()
    async with cluster.client(a) as http:
        chat_id = await start_chat(http)
        watchers = Watchers(cluster, a, b, chat_id)
        await watchers.load()
        reply_id = await send(http, chat_id)
    watchers.follow(reply_id)
    await shown(watchers.sse, reply_id, 25)  # past the thinking, into the answer
    victim.kill()
    killed, seen = time.monotonic(), seq_shown(watchers.sse, reply_id)
    await watchers.done()
    noticed = time.monotonic() - killed
    stored = await cluster.message(reply_id)
    assert stored["status"] == "failed" and stored["error"]["code"] == "interrupted"
    assert noticed < 8.0, noticed  # lease 2 s, reaper every 0.67 s, plus the machine's load
    assert stored["seq"] >= seen  # what clients were shown before the kill is kept
    check_model_output(stored)
    check_clients(watchers.tabs, reply_id, stored)


async def test_stop_from_another_api_process_reaches_the_worker_within_a_second(
    any_queue_cluster: Cluster,
) -> None:
    cluster = any_queue_cluster
    a, b = await cluster.api(), await cluster.api()
    await cluster.worker()
    async with cluster.client(a) as http_a, cluster.client(b) as http_b:
        chat_id = await start_chat(http_a)
        watchers = Watchers(cluster, a, b, chat_id)
        await watchers.load()
        reply_id = await send(http_a, chat_id)
        watchers.follow(reply_id)
        await shown(watchers.ws, reply_id, 10)
        asked = time.monotonic()
        response = await http_b.post(f"/api/messages/{reply_id}/stop")
        took = time.monotonic() - asked
        assert response.status_code == 200, response.text
        answered = response.json()
        await watchers.done()
    stored = await cluster.message(reply_id)
    assert took < 1.0, took
    assert stored["status"] == "cancelled"
    assert {k: answered[k] for k in ("content", "thinking", "seq", "status")} == {
        k: stored[k] for k in ("content", "thinking", "seq", "status")
    }
    check_model_output(stored)
    check_clients(watchers.tabs, reply_id, stored)


async def test_flushing_redis_mid_stream_resets_clients_and_they_converge(
    cluster: Cluster,
) -> None:
    a, b = await cluster.api(), await cluster.api()
    await cluster.worker()
    async with cluster.client(a) as http:
        chat_id = await start_chat(http)
        watchers = Watchers(cluster, a, b, chat_id)
        await watchers.load()
        reply_id = await send(http, chat_id)
    watchers.follow(reply_id)
    await shown(watchers.sse, reply_id, 10)
    redis = Redis.from_url(cluster.redis_url)
    try:
        await redis.flushdb()  # this test's own database: the log, the queue, everything
    finally:
        await redis.aclose()
    await watchers.done()
    stored = await cluster.message(reply_id)
    assert stored["status"] == "complete"
    check_model_output(stored)
    check_clients(watchers.tabs, reply_id, stored)
    assert all(tab.resets or tab.refetches for tab in watchers.tabs)  # told, never a silent gap


async def test_a_job_delivered_twice_runs_one_generation(any_queue_cluster: Cluster) -> None:
    cluster = any_queue_cluster
    a, b = await cluster.api(), await cluster.api()
    await cluster.worker()
    await cluster.worker()
    queue = queue_from_url(cluster.queue)
    await queue.connect()
    async with cluster.client(a) as http:
        chat_id = await start_chat(http)
        watchers = Watchers(cluster, a, b, chat_id)
        await watchers.load()
        reply_id = await send(http, chat_id)
        # The same job again (deduplicated by its key), and a redelivery under another
        # key that both workers may run at once: the lease lets one generation through.
        for key in (reply_id, f"again-{reply_id}", f"more-{reply_id}"):
            await queue.enqueue(
                SaqJob("generate", kwargs={"reply_id": reply_id}, key=key, timeout=0)
            )
    await queue.disconnect()
    watchers.follow(reply_id)
    await watchers.done()
    stored = await cluster.message(reply_id)
    assert stored["status"] == "complete"
    check_model_output(stored)
    check_clients(watchers.tabs, reply_id, stored)
    for tab in watchers.tabs:  # subscribed before the post: every delta arrived once
        seqs = [d["seq"] for t, d, _ in tab.events if t == "message.delta"]
        assert seqs == list(range(1, stored["seq"] + 1))
    await cluster.message(reply_id)
    async with cluster.engine.connect() as conn:
        runs = await conn.scalar(
            sa.select(sa.func.count()).where(generations.c.message_id == reply_id)
        )
    assert runs == 1


async def test_a_provider_error_mid_stream_ends_the_reply_failed_with_its_text(
    cluster: Cluster,
) -> None:
    wire = Wire()  # a scripted OpenAI-compatible server: "Hel", "lo", then the connection drops
    await wire.start()
    try:
        endpoint = f'[{{"name":"wire","base_url":"{wire.url}/v1","models":["drop"]}}]'
        cluster.settings["GAPLESS_ENDPOINTS"] = endpoint
        a, b = await cluster.api(), await cluster.api()
        await cluster.worker()
        async with cluster.client(a) as http:
            chat_id = await start_chat(http, model="wire:drop")
            watchers = Watchers(cluster, a, b, chat_id)
            await watchers.load()
            reply_id = await send(http, chat_id)
        watchers.follow(reply_id)
        await watchers.done()
    finally:
        await wire.close()
    stored = await cluster.message(reply_id)
    assert stored["status"] == "failed" and stored["error"]["code"] == "dropped"
    assert (stored["content"], stored["seq"]) == ("Hello", 2)
    check_clients(watchers.tabs, reply_id, stored)


async def test_clients_whose_connections_drop_every_few_events_converge(
    cluster: Cluster,
) -> None:
    a, b = await cluster.api(), await cluster.api()
    await cluster.worker()
    async with cluster.client(a) as http:
        chat_id = await start_chat(http)
        watchers = Watchers(cluster, a, b, chat_id, drop=3)
        await watchers.load()
        reply_id = await send(http, chat_id)
    watchers.follow(reply_id)
    await watchers.done()
    stored = await cluster.message(reply_id)
    assert stored["status"] == "complete"
    check_model_output(stored)
    check_clients(watchers.tabs, reply_id, stored)


async def test_a_database_locked_for_seconds_mid_stream_loses_nothing(cluster: Cluster) -> None:
    cluster.settings["GAPLESS_LEASE_TTL"] = "6"  # the lock (3 s) is shorter than the lease
    a, b = await cluster.api(), await cluster.api()
    await cluster.worker()
    async with cluster.client(a) as http:
        chat_id = await start_chat(http)
        watchers = Watchers(cluster, a, b, chat_id)
        await watchers.load()
        reply_id = await send(http, chat_id)
    watchers.follow(reply_id)
    await shown(watchers.sse, reply_id, 10)
    conn = await asyncpg.connect(cluster.database_url.replace("+asyncpg", ""))
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
            locked_at = seq_shown(watchers.sse, reply_id)
            # Flushes and heartbeats wait; deltas still reach clients through the log.
            await shown(watchers.sse, reply_id, locked_at + 20)
            stalled = await conn.fetchval("SELECT seq FROM messages WHERE id = $1", reply_id)
            assert stalled < locked_at + 20
            await asyncio.sleep(1.0)  # hold it a little longer: seconds in all
    finally:
        await conn.close()
    await watchers.done()
    stored = await cluster.message(reply_id)
    assert stored["status"] == "complete"
    check_model_output(stored)
    check_clients(watchers.tabs, reply_id, stored)
