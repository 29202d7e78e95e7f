"""The transports let go: a client that leaves takes its server-side work with it.

SSE runs each stream from a task of its own and WebSocket a task per followed
chat; a connection closed by the client, at any moment, must end them (else
every page reload would leak a task and a log position for good).
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.conftest import client_for
from tests.support.server import LiveServer

DEADLINE = 10.0


async def streaming_tasks(server: LiveServer) -> int:
    """Tasks on the server's loop that pump events to a client."""

    async def count() -> int:
        return sum(
            1
            for task in asyncio.all_tasks()
            if getattr(task.get_coro(), "__qualname__", "").endswith("pump")
        )

    return await server.arun(count())


async def until_no_streaming_tasks(server: LiveServer) -> None:
    async def settled() -> None:
        while await streaming_tasks(server):  # noqa: ASYNC110 (asyncio has no event for it)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(settled(), DEADLINE)


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_a_client_that_leaves_ends_its_stream_on_the_server(
    live_server: LiveServer, transport: str
) -> None:
    async with client_for(live_server) as http:
        chat_id = (await http.post("/api/chats", json={})).json()["id"]
        assert await streaming_tasks(live_server) == 0
        if transport == "sse":
            async with http.stream("GET", f"/api/chats/{chat_id}/events") as response:
                assert response.status_code == 200
                async for chunk in response.aiter_text():
                    assert ": connected" in chunk
                    break
                assert await streaming_tasks(live_server) == 1
        else:
            url = live_server.url.replace("http", "ws") + "/api/ws"
            headers = {"Authorization": f"Bearer {live_server.token}"}
            async with connect(url, additional_headers=headers) as ws:
                await ws.send(json.dumps({"op": "subscribe", "chat_id": chat_id}))
                assert json.loads(await ws.recv())["op"] == "subscribed"
                assert await streaming_tasks(live_server) == 1
        await until_no_streaming_tasks(live_server)


async def test_a_stream_refused_before_it_starts_leaves_nothing_running(
    live_server: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as anonymous:
        refused = await anonymous.get("/api/chats/chat_missing/events")
        assert refused.status_code == 401
    async with client_for(live_server) as http:
        missing = await http.get("/api/chats/chat_missing/events")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert await streaming_tasks(live_server) == 0
