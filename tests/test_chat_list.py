"""The chat list comes in pages (a cursor, newest first), without system prompts."""

from __future__ import annotations

import httpx

from tests.support.server import LiveServer


async def test_the_chat_list_pages_newest_first_with_no_chat_twice_and_no_prompts(
    api: httpx.AsyncClient, live_server: LiveServer
) -> None:
    made = []
    for n in range(5):
        response = await api.post("/api/chats", json={"title": f"c{n}", "system_prompt": "secret"})
        made.append(response.json()["id"])
    seen: list[dict[str, object]] = []
    cursor = None
    for _ in range(5):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/api/chats", params=params)).json()
        assert len(page["chats"]) <= 2
        seen += page["chats"]
        cursor = page["next"]
        if cursor is None:
            break
    assert [c["id"] for c in seen] == made[::-1]
    assert all("system_prompt" not in c for c in seen)
    full = (await api.get(f"/api/chats/{made[0]}")).json()["chat"]
    assert full["system_prompt"] == "secret"  # the chat's own page has it


async def test_a_chat_changed_while_paging_moves_to_the_front_and_is_not_listed_twice(
    api: httpx.AsyncClient,
) -> None:
    made = [(await api.post("/api/chats", json={"title": f"c{n}"})).json()["id"] for n in range(4)]
    first = (await api.get("/api/chats", params={"limit": 2})).json()
    await api.patch(f"/api/chats/{made[0]}", json={"title": "touched"})  # the oldest, now newest
    rest = (await api.get("/api/chats", params={"limit": 2, "cursor": first["next"]})).json()
    ids = [c["id"] for c in first["chats"] + rest["chats"]]
    assert len(ids) == len(set(ids))
    assert ids == [made[3], made[2], made[1]]  # made[0] moved ahead of the cursor


async def test_a_foreign_or_broken_list_cursor_is_a_clear_error(api: httpx.AsyncClient) -> None:
    for bad in ("nonsense", "bm90IGEgY3Vyc29y", "MjAyNi0xMi0wN3w="):
        response = await api.get("/api/chats", params={"cursor": bad})
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["error"]["code"] == "bad_cursor"
