"""The WebSocket protocol under uvicorn: websockets-sansio, lighter per socket and per frame.

uvicorn's `WebSocketsSansIOProtocol` (the one `ws="auto"` picks) keeps, for
the life of every socket, the parsed handshake request and response, an
`asyncio.Queue` and an `asyncio.Event` (four deques of 64 slots each), about
8 KB of a socket's 30 when it idles. And every frame sent goes through an
awaited `Event.wait`, websockets' `Frame` and its serializer, and a list of
writes joined. This subclass drops the handshake once the socket is accepted,
swaps the queue and the event for single-list equivalents, and writes an
unmasked, uncompressed text frame in one `transport.write`: the same bytes
(`text_frame` is tested against websockets' own serializer). Everything else
(handshake, receiving, close, keep-alive pings, flow control) is uvicorn's.
It leans on attributes of uvicorn's class (`queue`, `writable`, `conn`,
`request`, ...): an upgrade that renames one fails every WebSocket test, loudly.
Imports nothing from gapless.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from uvicorn._types import ASGISendEvent
from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.protocol import State


def text_frame(payload: bytes) -> bytes:
    """A server's final, unmasked text frame carrying `payload` (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class Inbox:
    """`asyncio.Queue` as uvicorn uses it for one socket's receive events (one consumer,
    the app's `receive`), on one list. Cancel-safe: a cancelled `get` takes nothing."""

    __slots__ = ("items", "waiter")

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self.items.append(item)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def empty(self) -> bool:
        return not self.items

    async def get(self) -> Any:
        while not self.items:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.items.pop(0)


class Gate:
    """`asyncio.Event` as uvicorn uses it for "the transport is writable": open until the
    transport pauses writing, with waiters only while it is paused."""

    __slots__ = ("open", "waiters")

    def __init__(self) -> None:
        self.open = True
        self.waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self.open

    def set(self) -> None:
        self.open = True
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self.open = False

    async def wait(self) -> bool:
        if not self.open:
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            await waiter
        return True


class WireProtocol(WebSocketsSansIOProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.queue = Inbox()  # type: ignore[assignment]
        self.gate = self.writable = Gate()  # type: ignore[assignment]

    async def send(self, message: ASGISendEvent) -> None:
        if message["type"] == "websocket.send":
            text = message.get("text")
            conn = self.conn
            if (
                text is not None
                and message.get("bytes") is None
                and self.gate.open
                and self.handshake_complete
                and not (self.close_sent or self.disconnected or conn.extensions)
                and self.initial_response is None
                and conn.state is State.OPEN
                and not conn.expect_continuation_frame
            ):
                self.transport.write(text_frame(text.encode()))
                return
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # The handshake's request and response are never read again; websockets'
            # parser generator keeps the request as a local, so empty its headers too
            # (uvicorn copied them into the ASGI scope).
            self.request.headers.clear()
            del self.request, self.response
