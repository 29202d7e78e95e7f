"""`Toolbox`: every tool this process may offer an agent, built once from settings.

Built-ins the settings enable (`tools`: calculator, current_time, search_chats,
and fetch only when listed), the tools of installed plugins (entry-point group
`gapless.tools`), and each configured MCP server's tools as `<server>.<tool>`.
A built-in's name wins over a plugin's. MCP servers start on first use and are
stopped by `close`. Imports `agents.*`; `config.Settings` only as a type.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gapless.agents import functions
from gapless.agents.builtins import builtins
from gapless.agents.fetch import fetch_tool
from gapless.agents.mcp import McpConnection
from gapless.agents.tools import Tool, ToolInfo, info

if TYPE_CHECKING:
    from gapless.config import Settings

logger = logging.getLogger("gapless.agents")


class Toolbox:
    def __init__(
        self,
        local: Sequence[tuple[Tool, str]] = (),
        servers: Sequence[McpConnection] = (),
        broken: Sequence[ToolInfo] = (),
    ) -> None:
        self._local: dict[str, tuple[Tool, str]] = {}
        self._broken = list(broken)
        for tool, source in local:
            if tool.name in self._local:
                self._broken.append(ToolInfo(tool.name, tool.description, source=source,
                                             error=f"another {self._local[tool.name][1]} tool "
                                             "has this name"))
                continue
            self._local[tool.name] = (tool, source)
        self._servers = {server.name: server for server in servers}

    async def available(self) -> list[ToolInfo]:
        """What agents may use (starting MCP servers not yet started), and what is broken."""
        listed = [info(tool, source) for tool, source in self._local.values()]
        remote = await asyncio.gather(*(s.infos() for s in self._servers.values()))
        return listed + [i for infos in remote for i in infos] + self._broken

    async def resolve(self, names: Sequence[str]) -> dict[str, Tool]:
        """The tools of these names that exist; an unknown name is simply absent."""
        found: dict[str, Tool] = {n: self._local[n][0] for n in names if n in self._local}
        remote = [(n, s) for n in names if n not in found for s in self._servers.values()
                  if n.startswith(f"{s.name}.")]  # each server sorts out its own names
        tools = await asyncio.gather(*(s.resolve(n) for n, s in remote))
        found.update({t.name: t for t in tools if t is not None})
        return found

    async def close(self) -> None:
        """Stop every MCP server this toolbox started."""
        await asyncio.gather(*(s.close() for s in self._servers.values()))


def build_toolbox(
    settings: Settings, *, plugins: bool = True, extra: Sequence[Tool] = ()
) -> Toolbox:
    """The toolbox `settings` describe (plugins: every installed `gapless.tools` entry point;
    `extra`: tools the embedding program adds, such as tests' gated tools)."""
    local: list[tuple[Tool, str]] = [(tool, "extra") for tool in extra]
    known = builtins()
    for name in settings.tools:
        if name == "fetch":
            tool: Tool = fetch_tool(settings.fetch_hosts, settings.fetch_private,
                                    settings.fetch_max_bytes, settings.fetch_timeout)
            local.append((tool, "builtin"))
        elif name in known:
            local.append((known[name], "builtin"))
        else:
            logger.warning("GAPLESS_TOOLS names %r, which is not a built-in tool", name)
    broken: list[ToolInfo] = []
    if plugins:
        found, broken = functions.plugins()
        local += [(tool, "plugin") for tool in found]
    servers = [McpConnection(s, start_timeout=settings.tool_timeout) for s in settings.mcp_servers]
    return Toolbox(local, servers, broken)
