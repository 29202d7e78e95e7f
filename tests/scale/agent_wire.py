"""A model for the scaled-out agent tests: an OpenAI-compatible server on 127.0.0.1 that every
process of a cluster reaches through `GAPLESS_ENDPOINTS` (the scripted provider lives in
one process only; this one is a real peer over the wire, in the test's own process).

It answers by what it is asked, as a tool-calling model does: a request whose last
message is a tool result gets a sentence quoting that result; any other request
gets a sentence and the calls its model plans (`mcp__bump` calls the MCP tool
`mcp.bump`; `bump-twice` calls it twice in one step), arguments split over deltas. The bytes are
OpenAI's own (`tests/providers/wire.py`), so the official SDK parses them as the real API's.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from tests.providers.wire import DONE, Reply, Seen, Wire, call_delta, chunk, usage_chunk

# The models, each the tools it calls in one step (parallel calls when several), by their
# API names, and the pieces of the arguments it sends each.
PLANS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "mcp__bump": (("mcp__bump", ("{", "}")),),
    "mcp__hold": (("mcp__hold", ('{"key": ', '"held"}')),),
    "bump-twice": (("mcp__bump", ("{", "}")), ("mcp__bump", ("{}",))),
}


def endpoint(url: str) -> str:
    """The `GAPLESS_ENDPOINTS` value naming this server `wire`, with its models."""
    models = list(PLANS)
    return json.dumps([{"name": "wire", "base_url": f"{url}/v1", "models": models}])


def call_reply(model: str) -> Reply:
    plan = PLANS[model]
    starts = [
        chunk(call_delta(index, id=f"call_wire_{index + 1}", name=name))
        for index, (name, _) in enumerate(plan)
    ]
    arguments = [  # the calls' pieces interleaved by index, as parallel calls stream
        chunk(call_delta(index, pieces[n]))
        for n in range(max(len(pieces) for _, pieces in plan))
        for index, (_, pieces) in enumerate(plan)
        if n < len(pieces)
    ]
    return Reply(
        events=(
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Calling it."}),
            *starts,
            *arguments,
            chunk({}, finish="tool_calls"),
            usage_chunk(prompt=20, completion=10, reasoning=0),
            DONE,
        )
    )


def answer_reply(results: list[str]) -> Reply:
    return Reply(
        events=(
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "The tool said "}),
            chunk({"content": f"{' and '.join(results)}."}),
            chunk({}, finish="stop"),
            usage_chunk(prompt=30, completion=5, reasoning=0),
            DONE,
        )
    )


def reply_to(body: dict[str, Any]) -> Reply:
    messages = body.get("messages") or [{}]
    results: list[str] = []
    for message in reversed(messages):  # the tool results the conversation ends with
        if message.get("role") != "tool":
            break
        results.insert(0, str(message.get("content")))
    if results:
        return answer_reply(results)
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
