"""The embedded model through the whole service: a real reply, streamed, stoppable, recorded."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.conftest import client_for
from tests.support.clients import Tab, converge_sse, fetch_state
from tests.test_streaming import send, start_chat, wait_until

LOCAL = {"providers": ("local",), "default_model": "local:smollm2", "local_max_tokens": 24}


async def test_the_embedded_model_streams_a_real_reply_to_a_subscriber(
    make_live_server: Any,
) -> None:
    server = make_live_server(settings=LOCAL)
    async with client_for(server) as http:
        chat_id = await start_chat(http)
        tab = Tab(chat_id)
        tab.load(await fetch_state(http, chat_id))
        reply_id = await send(http, chat_id, "Say hello in one short sentence.")
        await converge_sse(http, tab, [reply_id])
        stored = await server.amessage(reply_id)
        assert stored["status"] == "complete" and stored["model"] == "local:smollm2"
        assert stored["content"].strip()
        assert tab.replica.messages[reply_id] == stored
        tab.assert_prefixes(reply_id, stored)
        deltas = [d for t, d, _ in tab.events if t == "message.delta"]
        assert len(deltas) >= 3  # token by token, not one block
        (generation,) = (await http.get("/api/generations")).json()["generations"]
        assert generation["model"] == "local:smollm2" and generation["cost"] == 0
        assert generation["input_tokens"] > 5 and generation["output_tokens"] > 0
        assert generation["ttft_ms"] is not None


async def test_stop_interrupts_the_embedded_model(make_live_server: Any) -> None:
    server = make_live_server(settings={**LOCAL, "local_max_tokens": 400})
    async with client_for(server) as http:
        chat_id = await start_chat(http)
        reply_id = await send(http, chat_id, "Write a long story about a lighthouse keeper.")
        await wait_until(
            lambda: server.amessage(reply_id), lambda m: m["status"] != "pending", attempts=6000
        )
        started = time.monotonic()
        stopped = (await http.post(f"/api/messages/{reply_id}/stop")).json()
        elapsed = time.monotonic() - started
        assert stopped["status"] == "cancelled"
        run = server.runtime.context.providers["local"].current
        assert run is not None and run.stop.is_set()
        # The computing thread sees the flag at its next token and ends.
        assert await asyncio.to_thread(run.ended.wait, 30)
        computed = time.monotonic() - started
        assert run.stopped  # it broke off mid-reply, not at max_tokens
        print(
            f"stop answered in {elapsed * 1000:.0f} ms, computation ended in "
            f"{computed * 1000:.0f} ms, after {stopped['seq']} deltas"
        )
