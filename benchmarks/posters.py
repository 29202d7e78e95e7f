"""Raw keep-alive HTTP/1.1 connections for POSTs that must leave the generator on time.

A pooled HTTP client cannot send hundreds of requests within a fraction of a
second from one Python process (httpx costs ~0.3 ms of the generator's CPU per
request on a fast core, ~1 ms on a slow one), so a burst (W9) or a ramp counted
from each POST (W3 `--from-post`) would measure the client. Here each POST has
a connection of its own, opened and warmed with a `GET /api/chats/{id}` before
the clock starts, and a request is one prepared `write`. Imports the standard
library only.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit


class Poster(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that sends one request at a time."""

    def __init__(self, api: str, headers: dict[str, str]) -> None:
        self.api, self.headers = api, headers
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError(f"closed: {exc}"))

    def request(self, method: str, path: str, body: Any = None) -> bytes:
        netloc = urlsplit(self.api).netloc
        payload = json.dumps(body).encode() if body is not None else b""
        headers = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        return (
            f"{method} {path} HTTP/1.1\r\nHost: {netloc}\r\n{headers}"
            f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
        ).encode() + payload

    def send(self, raw: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None and (self.answer is None or self.answer.done())
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.answer

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(rest) < length:
            return
        self.buffer = rest[length:]
        if self.answer is not None and not self.answer.done():
            self.answer.set_result((int(head.split(b" ", 2)[1]), rest[:length]))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_poster(api: str, headers: dict[str, str]) -> Poster:
    url = urlsplit(api)
    loop = asyncio.get_running_loop()
    _, poster = await loop.create_connection(
        lambda: Poster(api, headers), url.hostname or "127.0.0.1", url.port or 80
    )
    return poster


async def warm(poster: Poster, chat: str) -> Poster:
    """The connection used once (`GET /api/chats/{chat}`), so the POST finds it open."""
    status, _ = await poster.send(poster.request("GET", f"/api/chats/{chat}"))
    if status != 200:
        raise RuntimeError(f"GET /api/chats/{chat} -> {status}")
    return poster


def reply_of(outcome: tuple[int, bytes] | BaseException) -> str:
    """The assistant message's id from a message POST's answer; raises what went wrong."""
    if isinstance(outcome, BaseException):
        raise RuntimeError(f"{type(outcome).__name__}: {outcome}"[:300])
    status, body = outcome
    if status >= 400:
        raise RuntimeError(f"{status} {body[:200]!r}")
    return str(json.loads(body)["assistant_message"]["id"])
