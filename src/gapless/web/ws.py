"""One multiplexed WebSocket (`/api/ws`): many chats, each a `feed.follow` of its own.

A `subscribe` for a chat already followed replaces it: the old pump is
cancelled and awaited before `subscribed` is sent, so every frame of that chat
after `subscribed` belongs to the new subscription. Browsers (cookie) must come
from this service's own Origin; programs send a bearer token. Imports `feed`,
`chats`, `runtime`, `web.auth`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from gapless.accounts import Accounts
from gapless.db.accounts import Caller
from gapless.errors import GaplessError, NotFoundError
from gapless.events import Event, encode
from gapless.feed import follow
from gapless.log.base import chat_stream
from gapless.runtime import Runtime
from gapless.web.auth import identify, same_origin

MAX_FRAME = 64 * 1024
router = APIRouter()


def framing(chat_id: str) -> Callable[[Event], str]:
    """The frame maker of one chat's subscription: the chat id is encoded once, not per event.

    Cursors and event types are URL-safe ASCII by construction (PROTOCOL.md), so
    they go between quotes as they are; `data` is the event's JSON, encoded once
    by the log for every subscriber.
    """
    head = f'{{"chat_id":{encode(chat_id)},"cursor":'

    def frame(event: Event) -> str:
        cursor = f'"{event.cursor}"' if event.cursor else "null"
        return f'{head}{cursor},"type":"{event.type}","data":{event.data}}}'

    return frame


def error_frame(code: str, message: str, chat_id: str | None = None) -> str:
    body: dict[str, Any] = {"op": "error", "error": {"code": code, "message": message}}
    if chat_id is not None:
        body["chat_id"] = chat_id
    return encode(body)


class Socket:
    """The per-connection state: who is calling, and one pump task per followed chat.

    Pumps send without a lock: the server writes each frame whole, in one call,
    so frames of different chats never mix, and one chat's frames come from one pump.
    """

    def __init__(self, websocket: WebSocket, runtime: Runtime, caller: Caller) -> None:
        self.websocket, self.runtime, self.caller = websocket, runtime, caller
        self.accounts = Accounts(runtime.engine)
        self.pumps: dict[str, asyncio.Task[None]] = {}

    async def send(self, text: str) -> None:
        await self.websocket.send_text(text)

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
        await self.stop_pump(chat_id)
        if op == "subscribe":
            await self.subscribe(chat_id, cursor)

    async def subscribe(self, chat_id: str, cursor: str | None) -> None:
        try:
            chat = await self.runtime.chats.chat(self.caller, chat_id)
        except GaplessError as exc:
            await self.send(error_frame(exc.code, exc.message, chat_id))
            return
        subscription = await self.runtime.log.subscribe(chat_stream(chat_id), cursor)
        await self.send(encode({"op": "subscribed", "chat_id": chat_id}))

        async def allowed() -> bool:
            return await self.accounts.still_sees(self.caller, chat["account_id"])

        frame = framing(chat_id)

        async def pump() -> None:
            async for batch in follow(
                subscription, heartbeat=self.runtime.settings.heartbeat, allowed=allowed
            ):
                for event in batch:
                    await self.send(frame(event))
            self.pumps.pop(chat_id, None)

        self.pumps[chat_id] = asyncio.create_task(pump())

    async def stop_pump(self, chat_id: str) -> None:
        task = self.pumps.pop(chat_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def close(self) -> None:
        for chat_id in list(self.pumps):
            await self.stop_pump(chat_id)


@router.websocket("/api/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    try:
        caller = await identify(websocket, Accounts(runtime.engine))
    except GaplessError:
        await websocket.close(code=4401)
        return
    if caller.session and not same_origin(websocket, runtime.settings.public_url):
        await websocket.close(code=4403)  # a cookie from another site's page: refused
        return
    await websocket.accept()
    socket = Socket(websocket, runtime, caller)
    try:
        while True:
            await socket.handle(await websocket.receive_text())
    except (WebSocketDisconnect, NotFoundError):
        pass
    finally:
        await socket.close()
