"""What a request meets before any route: sizes, times, authentication before the body,
text no handler should see, and the headers every answer carries. Against a real server,
over raw sockets where a client library would not misbehave on purpose."""

from __future__ import annotations

import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.conftest import client_for
from tests.support.server import LiveServer

CHUNK = b"x" * 65536


def address(server: LiveServer) -> tuple[str, int]:
    parts = urlsplit(server.url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


# What a sender gets into the kernel before the server's answer reaches it: its own send
# buffer and the server's receive window, which grow (to 4 + 32 MiB here) while the server
# reads up to the limit; on a loaded machine ~10 MiB were seen. The server's memory is the
# proof that it did not read the body (`rss`); this only shows the sending was cut short.
KERNEL_HELD = 20 * 1024 * 1024


def rss() -> int:
    """This process's resident memory in bytes (the server runs in a thread of it)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def chunked_post(server: LiveServer, path: str, total: int, token: str | None) -> tuple[int, int]:
    """POST `total` bytes chunked, stopping when the server answers or closes: the status
    and how many body bytes went out."""
    sock = socket.create_connection(address(server), timeout=30)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
    )
    sent = 0
    sock.setblocking(False)
    answer = b""
    try:
        while sent < total:
            try:
                answer += sock.recv(65536)
                if answer:
                    break
            except BlockingIOError:
                pass
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
            except BlockingIOError:
                time.sleep(0.001)  # the server stopped reading: its answer is on the way
                continue
            sent += len(CHUNK)
        sock.setblocking(True)
        if not answer:
            answer = sock.recv(65536)
    except (BrokenPipeError, ConnectionResetError):
        sock.setblocking(True)
        answer = answer or sock.recv(65536)
    finally:
        sock.close()
    return int(answer.split(b" ", 2)[1]), sent


def test_an_unauthenticated_chunked_body_is_refused_before_it_is_read(
    live_server: LiveServer,
) -> None:
    before = rss()
    for _ in range(4):
        status, sent = chunked_post(live_server, "/api/chats", 40 * 1024 * 1024, None)
        assert status == 401
        assert sent < KERNEL_HELD  # what the kernel's buffers took, not 40 MB
    assert rss() - before < 30 * 1024 * 1024


def test_an_authenticated_chunked_body_over_the_limit_is_cut_at_the_limit(
    live_server: LiveServer,
) -> None:
    before = rss()
    for _ in range(4):
        status, sent = chunked_post(live_server, "/api/chats", 40 * 1024 * 1024, live_server.token)
        assert status == 413
        assert sent < KERNEL_HELD
    assert rss() - before < 30 * 1024 * 1024


def raw_request(server: LiveServer, data: bytes) -> bytes:
    with socket.create_connection(address(server), timeout=30) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_headers_over_32_kib_are_refused(live_server: LiveServer) -> None:
    big = b"GET /api/chats HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n"
    try:
        answer = raw_request(live_server, big)
    except ConnectionResetError:
        return  # closed while we were still sending: refused too
    assert answer.startswith(b"HTTP/1.1 400")


def test_slow_headers_are_cut(make_live_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from gapless.web import h1

    monkeypatch.setattr(h1, "HEADER_SECONDS", 0.5)
    server = make_live_server()
    with socket.create_connection(address(server), timeout=30) as sock:
        sock.sendall(b"GET /api/chats HTTP/1.1\r\nHost: x\r\n")  # and never the end
        started = time.monotonic()
        assert sock.recv(100) == b""  # the server closed the connection
        assert time.monotonic() - started < 10


def test_a_connection_that_sends_nothing_is_cut(
    make_live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gapless.web import h1

    monkeypatch.setattr(h1, "HEADER_SECONDS", 0.5)
    server = make_live_server()
    with socket.create_connection(address(server), timeout=30) as sock:
        assert sock.recv(100) == b""


def test_a_half_sent_body_is_answered_408(make_live_server: Any) -> None:
    server = make_live_server(settings={"body_timeout": 0.5})
    with socket.create_connection(address(server), timeout=30) as sock:
        sock.sendall(
            f"POST /api/chats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode()
        )
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408")


BAD_TEXT = ["a\u0000b", "\ud800", "x\udfffy"]


@pytest.mark.parametrize("text", BAD_TEXT)
async def test_nul_and_lone_surrogates_in_bodies_are_400_on_both_databases(
    any_db_server: LiveServer, text: str
) -> None:
    async with client_for(any_db_server) as http:
        chat = (await http.post("/api/chats", json={"title": "t"})).json()
        bodies = [
            ("POST", "/api/chats", {"title": text}),
            ("PATCH", f"/api/chats/{chat['id']}", {"system_prompt": text}),
            ("POST", f"/api/chats/{chat['id']}/messages", {"content": text}),
            ("POST", "/api/session", {"email": text, "password": "x"}),
        ]
        for method, url, body in bodies:
            data = json.dumps(body).encode()  # ensure_ascii: the escapes, as JSON allows
            response = await http.request(
                method, url, content=data, headers={"content-type": "application/json"}
            )
            assert response.status_code == 400, (method, url, response.text)
            assert response.json()["error"]["code"] == "bad_request"
        assert (await http.get(f"/api/chats/{chat['id']}")).json()["messages"] == []


@pytest.mark.parametrize(
    "target", ["/api/chats/a%00b", "/api/chats?x=%00", "/api/generations?chat_id=a%00"]
)
async def test_nul_in_paths_and_queries_is_400_on_both_databases(
    any_db_server: LiveServer, target: str
) -> None:
    async with client_for(any_db_server) as http:
        response = await http.get(target)
        assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"
        events = await http.get("/api/chats/x%00/events")
        assert events.status_code == 400


@pytest.mark.parametrize("chat_id", ["\ud800", "a\u0000"])
async def test_a_bad_websocket_frame_gets_an_error_frame_and_the_socket_lives(
    any_db_server: LiveServer, chat_id: str
) -> None:
    url = any_db_server.url.replace("http", "ws") + "/api/ws"
    headers = {"Authorization": f"Bearer {any_db_server.token}"}
    async with connect(url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"op": "subscribe", "chat_id": chat_id}))
        frame = json.loads(await ws.recv())
        assert frame["op"] == "error" and frame["error"]["code"] == "bad_request"
        await ws.send(json.dumps({"op": "subscribe", "chat_id": "chat_nope"}))
        assert json.loads(await ws.recv())["error"]["code"] == "not_found"


async def test_a_server_error_logs_one_line_with_a_request_id_and_no_user_text(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret_text = "my-very-private-words"

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"boom with {secret_text}")

    object.__setattr__(live_server.runtime.chats, "update", broken)
    async with client_for(live_server) as http:
        chat = (await http.post("/api/chats", json={"title": "t"})).json()
        response = await http.patch(f"/api/chats/{chat['id']}", json={"title": secret_text})
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert response.json()["error"] == {
        "code": "internal",
        "message": f"internal error (request {request_id})",
    }
    lines = [r for r in caplog.records if request_id in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert secret_text not in caplog.text and chat["id"] not in caplog.text


async def test_every_answer_carries_the_security_headers(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        page = await http.get("/")
        api = await http.get("/api/chats", headers={"Authorization": f"Bearer {live_server.token}"})
        refused = await http.get("/api/chats")
        for response in (page, api, refused):
            csp = response.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "same-origin"
            assert "strict-transport-security" not in response.headers  # plain http
        assert api.headers["cache-control"] == "no-store"
        assert refused.headers["cache-control"] == "no-store"
        https = await http.get("/", headers={"X-Forwarded-Proto": "https"})  # a trusted proxy
        assert https.headers["strict-transport-security"].startswith("max-age=")


async def test_405_says_which_methods_are_allowed(live_server: LiveServer) -> None:
    async with client_for(live_server) as http:
        response = await http.put("/api/chats")
        assert response.status_code == 405
        assert set(response.headers["allow"].split(", ")) == {"GET", "POST"}


async def test_the_host_header_is_never_reflected_in_a_redirect(live_server: LiveServer) -> None:
    async with client_for(live_server) as http:
        response = await http.get("/api/chats/", headers={"Host": "evil.example"})
        assert response.status_code in (401, 404)
        assert "evil.example" not in response.headers.get("location", "")


async def test_a_site_admin_naming_an_account_that_does_not_exist_gets_422(
    live_server: LiveServer,
) -> None:
    async with client_for(live_server) as admin:
        response = await admin.post("/api/chats", json={"account_id": "acc_nope"})
        assert response.status_code == 422  # was a 500 (a foreign key refused in the database)
        assert response.json()["error"]["code"] == "no_account"


async def test_the_database_files_are_readable_by_their_owner_only(
    live_server: LiveServer,
) -> None:
    async with client_for(live_server) as http:
        await http.post("/api/chats", json={"title": "t"})  # the WAL is written
    folder = live_server.runtime.settings.data_dir
    files = list(folder.glob("gapless.db*"))
    assert {f.name for f in files} >= {"gapless.db", "gapless.db-wal", "gapless.db-shm"}
    for found in files:
        assert found.stat().st_mode & 0o777 == 0o600, (found, oct(found.stat().st_mode))
    assert folder.stat().st_mode & 0o077 == 0
