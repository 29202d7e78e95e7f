"""HTTP/1.1 under uvicorn (httptools) with the bounds uvicorn leaves out: header size and
header time.

uvicorn's httptools protocol accepts headers of any size (an 8 MiB header was
read whole) and waits for them forever (a client that connects and trickles a
byte a minute holds a connection, 1,000 of them held), while its keep-alive
timeout only starts after a response. Here a request's line and headers may
take at most `HEADER_BYTES` and `HEADER_SECONDS` (counted from the connection,
or from the end of the previous response); past either the connection gets 400
or is closed. A body's time is bounded by the app (`web.guard`), idle keep-alive
by uvicorn's `timeout_keep_alive`. Imports nothing from gapless.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_BYTES = 32 * 1024  # request line and headers (nginx's large_client_header_buffers: 32K)
HEADER_SECONDS = 10.0


class HeaderLimitError(Exception):
    pass


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` with `HEADER_BYTES` and `HEADER_SECONDS` per request's head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_bytes = 0
        self.head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self.head_timer = self.loop.call_later(HEADER_SECONDS, self._too_slow)

    def _disarm(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _too_slow(self) -> None:
        self.head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _count(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > HEADER_BYTES:
            raise HeaderLimitError("request headers too large")

    def on_message_begin(self) -> None:
        self.head_bytes = 0
        if self.head_timer is None:
            self._arm()
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request's head is timed from here (keep-alive)
