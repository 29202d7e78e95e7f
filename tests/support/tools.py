"""Tools for tests: each counts its calls, and `gated` waits at a gate the test opens.

Gates are `threading.Event`s (the server runs in a thread of its own), so a test
holds a tool at an exact point and releases it: nothing sleeps hoping for timing.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from gapless.agents.tools import JSON, ToolContext, ToolError

GATE_TIMEOUT = 60.0
TEXT = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


@dataclass
class KitTool:
    name: str
    description: str
    schema: dict[str, Any]
    destructive: bool
    kit: Kit

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> JSON:
        self.kit.contexts.append(context)
        return await self.kit.call(self.name, arguments)


@dataclass
class Kit:
    """The tools and what they saw: `calls[name]` counts the calls that began."""

    calls: Counter[str] = field(default_factory=Counter)
    reached: threading.Event = field(default_factory=threading.Event)
    opened: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)
    seen: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    contexts: list[ToolContext] = field(default_factory=list)  # whom each call ran for

    def tools(self) -> list[KitTool]:
        def tool(name: str, description: str, destructive: bool = False) -> KitTool:
            return KitTool(name, description, TEXT, destructive, self)

        return [
            tool("echo", "Answers its text."),
            tool("gated", "Answers its text once the test opens the gate."),
            tool("boom", "Always fails."),
            tool("crash", "Raises an error that is not a ToolError."),
            tool("flood", "Answers its text a hundred thousand times."),
            tool("stall", "Never answers."),
            tool("danger", "Answers its text; destructive, so approval is its default.", True),
        ]

    async def call(self, name: str, arguments: dict[str, Any]) -> JSON:
        self.calls[name] += 1
        self.seen.append((name, arguments))
        text = arguments["text"]
        if name == "gated":
            self.reached.set()
            try:
                if not await asyncio.to_thread(self.opened.wait, GATE_TIMEOUT):
                    raise ToolError("test gate never opened", code="test_gate")
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        elif name == "boom":
            raise ToolError(f"boom: {text}", code="boom")
        elif name == "crash":
            raise RuntimeError("the tool crashed")
        elif name == "flood":
            return text * 100_000
        elif name == "stall":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        return {"echo": text}
