"""The terminal client's engine against a live server: follows, survives resets, stops."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from gapless.client import Client
from gapless.providers.base import Finish
from tests.support.scripted import Call, Gate, Think
from tests.support.server import LiveServer


def test_client_prints_each_piece_once_and_ends_with_the_database_text(
    live_server: LiveServer,
) -> None:
    live_server.script(Think("pondering "), "one ", "two ", "three")
    client = Client(live_server.url, live_server.token)
    chat = client.new_chat()
    sent = client.send(chat["id"], "count")
    printed: list[tuple[str, str]] = []
    final = client.follow(
        chat["id"], sent["assistant_message"]["id"], lambda kind, text: printed.append((kind, text))
    )
    assert final == live_server.message(sent["assistant_message"]["id"])
    assert "".join(t for k, t in printed if k == "content") == "one two three"
    assert "".join(t for k, t in printed if k == "thinking") == "pondering "


def test_client_recovers_from_a_reset_and_stops_a_reply(live_server: LiveServer) -> None:
    gate = Gate()
    live_server.script("kept ", gate, "dropped")
    client = Client(live_server.url, live_server.token)
    chat = client.new_chat()
    sent = client.send(chat["id"], "go")
    reply_id = sent["assistant_message"]["id"]
    asyncio.run(gate.wait_reached())
    # The log forgets everything: the client's cursor is too old, it must refetch.
    live_server.run(live_server.runtime.log.trim(4e9, {}))
    stopped = client.stop(reply_id)
    printed: list[str] = []
    final = client.follow(chat["id"], reply_id, lambda kind, text: printed.append(text))
    assert final["status"] == stopped["status"] == "cancelled"
    assert "".join(printed) == "kept "
    gate.set()


def agent_chat(client: Client, approval: str) -> str:
    """A chat whose agent may call the calculator, asking first or not."""
    agent = client.call(
        "POST",
        "/api/agents",
        json={
            "name": "Calculator",
            "model": "scripted:default",
            "tools": ["calculator"],
            "approval": {"calculator": approval},
        },
    )
    chat = client.call("POST", "/api/chats", json={"title": "Tools", "agent_id": agent["id"]})
    return str(chat["id"])


def test_client_shows_a_tool_call_as_it_streams_and_asks_before_it_runs(
    live_server: LiveServer,
) -> None:
    live_server.script(
        "Let me compute.",
        Call("call_1", "calculator", ('{"expression": ', '"6 * 7"}')),
        Finish("tool_calls"),
    )
    live_server.script("It is 42.")
    client = Client(live_server.url, live_server.token)
    chat_id = agent_chat(client, "always")
    reply_id = client.send(chat_id, "What is 6 times 7?")["assistant_message"]["id"]
    printed: list[tuple[str, str]] = []
    asked: list[dict[str, Any]] = []

    def ask(part: dict[str, Any]) -> bool:
        asked.append(part)
        return True

    final = client.follow(
        chat_id, reply_id, lambda kind, text: printed.append((kind, text)), ask=ask
    )
    assert final == live_server.message(reply_id)
    assert final["status"] == "complete"
    assert [(p["id"], p["name"], p["arguments"]) for p in asked] == [
        ("call_1", "calculator", '{"expression": "6 * 7"}')
    ]
    assert "".join(t for k, t in printed if k == "content") == "Let me compute.It is 42."
    tool_lines = "".join(t for k, t in printed if k == "tool")
    assert '⚙ calculator({"expression": "6 * 7"})' in tool_lines  # arguments as streamed
    assert "↳ calculator: awaiting approval" in tool_lines
    assert "↳ calculator: running" in tool_lines
    (done,) = [line for line in tool_lines.splitlines() if "calculator: complete" in line]
    assert "42" in done  # the output's summary
    assert tool_lines.count("⚙ calculator(") == 1  # each piece once


def test_client_denies_a_call_and_the_tool_never_runs(live_server: LiveServer) -> None:
    live_server.script(Call("call_1", "calculator", ('{"expression": "1 + 1"}',)))
    live_server.script("As you wish.")
    client = Client(live_server.url, live_server.token)
    chat_id = agent_chat(client, "always")
    reply_id = client.send(chat_id, "1 + 1?")["assistant_message"]["id"]
    printed: list[str] = []
    final = client.follow(chat_id, reply_id, lambda kind, text: printed.append(text), ask=no)
    (part,) = [p for p in final["parts"] if p["type"] == "tool"]
    assert part["status"] == "denied" and part["output"] is None
    assert final["content"] == "As you wish."
    assert "↳ calculator: denied" in "".join(printed)


def no(part: dict[str, Any]) -> bool:
    return False


def test_terminal_chat_asks_y_n_for_an_approval_and_runs_the_tool(
    live_server: LiveServer,
) -> None:
    live_server.script(Call("call_1", "calculator", ('{"expression": "6 * 7"}',)))
    live_server.script("It is 42.")
    client = Client(live_server.url, live_server.token)
    agent = client.call(
        "POST",
        "/api/agents",
        json={"name": "Calculator", "model": "scripted:default", "tools": ["calculator"],
              "approval": {"calculator": "always"}},
    )
    gapless = str(Path(sys.executable).parent / "gapless")
    done = subprocess.run(
        [gapless, "chat", "--url", live_server.url, "--token", live_server.token,
         "--agent", agent["id"]],
        input="What is 6 times 7?\ny\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert 'Approve calculator({"expression":"6 * 7"})? [y/n]' in done.stdout
    assert "↳ calculator: complete" in done.stdout
    assert "It is 42." in done.stdout.split("↳ calculator: complete", 1)[1]
