"""The WebSocket transport (`/api/ws`) against a real server, with real clients.

What PROTOCOL.md promises of it beyond what the shared streaming and access
tests check: a second `subscribe` replaces the first, a subscription ends on
chat deletion and on lost access (checked again on heartbeats), frames that
are not requests are answered without closing the socket, and a subscription
given up at once leaves nothing open on the server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Any

import sqlalchemy as sa
from websockets.asyncio.client import ClientConnection, connect

from gapless.accounts import Accounts
from gapless.log.base import chat_stream
from tests.conftest import client_for
from tests.support.server import LiveServer
from tests.test_access import outsider
from tests.test_streaming import send, start_chat
from tests.test_transports import streaming_tasks, until_no_streaming_tasks


def ws_url(server: LiveServer) -> str:
    return server.url.replace("http", "ws") + "/api/ws"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def recv(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await ws.recv())
    return frame


async def subscribe(ws: ClientConnection, chat_id: str, cursor: str | None = None) -> None:
    request = {"op": "subscribe", "chat_id": chat_id}
    if cursor is not None:
        request["cursor"] = cursor
    await ws.send(json.dumps(request))
    assert await recv(ws) == {"op": "subscribed", "chat_id": chat_id}


async def subscribers(server: LiveServer, chat_id: str) -> int:
    """Open subscriptions of a chat's stream in the server's (memory) event log."""

    async def count() -> int:
        stream = server.runtime.log._streams.get(chat_stream(chat_id))  # type: ignore[attr-defined]
        return 0 if stream is None else int(stream.subscribers)

    return await server.arun(count())


def masked(payload: bytes, opcode: int = 0x1) -> bytes:
    """A client's frame (RFC 6455: clients mask), small enough for a 7-bit length."""
    assert len(payload) < 126
    key = os.urandom(4)
    return (
        bytes((0x80 | opcode, 0x80 | len(payload)))
        + key
        + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    )


async def test_a_second_subscribe_replaces_the_first(live_server: LiveServer) -> None:
    live_server.script("one ", "two")
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        start = (await http.get(f"/api/chats/{chat_id}")).json()["cursor"]
        reply_id = await send(http, chat_id, "hi")
        await live_server.adrain()
        async with connect(ws_url(live_server), additional_headers=bearer(live_server.token)) as ws:
            await subscribe(ws, chat_id)  # live only: nothing more is coming
            await subscribe(ws, chat_id, start)  # replaces it, replaying from the start
            frames: list[dict[str, Any]] = []
            while not frames or frames[-1]["type"] != "message.completed":
                frames.append(await recv(ws))
            assert await streaming_tasks(live_server) == 1
            assert await subscribers(live_server, chat_id) == 1
    assert [f["type"] for f in frames] == [
        "message.created",
        "message.created",
        "message.delta",
        "message.delta",
        "message.completed",
    ]
    assert {f["chat_id"] for f in frames} == {chat_id}
    assert [f["data"]["seq"] for f in frames if f["type"] == "message.delta"] == [1, 2]
    assert frames[-1]["data"]["id"] == reply_id and frames[-1]["data"]["content"] == "one two"


async def test_a_websocket_subscription_ends_when_the_chat_is_deleted(
    live_server: LiveServer,
) -> None:
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        async with connect(ws_url(live_server), additional_headers=bearer(live_server.token)) as ws:
            await subscribe(ws, chat_id)
            assert (await http.delete(f"/api/chats/{chat_id}")).status_code == 204
            ended = await recv(ws)
            assert ended["type"] == "chat.deleted" and ended["chat_id"] == chat_id
            await until_no_streaming_tasks(live_server)  # the socket stays open
            assert await subscribers(live_server, chat_id) == 0
            await ws.send(json.dumps({"op": "subscribe", "chat_id": chat_id}))
            assert (await recv(ws))["error"]["code"] == "not_found"


async def test_a_websocket_subscription_ends_when_membership_ends(make_live_server: Any) -> None:
    server = make_live_server(heartbeat=0.2)
    token = await outsider(server, "mallory@example.com")
    async with client_for(server, token) as mallory:
        chat_id = await start_chat(mallory)
        async with connect(ws_url(server), additional_headers=bearer(token)) as ws:
            await subscribe(ws, chat_id)
            await server.arun(
                Accounts(server.runtime.engine).remove_member("other", "mallory@example.com")
            )
            ended = await recv(ws)  # at the next heartbeat
            assert ended["type"] == "reset" and ended["cursor"] is None
            assert ended["data"] == {"reason": "access"}
            await until_no_streaming_tasks(server)


async def test_a_binary_frame_is_answered_without_closing(live_server: LiveServer) -> None:
    async with connect(ws_url(live_server), additional_headers=bearer(live_server.token)) as ws:
        await ws.send(b'{"op": "subscribe", "chat_id": "x"}')
        answer = await recv(ws)
        assert answer["op"] == "error" and answer["error"]["code"] == "invalid"
        await ws.send(json.dumps({"op": "subscribe", "chat_id": "chat_nope"}))
        assert (await recv(ws))["error"]["code"] == "not_found"


async def test_a_subscription_given_up_at_once_leaves_nothing_open(
    live_server: LiveServer,
) -> None:
    """`subscribe` and `unsubscribe` in one write: the pump is cancelled before it ever ran."""
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
    host, port = live_server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /api/ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {live_server.token}\r\n\r\n".encode()
        )
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        subscribe_op = json.dumps({"op": "subscribe", "chat_id": chat_id}).encode()
        unsubscribe_op = json.dumps({"op": "unsubscribe", "chat_id": chat_id}).encode()
        # the third frame is answered once the two before it were handled
        writer.write(masked(subscribe_op) + masked(unsubscribe_op) + masked(b"[]"))
        for expected in ("subscribed", "error"):
            head = await reader.readexactly(2)
            assert head[0] == 0x81 and head[1] < 126  # final text frames, unmasked
            assert json.loads(await reader.readexactly(head[1]))["op"] == expected
        assert await streaming_tasks(live_server) == 0
        assert await subscribers(live_server, chat_id) == 0
    finally:
        writer.close()


async def test_a_client_that_offers_compression_connects_and_gets_plain_frames(
    live_server: LiveServer,
) -> None:
    """Per-message deflate is off (a compressor per socket costs more than the rest of it);
    clients offer it, as every browser does, and carry on without it."""
    live_server.script("plain")
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        async with connect(
            ws_url(live_server), additional_headers=bearer(live_server.token), compression="deflate"
        ) as ws:
            assert ws.request is not None and ws.response is not None
            assert "permessage-deflate" in ws.request.headers["Sec-WebSocket-Extensions"]
            assert "Sec-WebSocket-Extensions" not in ws.response.headers
            assert ws.protocol.extensions == []
            await subscribe(ws, chat_id)
            await send(http, chat_id, "hi")
            types = []
            while not types or types[-1] != "message.completed":
                types.append((await recv(ws))["type"])
            assert "message.delta" in types


async def test_a_subscription_that_fails_on_the_server_ends_with_a_reset(
    make_live_server: Any,
) -> None:
    """Loss is always signalled: when following a chat fails (here the access check on a
    heartbeat, its table gone), the client gets `reset` and refetches, never silence."""
    server = make_live_server(heartbeat=0.2)
    async with client_for(server) as http:
        chat_id = await start_chat(http)
        async with connect(ws_url(server), additional_headers=bearer(server.token)) as ws:
            await subscribe(ws, chat_id)

            async def break_users() -> None:
                async with server.runtime.engine.begin() as conn:
                    await conn.execute(sa.text("ALTER TABLE users RENAME TO users_gone"))

            await server.arun(break_users())
            ended = await asyncio.wait_for(recv(ws), 10)
            assert ended == {
                "chat_id": chat_id,
                "cursor": None,
                "type": "reset",
                "data": {"reason": "error"},
            }
            await until_no_streaming_tasks(server)
            assert await subscribers(server, chat_id) == 0
