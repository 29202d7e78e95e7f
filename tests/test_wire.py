"""`web/wire.py`, the WebSocket protocol under uvicorn: its pieces with literal inputs, then a
reader that stalls against a real server (the writes pause, and every frame still arrives)."""

from __future__ import annotations

import asyncio
import gc
import json
import socket

import pytest
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode

from gapless.cli import _UVICORN
from gapless.web.wire import Gate, Inbox, WireProtocol, text_frame
from tests.conftest import client_for
from tests.support.server import LiveServer
from tests.test_streaming import send, start_chat

DEADLINE = 10.0
CHUNK = 64_000


def send_buffer_ceiling() -> int:
    """How far the kernel may grow a TCP socket's send buffer (Linux), else a generous guess."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2])
    except (OSError, IndexError, ValueError):
        return 8 * 2**20


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_a_text_frame_is_what_websockets_would_write(size: int) -> None:
    payload = ("é" * size).encode()[:size]
    assert text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False)


def test_gapless_serve_runs_this_protocol() -> None:
    assert _UVICORN["ws"] == f"{WireProtocol.__module__}:{WireProtocol.__qualname__}"


async def test_the_inbox_hands_items_over_in_order_and_a_cancelled_get_takes_nothing() -> None:
    inbox = Inbox()
    waiting = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert not inbox.empty()
    assert [await inbox.get(), await inbox.get()] == [1, 2]
    assert inbox.empty()
    later = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    assert not later.done()
    inbox.put_nowait(3)
    assert await later == 3


async def test_the_gate_holds_every_waiter_while_closed_and_lets_them_all_go() -> None:
    gate = Gate()
    assert gate.is_set() and await gate.wait()
    gate.clear()
    waiters = [asyncio.ensure_future(gate.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters) and not gate.is_set()
    gate.set()
    assert await asyncio.gather(*waiters) == [True, True, True]


async def paused(server: LiveServer) -> bool:
    """Whether some socket of the server is waiting for its transport to drain."""

    async def look() -> bool:
        # By type, not isinstance: isinstance on a weak proxy whose object died raises.
        return any(
            issubclass(type(o), WireProtocol) and not o.gate.open for o in gc.get_objects()
        )

    return await server.arun(look())


async def test_a_reader_that_stalls_still_gets_every_frame_in_order(
    live_server: LiveServer,
) -> None:
    # More than the kernel's send buffer can grow to, and uvicorn's buffer on top
    count = (send_buffer_ceiling() * 3 // 2 + 2**20) // CHUNK
    chunks = [f"{i:04d}" + "x" * (CHUNK - 4) for i in range(count)]
    live_server.script(*chunks)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and no autotuning
    host, port = live_server.url.removeprefix("http://").split(":")
    sock.connect((host, int(port)))
    url = live_server.url.replace("http", "ws") + "/api/ws"
    headers = {"Authorization": f"Bearer {live_server.token}"}
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        # max_queue=1: the client library stops reading too when the test does not
        async with connect(
            url, sock=sock, additional_headers=headers, max_queue=1, max_size=None
        ) as ws:
            await ws.send(json.dumps({"op": "subscribe", "chat_id": chat_id}))
            assert json.loads(await ws.recv())["op"] == "subscribed"
            reply_id = await send(http, chat_id, "hi")
            await live_server.adrain()  # the model never waited for this reader

            async def until_paused() -> None:
                while not await paused(live_server):  # noqa: ASYNC110 (no event for it)
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(until_paused(), DEADLINE)
            deltas = []
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "message.delta":
                    deltas.append(frame["data"])
                elif frame["type"] == "message.completed":
                    break
    assert [d["seq"] for d in deltas] == list(range(1, count + 1))
    assert [d["content"] for d in deltas] == chunks
    assert {d["message_id"] for d in deltas} == {reply_id}
