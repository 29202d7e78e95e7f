"""The account stream (`/api/events`) keeps chat lists live; generations are observable."""

from __future__ import annotations

import json

from httpx_sse import aconnect_sse

from gapless.providers.base import Usage
from tests.conftest import client_for
from tests.support.server import LiveServer
from tests.test_streaming import send, start_chat


async def test_chat_created_updated_and_deleted_reach_the_account_stream(
    live_server: LiveServer,
) -> None:
    async with client_for(live_server) as http:
        seen: list[tuple[str, str]] = []
        async with aconnect_sse(http, "GET", "/api/events") as source:
            chat_id = await start_chat(http)
            await http.patch(f"/api/chats/{chat_id}", json={"title": "renamed"})
            await http.delete(f"/api/chats/{chat_id}")
            later = await start_chat(http)  # the account's stream outlives a deleted chat
            async for sse in source.aiter_sse():
                if sse.event and sse.event != "message":
                    data = json.loads(sse.data)
                    seen.append((sse.event, data.get("title", data["id"])))
                    assert sse.id  # resumable
                    if sse.event == "chat.created" and data["id"] == later:
                        break
        assert seen == [
            ("chat.created", "t"),
            ("chat.updated", "renamed"),
            ("chat.deleted", chat_id),
            ("chat.created", "t"),
        ]


async def test_generations_record_model_tokens_timing_and_outcome(
    live_server: LiveServer,
) -> None:
    live_server.script("a ", "b", Usage(input_tokens=7, output_tokens=2))
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        reply_id = await send(http, chat_id)
        await live_server.adrain()
        listed = (await http.get("/api/generations", params={"chat_id": chat_id})).json()
        (item,) = listed["generations"]
        assert item["message_id"] == reply_id and item["status"] == "complete"
        assert item["model"] == "scripted:default" and item["provider"] == "scripted"
        assert (item["input_tokens"], item["output_tokens"]) == (7, 2)
        assert item["ttft_ms"] is not None and item["duration_ms"] >= item["ttft_ms"]
        assert item["deltas"] == 2 and item["error"] is None
        reply = await live_server.amessage(reply_id)
        assert reply["usage"] == {"input_tokens": 7, "output_tokens": 2, "reasoning_tokens": 0}
        assert (await http.get("/api/generations", params={"model": "nope:x"})).json()[
            "generations"
        ] == []
