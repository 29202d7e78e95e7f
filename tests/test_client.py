"""The terminal client's engine against a live server: follows, survives resets, stops."""

from __future__ import annotations

import asyncio

from gapless.client import Client
from tests.support.scripted import Gate, Think
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
