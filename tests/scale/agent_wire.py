"""A model for the scaled-out agent tests: an OpenAI-compatible server on 127.0.0.1 that every
process of a cluster reaches through `GAPLESS_ENDPOINTS` (the scripted provider lives in
one process only; this one is a real peer over the wire, in the test's own process).

It answers by what it is asked, as a tool-calling model does: a request whose last
message is a tool result gets a sentence quoting that result; any other request
gets a sentence and a call of the tool its model is named after (`mcp__bump` calls
the MCP tool `mcp.bump`), its JSON arguments split over two deltas. The bytes are
OpenAI's own (`tests/providers/wire.py`), so the official SDK parses them as the real API's.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from tests.providers.wire import DONE, Reply, Seen, Wire, call_delta, chunk, usage_chunk

# The tools a model may be named after, and the pieces of the arguments it sends them.
ARGUMENTS: dict[str, tuple[str, ...]] = {
    "mcp__bump": ("{", "}"),
    "mcp__hold": ('{"key": ', '"held"}'),
}


def endpoint(url: str) -> str:
    """The `GAPLESS_ENDPOINTS` value naming this server `wire`, with a model per tool."""
    models = list(ARGUMENTS)
    return json.dumps([{"name": "wire", "base_url": f"{url}/v1", "models": models}])


def call_reply(model: str) -> Reply:
    pieces = ARGUMENTS[model]
    return Reply(
        events=(
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Calling it."}),
            chunk(call_delta(0, id="call_wire_1", name=model)),
            *(chunk(call_delta(0, piece)) for piece in pieces),
            chunk({}, finish="tool_calls"),
            usage_chunk(prompt=20, completion=10, reasoning=0),
            DONE,
        )
    )


def answer_reply(result: str) -> Reply:
    return Reply(
        events=(
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "The tool said "}),
            chunk({"content": f"{result}."}),
            chunk({}, finish="stop"),
            usage_chunk(prompt=30, completion=5, reasoning=0),
            DONE,
        )
    )


def reply_to(body: dict[str, Any]) -> Reply:
    messages = body.get("messages") or [{}]
    last = messages[-1]
    if last.get("role") == "tool":
        return answer_reply(str(last.get("content")))
    return call_reply(str(body.get("model")))


@dataclass
class AgentWire(Wire):
    """`Wire`, answering by the conversation instead of by a fixed script per model."""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            path, headers, body = await self.read(reader)
            self.seen.append(Seen(path, headers, body))
            await self.answer(reply_to(body), reader, writer)
        finally:
            writer.close()
