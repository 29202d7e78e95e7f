"""The `Tool` interface: a name, a description, a JSON schema, and one async call.

Every kind of tool (a Python function, a built-in, an MCP server's tool)
implements it, and one contract suite (`tests/contract/test_tool_contract.py`)
runs against each. A call answers text or JSON, or raises `ToolError` with a
message the model is shown; anything else it raises is a bug of that tool,
reported the same way by the job. Imports nothing from gapless but `errors`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gapless.errors import GaplessError

JSON = dict[str, Any] | list[Any] | str | int | float | bool | None


class ToolError(GaplessError):
    """A tool failed in a way the model should hear about (bad input, the service said no,
    MCP's `isError`). `code` is stable: `invalid_arguments`, `timeout`, `refused`, ..."""

    code = "tool_error"
    status = 502


@dataclass(frozen=True)
class ToolContext:
    """Who a call runs for: the user who asked for the reply, in its chat and account.

    Tools that read the service's own data (`search_chats`) see exactly what that
    user may see through the API: `account_ids` None means a site admin.
    """

    user_id: str | None
    account_ids: frozenset[str] | None
    chat_id: str
    message_id: str
    search: Callable[[str, int], Awaitable[list[dict[str, Any]]]] | None = None


class Tool(Protocol):
    """One callable tool. `destructive` (MCP's `destructiveHint`) makes approval the default."""

    # Read-only properties, so a frozen dataclass (or plain attributes) implements them.
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def schema(self) -> dict[str, Any]: ...
    @property
    def destructive(self) -> bool: ...

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> JSON:
        """Run the tool on arguments already validated against `schema`."""
        ...


@dataclass(frozen=True)
class ToolInfo:
    """A tool as `GET /api/tools` lists it (and the agents page offers it)."""

    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=dict)
    destructive: bool = False
    source: str = "builtin"  # builtin | plugin | mcp:<server>
    error: str | None = None  # an MCP server that cannot start says why here


def info(tool: Tool, source: str) -> ToolInfo:
    return ToolInfo(tool.name, tool.description, tool.schema, tool.destructive, source)
