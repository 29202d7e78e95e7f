"""The WebSocket ceiling: `websockets.broadcast` over the same bare rooms as the SSE ceiling.

Job: serve `/api/ws` with Gapless's frames (`{"op": "subscribe", "chat_id",
"cursor"?}` answered by `{"op": "subscribed", "chat_id"}`, then
`{"chat_id", "cursor", "type", "data"}` per event) from the `websockets`
library's own server, whose `broadcast` writes one encoded frame to every
socket without a task or a queue per subscriber: the fastest fan-out Python
has. The REST endpoints (create a chat, post a message) are the SSE ceiling's
raw HTTP server on `--http-port`, because `websockets` only answers GET.
Run: `python -m benchmarks.ceiling_ws --port P --http-port Q`.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

from benchmarks.ceiling_sse import Room, Rooms, run, serve_http, ws_frame


async def handler(rooms: Rooms, connection: ServerConnection) -> None:
    joined: dict[str, Room] = {}
    try:
        async for text in connection:
            op = json.loads(text)
            room = rooms.get(op.get("chat_id", ""))
            if room is None:
                await connection.send(
                    json.dumps(
                        {
                            "op": "error",
                            "chat_id": op.get("chat_id"),
                            "error": {"code": "not_found", "message": "no such chat"},
                        }
                    )
                )
                continue
            room.ws.discard(connection)
            if op.get("op") != "subscribe":
                joined.pop(room.id, None)
                continue
            await connection.send(json.dumps({"op": "subscribed", "chat_id": room.id}))
            cursor = op.get("cursor")
            if cursor:
                position = room.position(cursor)
                if position is None:
                    await connection.send(
                        json.dumps(
                            {
                                "chat_id": room.id,
                                "cursor": None,
                                "type": "reset",
                                "data": {"reason": "unknown"},
                            }
                        )
                    )
                    continue
                # replay and join with no await in between, so nothing falls in the gap
                for event in room.events[position:]:
                    broadcast((connection,), ws_frame(room.id, *event))
            room.ws.add(connection)
            joined[room.id] = room
    except ConnectionClosed:
        pass  # a benchmark client may hang up abruptly (a reconnect storm does)
    finally:
        for room in joined.values():
            room.ws.discard(connection)


async def main(host: str, port: int, http_port: int) -> None:
    rooms = Rooms()
    http = await serve_http(rooms, host, http_port)
    async with (
        serve(
            lambda c: handler(rooms, c), host, port, compression=None, max_queue=None, backlog=4096
        ),
        http,
    ):
        print(f"ceiling ws on ws://{host}:{port}/api/ws, http://{host}:{http_port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8102)
    parser.add_argument("--http-port", type=int, default=8103)
    args = parser.parse_args()
    run(main(args.host, args.port, args.http_port))
