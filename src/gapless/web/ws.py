"""One multiplexed WebSocket (`/api/ws`): many chats, each a `feed.follow` of its own.

A `subscribe` for a chat already followed replaces it: the old pump is
cancelled and awaited before `subscribed` is sent, so every frame of that chat
after `subscribed` belongs to the new subscription. Browsers (cookie) must come
from this service's own Origin; programs send a bearer token.

The endpoint is plain ASGI, served in front of FastAPI (`web.app.Front`), not a
FastAPI route over starlette's `WebSocket`: an idle socket is a chain of
suspended coroutines and what they hold, and FastAPI's layers alone kept about
13 KB per socket (exit stacks, the resolved dependencies, a `WebSocket`, the
middleware chain); sends also skip their wrappers and state checks. Each
followed chat keeps only what its pump needs after `subscribe` (the chat's
account, not its row). Every subscription is held by `web.live` (the per-user
cap; access ended elsewhere ends it). Imports `accounts`, `db.accounts`,
`events`, `feed`, `log`, `runtime`, `web.auth`, `web.guard`, `web.live`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import replace
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import Receive, Scope, Send

from gapless.accounts import Accounts
from gapless.db.accounts import Caller, token_holder
from gapless.errors import GaplessError, UnauthorizedError
from gapless.events import Event, encode, reset
from gapless.feed import Hold, follow
from gapless.log.base import Subscription, chat_stream
from gapless.observe.delivery import label
from gapless.runtime import Runtime
from gapless.web.auth import identify, same_origin
from gapless.web.guard import bad_text
from gapless.web.live import Live

MAX_FRAME = 64 * 1024
FAILED = reset("error")  # what a pump whose follow failed sends last
logger = logging.getLogger("gapless.web.ws")


def head(chat_id: str) -> str:
    """The start of every event frame of one chat's subscription: the chat id is encoded once."""
    return f'{{"chat_id":{encode(chat_id)},"cursor":'


def frame(start: str, event: Event) -> str:
    """An event frame. Cursors and event types are URL-safe ASCII by construction
    (PROTOCOL.md), so they go between quotes as they are; `data` is the event's JSON,
    encoded once by the log for every subscriber."""
    cursor = f'"{event.cursor}"' if event.cursor else "null"
    return f'{start}{cursor},"type":"{event.type}","data":{event.data}}}'


def error_frame(code: str, message: str, chat_id: str | None = None) -> str:
    body: dict[str, Any] = {"op": "error", "error": {"code": code, "message": message}}
    if chat_id is not None:
        body["chat_id"] = chat_id
    return encode(body)


class Socket:
    """The per-connection state: who is calling, and one pump per followed chat.

    Pumps send without a lock: the server writes each frame whole, in one call,
    so frames of different chats never mix, and one chat's frames come from one pump.
    """

    __slots__ = ("asgi_send", "caller", "followers", "live", "runtime", "stale")

    def __init__(self, send: Send, runtime: Runtime, caller: Caller, live: Live) -> None:
        self.asgi_send, self.runtime, self.caller, self.live = send, runtime, caller, live
        self.followers: dict[str, Follower] = {}
        self.stale = False  # some access of the caller's ended: re-check before subscribing

    def revoke(self, tokens: list[str] | None, account_id: str | None) -> None:
        """From `Live`: the held subscriptions end by themselves; later ones re-check."""
        self.stale = True

    async def send(self, text: str) -> None:
        await self.asgi_send({"type": "websocket.send", "text": text})

    async def handle(self, text: str) -> None:
        if len(text) > MAX_FRAME:
            await self.send(error_frame("too_large", "frame too large"))
            return
        try:
            message = json.loads(text)
        except ValueError:
            await self.send(error_frame("malformed_json", "frames must be JSON objects"))
            return
        if not isinstance(message, dict):
            await self.send(error_frame("malformed_json", "frames must be JSON objects"))
            return
        op, chat_id, cursor = message.get("op"), message.get("chat_id"), message.get("cursor")
        if not isinstance(chat_id, str) or op not in ("subscribe", "unsubscribe"):
            await self.send(error_frame("invalid", "expected {op: subscribe|unsubscribe, chat_id}"))
            return
        if cursor is not None and not isinstance(cursor, str):
            await self.send(error_frame("invalid", "cursor must be a string", chat_id))
            return
        if bad_text(chat_id) or (cursor is not None and bad_text(cursor)):
            # Never echoed back: a lone surrogate cannot even be encoded in a frame.
            await self.send(error_frame("bad_request", "NUL or a lone surrogate in a frame"))
            return
        follower = self.followers.pop(chat_id, None)
        if follower is not None:
            await follower.stop()
        if op == "subscribe":
            await self.subscribe(chat_id, cursor)

    async def subscribe(self, chat_id: str, cursor: str | None) -> None:
        try:
            if self.stale:
                await self.recheck()
            chat = await self.runtime.chats.chat(self.caller, chat_id)
            subscription = await self.runtime.log.subscribe(chat_stream(chat_id), cursor)
            label(subscription, "ws")  # delivery figures by transport
            try:
                held = self.live.hold(self.caller, chat["account_id"])
            except GaplessError:
                await subscription.close()
                raise
        except GaplessError as exc:
            await self.send(error_frame(exc.code, exc.message, chat_id))
            return
        await self.send(encode({"op": "subscribed", "chat_id": chat_id}))
        self.followers[chat_id] = Follower(self, chat_id, chat["account_id"], subscription, held)

    async def recheck(self) -> None:
        """Who the caller is now: their token may be gone (401), memberships ended."""
        fresh = await token_holder(self.runtime.engine, self.caller.token_id)
        if fresh is None:
            raise UnauthorizedError("signed out, or the token was revoked")
        self.caller = replace(self.caller, account_ids=fresh.account_ids)
        self.stale = False

    async def close(self) -> None:
        while self.followers:
            await self.followers.popitem()[1].stop()


class Follower:
    """One followed chat of one socket: its pump, and what the pump needs after
    `subscribe` (the chat's account, not its row)."""

    __slots__ = ("account_id", "chat_id", "held", "socket", "subscription", "task")

    def __init__(
        self,
        socket: Socket,
        chat_id: str,
        account_id: str,
        subscription: Subscription,
        held: Hold,
    ) -> None:
        self.socket, self.chat_id, self.account_id = socket, chat_id, account_id
        self.subscription, self.held = subscription, held
        self.task = asyncio.create_task(self.pump())

    async def allowed(self) -> bool:
        socket = self.socket
        return await Accounts(socket.runtime.engine).still_sees(socket.caller, self.account_id)

    async def pump(self) -> None:
        socket = self.socket
        send, start = socket.asgi_send, head(self.chat_id)
        batches = follow(
            self.subscription,
            heartbeat=socket.runtime.settings.heartbeat,
            allowed=self.allowed,
            hold=self.held,
        )
        while True:
            try:
                batch = await anext(batches)
            except StopAsyncIteration:
                break
            except Exception as exc:
                # Loss is always signalled: the client refetches and subscribes anew.
                # (A failed send, below, is the client gone: nobody to tell.) One line,
                # no traceback: its frames' values may hold what users wrote.
                logger.error("following chat %s failed: %s", self.chat_id, type(exc).__name__)
                await send({"type": "websocket.send", "text": frame(start, FAILED)})
                break
            for event in batch:
                await send({"type": "websocket.send", "text": frame(start, event)})
        if socket.followers.get(self.chat_id) is self:
            del socket.followers[self.chat_id]

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        # A pump cancelled before its first step never entered `follow`, which closes
        # the subscription: close it here too (closing twice is harmless).
        await self.held.close()
        await self.subscription.close()


async def refuse(scope: Scope, send: Send, exc: GaplessError, status: int, code: int) -> None:
    """Refuse the handshake with an HTTP status and the `{error}` body where the server can
    (uvicorn's denial response), else close with `code`."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": code})
        return
    body = encode({"error": {"code": exc.code, "message": exc.message}}).encode()
    headers = [(b"content-type", b"application/json")]
    if status == 429:
        headers.append((b"retry-after", b"15"))
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


async def endpoint(
    runtime: Runtime, live: Live, scope: Scope, receive: Receive, send: Send
) -> None:
    """`/api/ws` as plain ASGI (`web.app.Front` hands it here): authenticate, accept, then
    one frame at a time."""
    if (await receive())["type"] != "websocket.connect":
        return
    connection = HTTPConnection(scope)
    try:
        caller = await identify(connection, Accounts(runtime.engine))
    except GaplessError as exc:
        await refuse(scope, send, exc, 401, 4401)
        return
    if caller.session and not same_origin(connection, runtime.settings.public_url):
        await send({"type": "websocket.close", "code": 4403})  # another site's page
        return
    del connection
    socket = Socket(send, runtime, caller, live)
    try:
        live.watch(caller.user_id, socket)
    except GaplessError as exc:
        await refuse(scope, send, exc, 429, 4429)
        return
    await send({"type": "websocket.accept"})
    try:
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                break  # websocket.disconnect
            text = message.get("text")
            if text is None:
                await socket.send(error_frame("invalid", "frames must be text"))
                continue
            try:
                await socket.handle(text)
            except Exception as exc:  # one frame failed, not the socket: said, in one line
                logger.error("a WebSocket frame failed: %s", type(exc).__name__)
                await socket.send(error_frame("internal", "this frame could not be handled"))
    finally:
        live.release(caller.user_id, socket)
        await socket.close()


PATH = "/api/ws"
