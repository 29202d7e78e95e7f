"""Authorisation on every route and subscription: what one may not see is 404, never 403."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gapless.accounts import Accounts
from tests.conftest import client_for
from tests.support.server import LiveServer
from tests.test_streaming import send, start_chat


async def outsider(server: LiveServer, email: str = "eve@example.com") -> str:
    """A user of another account, with an API token."""

    async def make() -> str:
        accounts = Accounts(server.runtime.engine)
        await accounts.add_account("other")
        await accounts.add_user(email, "Eve", "secret-password")
        await accounts.add_member("other", email)
        return await accounts.new_token(email)

    return await server.arun(make())


async def test_another_accounts_caller_gets_404_on_every_route(live_server: LiveServer) -> None:
    async with client_for(live_server) as owner:
        chat_id = await start_chat(owner)
        reply_id = await send(owner, chat_id)
        await live_server.adrain()
        token = await outsider(live_server)
    async with client_for(live_server, token) as eve:
        assert (await eve.get("/api/chats")).json()["chats"] == []
        attempts = [
            ("GET", f"/api/chats/{chat_id}", None),
            ("PATCH", f"/api/chats/{chat_id}", {"title": "mine"}),
            ("DELETE", f"/api/chats/{chat_id}", None),
            ("POST", f"/api/chats/{chat_id}/messages", {"content": "hi"}),
            ("GET", f"/api/messages/{reply_id}", None),
            ("POST", f"/api/messages/{reply_id}/stop", None),
            ("POST", f"/api/messages/{reply_id}/retry", None),
            ("DELETE", f"/api/messages/{reply_id}", None),
            ("GET", f"/api/chats/{chat_id}/events", None),
            ("GET", f"/api/generations?chat_id={chat_id}", None),
        ]
        for method, url, body in attempts:
            response = await eve.request(method, url, json=body)
            assert response.status_code == 404, (method, url, response.text)
            assert response.json()["error"]["code"] == "not_found"
        assert (await eve.get("/api/generations")).json()["generations"] == []
    async with client_for(live_server) as owner:  # nothing changed
        state = (await owner.get(f"/api/chats/{chat_id}")).json()
        assert state["chat"]["title"] == "t" and len(state["messages"]) == 2


async def test_websocket_subscribe_to_a_foreign_chat_is_not_found(live_server: LiveServer) -> None:
    async with client_for(live_server) as owner:
        chat_id = await start_chat(owner)
    token = await outsider(live_server)
    url = live_server.url.replace("http", "ws") + "/api/ws"
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        await ws.send(json.dumps({"op": "subscribe", "chat_id": chat_id}))
        frame = json.loads(await ws.recv())
        assert frame["op"] == "error" and frame["error"]["code"] == "not_found"
        assert frame["chat_id"] == chat_id


async def signed_in(server: LiveServer) -> tuple[httpx.AsyncClient, str]:
    http = httpx.AsyncClient(base_url=server.url)
    response = await http.post(
        "/api/session", json={"email": server.email, "password": server.password}
    )
    assert response.status_code == 200, response.text
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    return http, response.json()["csrf_token"]


async def test_cookie_requests_that_change_state_need_the_csrf_token(
    live_server: LiveServer,
) -> None:
    http, csrf = await signed_in(live_server)
    try:
        assert (await http.get("/api/chats")).status_code == 200
        refused = await http.post("/api/chats", json={"title": "x"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf"
        wrong = await http.post("/api/chats", json={"title": "x"}, headers={"X-CSRF-Token": "no"})
        assert wrong.status_code == 403
        assert (await http.get("/api/chats")).json()["chats"] == []
        made = await http.post("/api/chats", json={"title": "x"}, headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201
        # the message POST, served in front of FastAPI (`web.post`), asks the same
        url = f"/api/chats/{made.json()['id']}/messages"
        refused = await http.post(url, json={"content": "hi"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf"
        wrong = await http.post(url, json={"content": "hi"}, headers={"X-CSRF-Token": "no"})
        assert wrong.status_code == 403
        assert (await http.get(f"/api/chats/{made.json()['id']}")).json()["messages"] == []
        posted = await http.post(url, json={"content": "hi"}, headers={"X-CSRF-Token": csrf})
        assert posted.status_code == 201
        assert (
            await http.delete("/api/session", headers={"X-CSRF-Token": csrf})
        ).status_code == 204
        assert (await http.get("/api/chats")).status_code == 401
    finally:
        await http.aclose()


async def test_wrong_password_is_refused(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        response = await http.post(
            "/api/session", json={"email": live_server.email, "password": "wrong"}
        )
        assert response.status_code == 401


@pytest.mark.parametrize("origin", ["http://evil.example", None])
async def test_websocket_with_a_cookie_from_a_foreign_origin_is_refused(
    live_server: LiveServer, origin: str | None
) -> None:
    http, _ = await signed_in(live_server)
    cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    await http.aclose()
    url = live_server.url.replace("http", "ws") + "/api/ws"
    headers: dict[str, Any] = {"Cookie": cookie}
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers=headers, origin=origin):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403


async def test_websocket_with_a_cookie_from_its_own_origin_is_accepted(
    live_server: LiveServer,
) -> None:
    http, _ = await signed_in(live_server)
    cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    await http.aclose()
    url = live_server.url.replace("http", "ws") + "/api/ws"
    async with connect(url, additional_headers={"Cookie": cookie}, origin=live_server.url) as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps({"op": "subscribe", "chat_id": "chat_nope"}))
        assert json.loads(await ws.recv())["error"]["code"] == "not_found"


async def test_websocket_rejects_bad_frames_without_closing(live_server: LiveServer) -> None:
    url = live_server.url.replace("http", "ws") + "/api/ws"
    headers = {"Authorization": f"Bearer {live_server.token}"}
    async with connect(url, additional_headers=headers) as ws:
        for frame in ["not json", "[1]", json.dumps({"op": "dance", "chat_id": "x"})]:
            await ws.send(frame)
            assert json.loads(await ws.recv())["op"] == "error"
        await ws.send("x" * 70_000)  # over the frame limit: the server closes
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_deleting_a_chat_ends_its_subscriptions(live_server: LiveServer) -> None:
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        cursor = (await http.get(f"/api/chats/{chat_id}")).json()["cursor"]
        assert (await http.delete(f"/api/chats/{chat_id}")).status_code == 204
        seen = []
        async with aconnect_sse(
            http, "GET", f"/api/chats/{chat_id}/events", headers={"Last-Event-ID": cursor}
        ) as source:
            assert source.response.status_code == 404  # gone now: not even subscribable
        assert seen == []


async def test_a_live_subscription_ends_when_the_chat_is_deleted(live_server: LiveServer) -> None:
    async with client_for(live_server) as http:
        chat_id = await start_chat(http)
        seen: list[str] = []
        async with aconnect_sse(http, "GET", f"/api/chats/{chat_id}/events") as source:
            async with client_for(live_server) as other:
                assert (await other.delete(f"/api/chats/{chat_id}")).status_code == 204
            async for sse in source.aiter_sse():
                if sse.event and sse.event != "message":
                    seen.append(sse.event)
        assert seen == ["chat.deleted"]  # and the server closed the response


async def test_a_subscription_ends_when_membership_ends(make_live_server: Any) -> None:
    server = make_live_server(heartbeat=0.2)
    token = await outsider(server, "mallory@example.com")
    async with client_for(server, token) as mallory:
        chat_id = await start_chat(mallory)
        seen: list[str] = []
        async with aconnect_sse(mallory, "GET", f"/api/chats/{chat_id}/events") as source:
            await server.arun(
                Accounts(server.runtime.engine).remove_member("other", "mallory@example.com")
            )
            async for sse in source.aiter_sse():
                if sse.event and sse.event != "message":
                    seen.append(sse.event)
        assert seen == ["reset"]
        assert (await mallory.get(f"/api/chats/{chat_id}")).status_code == 404
