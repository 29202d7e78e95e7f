"""Ended access ends open streams at once (`reset {reason: access}`), over SSE and WebSocket,
in this process and in another API process; per-user caps on streams. The heartbeat is set
to a minute, so nothing here ends by the heartbeat's re-check."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.scale.cluster import Cluster, claimed_redis
from tests.support.server import LiveServer
from tests.test_streaming import start_chat

QUICK = 5.0  # seconds: far under the heartbeat (60)


@pytest.fixture
def server(make_live_server: Callable[..., LiveServer]) -> LiveServer:
    return make_live_server(heartbeat=60.0)


def bearer(url: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"})


async def cookie_session(
    server_url: str, email: str, password: str
) -> tuple[httpx.AsyncClient, str]:
    http = httpx.AsyncClient(base_url=server_url, timeout=30)
    response = await http.post("/api/session", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    csrf = response.json()["csrf_token"]
    http.headers["X-CSRF-Token"] = csrf
    return http, csrf


async def sse_ends_with_access(
    http: httpx.AsyncClient, path: str, act: Callable[[], Awaitable[None]]
) -> None:
    """Open the stream, `act`, and see it end with reset(access) within `QUICK`."""
    async with aconnect_sse(http, "GET", path) as source:
        assert source.response.status_code == 200
        events = source.aiter_sse()
        await act()
        async with asyncio.timeout(QUICK):
            async for sse in events:
                if sse.event == "reset":
                    assert json.loads(sse.data) == {"reason": "access"}
                    break
            else:
                raise AssertionError("the stream ended without reset")


@asynccontextmanager
async def websocket(url: str, **headers: str) -> AsyncIterator[ClientConnection]:
    ws_url = url.replace("http", "ws") + "/api/ws"
    origin = headers.pop("origin", None)
    async with connect(ws_url, additional_headers=headers, origin=origin) as ws:  # type: ignore[arg-type]
        yield ws


async def ws_ends_with_access(
    ws: ClientConnection, chat_id: str, act: Callable[[], Awaitable[None]]
) -> None:
    await ws.send(json.dumps({"op": "subscribe", "chat_id": chat_id}))
    assert json.loads(await ws.recv())["op"] == "subscribed"
    await act()
    async with asyncio.timeout(QUICK):
        frame = json.loads(await ws.recv())
    assert frame["chat_id"] == chat_id and frame["type"] == "reset"
    assert frame["data"] == {"reason": "access"}


async def test_signing_out_ends_that_sessions_sse_and_websocket_at_once(server: LiveServer) -> None:
    async with bearer(server.url, server.token) as admin:
        chat_id = await start_chat(admin)
    http, _ = await cookie_session(server.url, server.email, server.password)
    cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    async with websocket(server.url, Cookie=cookie, origin=server.url) as ws:

        async def sign_out() -> None:
            assert (await http.delete("/api/session")).status_code == 204

        await sse_ends_with_access(
            http, f"/api/chats/{chat_id}/events", lambda: ws_ends_with_access(ws, chat_id, sign_out)
        )
        # The socket stays open, but it no longer subscribes anyone.
        await ws.send(json.dumps({"op": "subscribe", "chat_id": chat_id}))
        frame = json.loads(await ws.recv())
        assert frame["op"] == "error" and frame["error"]["code"] == "unauthorized"
    await http.aclose()


async def test_a_password_change_ends_the_other_sessions_sse_and_websocket(
    server: LiveServer,
) -> None:
    async with bearer(server.url, server.token) as admin:
        chat_id = await start_chat(admin)
    laptop, _ = await cookie_session(server.url, server.email, server.password)
    phone, _ = await cookie_session(server.url, server.email, server.password)

    async def change() -> None:
        response = await laptop.put(
            "/api/me/password",
            json={"current": server.password, "new": "quiet lantern harbour seven"},
        )
        assert response.status_code == 204, response.text

    cookie = "; ".join(f"{k}={v}" for k, v in phone.cookies.items())
    async with websocket(server.url, Cookie=cookie, origin=server.url) as ws:
        await sse_ends_with_access(
            phone, f"/api/chats/{chat_id}/events", lambda: ws_ends_with_access(ws, chat_id, change)
        )
    assert (await phone.get("/api/session")).status_code == 401
    assert (await laptop.get("/api/session")).status_code == 200  # the one that changed it
    await laptop.aclose()
    await phone.aclose()


async def member(server: LiveServer, email: str) -> tuple[str, str]:
    """A new member of the admin's account with an API token: (account id, token)."""
    async with bearer(server.url, server.token) as admin:
        account_id = (await admin.get("/api/accounts")).json()["accounts"][0]["id"]
        added = await admin.post(
            f"/api/accounts/{account_id}/members",
            json={"email": email, "password": "correct pony staple violet"},
        )
        assert added.status_code == 201, added.text
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        await anonymous.post(
            "/api/session", json={"email": email, "password": "correct pony staple violet"}
        )
        signed = await anonymous.post(
            "/api/session", json={"email": email, "password": "correct pony staple violet"}
        )
        csrf = signed.json()["csrf_token"]
        made = await anonymous.post(
            "/api/me/tokens", json={"name": "laptop"}, headers={"X-CSRF-Token": csrf}
        )
        assert made.status_code == 201, made.text
    return account_id, made.json()["token"]


async def test_removing_a_member_ends_their_streams_of_that_account(server: LiveServer) -> None:
    account_id, token = await member(server, "bob@example.com")
    async with bearer(server.url, server.token) as admin:
        chat_id = await start_chat(admin)
        bob_id = next(
            m["id"]
            for m in (await admin.get(f"/api/accounts/{account_id}/members")).json()["members"]
            if m["email"] == "bob@example.com"
        )

        async def remove() -> None:
            done = await admin.delete(f"/api/accounts/{account_id}/members/{bob_id}")
            assert done.status_code == 204

        async with bearer(server.url, token) as bob, websocket(
            server.url, Authorization=f"Bearer {token}"
        ) as ws:
            await sse_ends_with_access(
                bob,
                f"/api/events?account_id={account_id}",
                lambda: ws_ends_with_access(ws, chat_id, remove),
            )
            assert (await bob.get(f"/api/chats/{chat_id}")).status_code == 404


async def test_revoking_a_token_ends_its_streams_and_deleting_a_user_ends_theirs(
    server: LiveServer,
) -> None:
    _, token = await member(server, "carol@example.com")
    async with bearer(server.url, token) as carol:
        chat_id = await start_chat(carol)
        token_id = (await carol.get("/api/me/tokens")).json()["tokens"][0]["id"]

        async def revoke() -> None:
            assert (await carol.delete(f"/api/me/tokens/{token_id}")).status_code == 204

        await sse_ends_with_access(carol, f"/api/chats/{chat_id}/events", revoke)
        assert (await carol.get("/api/chats")).status_code == 401
    _, token = await member(server, "dave@example.com")
    async with bearer(server.url, server.token) as admin, bearer(server.url, token) as dave:
        users = (await admin.get("/api/users")).json()["users"]
        dave_id = next(u["id"] for u in users if u["email"] == "dave@example.com")

        async def delete() -> None:
            assert (await admin.delete(f"/api/users/{dave_id}")).status_code == 204

        await sse_ends_with_access(dave, f"/api/chats/{chat_id}/events", delete)


async def test_streams_and_subscriptions_are_capped_per_user(
    make_live_server: Callable[..., LiveServer],
) -> None:
    server = make_live_server(settings={"max_streams": 3})  # a stream, a socket, a subscription
    async with bearer(server.url, server.token) as http:
        chat_id = await start_chat(http)
        async with aconnect_sse(http, "GET", f"/api/chats/{chat_id}/events") as first:
            assert first.response.status_code == 200
            async with websocket(server.url, Authorization=f"Bearer {server.token}") as ws:
                await ws.send(json.dumps({"op": "subscribe", "chat_id": chat_id}))
                assert json.loads(await ws.recv())["op"] == "subscribed"
                refused = await http.get("/api/events")
                assert refused.status_code == 429
                assert refused.json()["error"]["code"] == "too_many_streams"
                assert int(refused.headers["retry-after"]) >= 1
                other = await start_chat(http)
                await ws.send(json.dumps({"op": "subscribe", "chat_id": other}))
                frame = json.loads(await ws.recv())
                assert frame["op"] == "error" and frame["error"]["code"] == "too_many_streams"
                with pytest.raises(InvalidStatus) as refused_socket:
                    async with websocket(server.url, Authorization=f"Bearer {server.token}"):
                        pass
                assert refused_socket.value.response.status_code == 429
                await ws.send(json.dumps({"op": "unsubscribe", "chat_id": chat_id}))
                await ws.send(json.dumps({"op": "subscribe", "chat_id": other}))  # room again
                assert json.loads(await ws.recv())["op"] == "subscribed"


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    async with claimed_redis() as url:
        yield url


async def test_revocation_and_sign_in_limits_reach_every_api_process(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    cluster = Cluster(
        database_url=pg_url,
        redis_url=redis_url,
        tmp=tmp_path,
        settings={"GAPLESS_HEARTBEAT": "60", "GAPLESS_SIGNIN_ATTEMPTS": "3"},
    )
    try:
        here = await cluster.api()
        there = await cluster.api()
        async with cluster.client(here) as admin:
            chat_id = await start_chat(admin)
            made = await admin.post("/api/me/tokens", json={"name": "two processes"})
            token, token_id = made.json()["token"], made.json()["id"]

        async def revoke_here() -> None:
            async with cluster.client(here) as admin:
                assert (await admin.delete(f"/api/me/tokens/{token_id}")).status_code == 204

        async with bearer(there, token) as far, websocket(
            there, Authorization=f"Bearer {token}"
        ) as ws:
            await sse_ends_with_access(
                far,
                f"/api/chats/{chat_id}/events",
                lambda: ws_ends_with_access(ws, chat_id, revoke_here),
            )
        # Failed sign-ins are counted in Redis: guessing does not scale with the processes.
        guess = {"email": "admin@localhost", "password": "not it at all"}
        async with httpx.AsyncClient(base_url=here) as one, httpx.AsyncClient(
            base_url=there
        ) as two:
            for _ in range(3):
                assert (await one.post("/api/session", json=guess)).status_code == 401
            limited = await two.post("/api/session", json=guess)
            assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    finally:
        await cluster.close()


async def test_sessions_are_listed_and_signed_out_everywhere(server: LiveServer) -> None:
    one, _ = await cookie_session(server.url, server.email, server.password)
    two, _ = await cookie_session(server.url, server.email, server.password)
    sessions = (await one.get("/api/me/sessions")).json()["sessions"]
    assert len(sessions) == 2 and sum(s["current"] for s in sessions) == 1
    assert (await one.delete("/api/me/sessions")).status_code == 204
    assert (await one.get("/api/session")).status_code == 401
    assert (await two.get("/api/session")).status_code == 401
    await one.aclose()
    await two.aclose()


async def test_api_tokens_have_names_expiry_and_last_use(server: LiveServer) -> None:
    async with bearer(server.url, server.token) as admin:
        made = await admin.post("/api/me/tokens", json={"name": "ci", "expires_in_days": 1})
        assert made.status_code == 201
        body: dict[str, Any] = made.json()
        assert body["name"] == "ci" and body["expires_at"] and body["token"].startswith("gl_")
    async with bearer(server.url, body["token"]) as ci:
        assert (await ci.get("/api/chats")).status_code == 200
        listed = {t["id"]: t for t in (await ci.get("/api/me/tokens")).json()["tokens"]}
        assert listed[body["id"]]["last_used_at"] is not None
        assert "token" not in listed[body["id"]]  # the secret is shown once
