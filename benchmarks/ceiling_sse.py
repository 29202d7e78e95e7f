"""The SSE ceiling: a bare fan-out as fast as Python allows, speaking Gapless's wire subset.

Job: give the load generator the same endpoints and the same frames as Gapless
(`POST /api/chats`, `POST /api/chats/{id}/messages`, `GET /api/chats/{id}`,
`GET /api/chats/{id}/events?cursor=`) with nothing behind them: no database, no
job, no durable log. A producer coroutine runs the real `BenchProvider` and
writes each event, encoded once, straight to every subscriber's socket
(`transport.write` on a raw `asyncio.Protocol`, uvloop, chunked HTTP/1.1 like
uvicorn). Events are kept in a plain list only so a cursor can be resumed
(late joiners, reconnects), which is the least any replayable fan-out needs.

Why: Gapless's guarantees cost something; this is the "nothing" to divide by.
`benchmarks.ceiling_ws` adds a `websockets.broadcast` WebSocket endpoint to
the same rooms. Run: `python -m benchmarks.ceiling_sse --port P`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gapless.providers.base import Prompt, Text, Turn
from gapless.providers.bench import BenchProvider


def encode(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def new_id() -> str:
    return secrets.token_hex(16)


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk, as uvicorn frames a streamed body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def message(
    chat_id: str, role: str, model: str, content: str, seq: int, status: str
) -> dict[str, Any]:
    now = time.time()
    return {
        "id": new_id(),
        "chat_id": chat_id,
        "parent_id": None,
        "role": role,
        "content": content,
        "thinking": "",
        "status": status,
        "seq": seq,
        "error": None,
        "model": model,
        "usage": None,
        "created_at": now,
        "updated_at": now,
    }


class Room:
    """One chat: its events (for cursors), its live subscribers, its messages."""

    def __init__(self, chat_id: str, model: str) -> None:
        self.id = chat_id
        self.model = model
        self.epoch = secrets.token_hex(4)
        self.events: list[tuple[str, str, str]] = []  # (cursor, type, data)
        self.sse: set[asyncio.Transport] = set()
        self.ws: set[Any] = set()  # websockets ServerConnection, see ceiling_ws
        self.messages: list[dict[str, Any]] = []
        self.parts: dict[str, list[str]] = {}  # text so far of each unfinished reply

    def cursor(self, position: int) -> str:
        return f"{self.epoch}.{position}-0"

    def position(self, cursor: str) -> int | None:
        epoch, _, rest = cursor.partition(".")
        if epoch != self.epoch or not rest.endswith("-0") or not rest[:-2].isdigit():
            return None
        position = int(rest[:-2])
        return position if position <= len(self.events) else None

    def publish(self, type: str, payload: Any) -> None:
        data = encode(payload)
        cursor = self.cursor(len(self.events) + 1)
        self.events.append((cursor, type, data))
        if self.sse:
            frame = chunk(sse_frame(cursor, type, data))
            for transport in self.sse:
                transport.write(frame)
        if self.ws:
            broadcast(self.ws, ws_frame(self.id, cursor, type, data))

    def start(self, content: str, model: str, tasks: set[asyncio.Task[None]]) -> list[Any]:
        """Create the user message and the reply, as Gapless does before answering the POST."""
        model = model or self.model
        user = message(self.id, "user", "", content, 0, "complete")
        reply = message(self.id, "assistant", model, "", 0, "pending")
        self.messages += [user, reply]
        self.parts[reply["id"]] = []
        self.publish("message.created", user)
        self.publish("message.created", reply)
        task = asyncio.ensure_future(self.produce(reply, content))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return [user, reply]

    async def produce(self, reply: dict[str, Any], content: str) -> None:
        prompt = Prompt(turns=(Turn(role="user", content=content),))
        parts = self.parts[reply["id"]]
        message_id = reply["id"]
        async for piece in BenchProvider().stream(reply["model"].partition(":")[2], prompt):
            if isinstance(piece, Text):
                parts.append(piece.text)
                self.publish(
                    "message.delta",
                    {"message_id": message_id, "seq": len(parts), "content": piece.text},
                )
        reply.update(
            content="".join(parts), seq=len(parts), status="complete", updated_at=time.time()
        )
        del self.parts[message_id]
        self.publish("message.completed", reply)

    def state(self) -> dict[str, Any]:
        """Messages as of now and the cursor of the newest event: in memory, nothing lags."""
        messages = []
        for stored in self.messages:
            copy = dict(stored)
            parts = self.parts.get(copy["id"])
            if parts is not None:
                copy.update(
                    content="".join(parts),
                    seq=len(parts),
                    status="streaming" if parts else "pending",
                )
            messages.append(copy)
        return {
            "chat": {"id": self.id, "model": self.model},
            "messages": messages,
            "cursor": self.cursor(len(self.events)),
        }


def sse_frame(cursor: str, type: str, data: str) -> bytes:
    return f"id: {cursor}\nevent: {type}\ndata: {data}\n\n".encode()


def ws_frame(chat_id: str, cursor: str, type: str, data: str) -> str:
    return f'{{"chat_id":"{chat_id}","cursor":"{cursor}","type":"{type}","data":{data}}}'


def broadcast(connections: set[Any], text: str) -> None:
    from websockets.asyncio.server import broadcast as ws_broadcast

    ws_broadcast(connections, text)


class Rooms(dict[str, Room]):
    def create(self, model: str) -> Room:
        room = Room(new_id(), model)
        self[room.id] = room
        return room


class HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, just enough for the bench endpoints; SSE stays open."""

    def __init__(self, rooms: Rooms, tasks: set[asyncio.Task[None]]) -> None:
        self.rooms = rooms
        self.tasks = tasks
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.room: Room | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if self.room is not None and self.transport is not None:
            self.room.sse.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        if self.room is not None:
            return  # an SSE response is streaming; the client has nothing more to say
        self.buffer += data
        while True:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(rest) < length:
                return
            body, self.buffer = rest[:length], rest[length:]
            self.handle(method, target, body)
            if self.room is not None:
                return

    def respond(self, status: int, payload: Any) -> None:
        assert self.transport is not None
        body = encode(payload).encode()
        reason = {200: "OK", 201: "Created", 404: "Not Found"}.get(status, "Error")
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )

    def handle(self, method: str, target: str, body: bytes) -> None:
        url = urlsplit(target)
        parts = url.path.strip("/").split("/")
        payload = json.loads(body) if body else {}
        if method == "POST" and parts == ["api", "chats"]:
            room = self.rooms.create(payload.get("model", "bench:r50-n200"))
            self.respond(201, {"id": room.id, "model": room.model})
            return
        found = (
            self.rooms.get(parts[2]) if len(parts) >= 3 and parts[:2] == ["api", "chats"] else None
        )
        if found is None:
            self.respond(404, {"error": {"code": "not_found", "message": "no such chat"}})
            return
        room = found
        if method == "POST" and parts[3:] == ["messages"]:
            user, reply = room.start(
                payload.get("content", ""), payload.get("model", ""), self.tasks
            )
            self.respond(201, {"user_message": user, "assistant_message": reply})
        elif method == "GET" and parts[3:] == ["events"]:
            self.subscribe(room, parse_qs(url.query).get("cursor", [""])[0])
        elif method == "GET" and not parts[3:]:
            self.respond(200, room.state())
        else:
            self.respond(404, {"error": {"code": "not_found", "message": "no such route"}})

    def subscribe(self, room: Room, cursor: str) -> None:
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        if cursor:
            position = room.position(cursor)
            if position is None:
                self.transport.write(chunk(b'event: reset\ndata: {"reason":"unknown"}\n\n'))
                self.transport.write(b"0\r\n\r\n")
                return
            replay = b"".join(sse_frame(*event) for event in room.events[position:])
            if replay:
                self.transport.write(chunk(replay))
        self.room = room
        room.sse.add(self.transport)


def factory(rooms: Rooms, tasks: set[asyncio.Task[None]]) -> Callable[[], HttpProtocol]:
    return lambda: HttpProtocol(rooms, tasks)


async def serve_http(rooms: Rooms, host: str, port: int) -> asyncio.base_events.Server:
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    return await loop.create_server(factory(rooms, tasks), host, port, backlog=4096)


async def main(host: str, port: int) -> None:
    server = await serve_http(Rooms(), host, port)
    print(f"ceiling sse on http://{host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def run(coro: Any) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    args = parser.parse_args()
    run(main(args.host, args.port))
