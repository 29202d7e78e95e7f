"""The `fetch` tool against a real HTTP server on 127.0.0.1: the allowlist, the resolved
address check (loopback is private), redirects re-checked hop by hop, size and time limits."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gapless.agents.fetch import address_allowed, fetch_tool, get, host_allowed
from gapless.agents.functions import FunctionTool
from gapless.agents.toolbox import build_toolbox
from gapless.agents.tools import ToolContext, ToolError
from gapless.config import Settings

CONTEXT = ToolContext(user_id="u", account_ids=None, chat_id="c", message_id="m")


@dataclass
class Site:
    """A raw HTTP/1.1 server; it records each request's path and Host header."""

    port: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        path = head[0].split()[1]
        host = next(h.split(":", 1)[1].strip() for h in head if h.lower().startswith("host:"))
        self.requests.append((path, host))
        status, headers, body = "200 OK", {"Content-Type": "text/plain"}, b""
        if path == "/page":
            headers["Content-Type"] = "text/html; charset=iso-8859-1"
            body = "<p>café</p>".encode("latin-1")
        elif path.startswith("/to/"):  # /to/<url>: a redirect there
            status, headers["Location"] = "302 Found", path.removeprefix("/to/")
        elif path.startswith("/loop/"):
            n = int(path.removeprefix("/loop/"))
            status, headers["Location"] = "307 Temporary Redirect", f"/loop/{n + 1}"
        elif path == "/declared-big":
            headers["Content-Length"] = "5000"
            body = b"x" * 5000
        elif path == "/streamed-big":  # no length: the reader must count
            body = b"y" * 5000
        elif path == "/hang":
            await self.release.wait()
        elif path == "/image":
            headers["Content-Type"] = "image/png"
            body = b"\x89PNG\r\n"
        lines = [f"HTTP/1.1 {status}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if "Content-Length" not in headers and path != "/streamed-big":
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
        writer.close()


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    site = Site()
    server = await asyncio.start_server(site.handle, "127.0.0.1", 0)
    site.port = server.sockets[0].getsockname()[1]
    try:
        yield site
    finally:
        site.release.set()
        server.close()
        await server.wait_closed()


def fetch(hosts: tuple[str, ...], private: bool = False, **limits: float) -> FunctionTool:
    return fetch_tool(hosts, private, int(limits.get("max_bytes", 1000)),
                      limits.get("timeout", 10.0))


async def refused(tool: FunctionTool, url: str) -> ToolError:
    with pytest.raises(ToolError) as raised:
        await tool.call({"url": url}, CONTEXT)
    return raised.value


async def test_a_host_not_on_the_allowlist_is_refused_before_any_request(site: Site) -> None:
    error = await refused(fetch(("example.org",), private=True), site.url("/page"))
    assert error.code == "refused" and "127.0.0.1" in error.message
    assert site.requests == []


async def test_a_loopback_address_is_refused_unless_private_addresses_are_allowed(
    site: Site,
) -> None:
    for host in ("127.0.0.1", "localhost"):
        error = await refused(fetch((host,)), site.url("/page", host))
        assert error.code == "refused" and "private" in error.message
    assert site.requests == []


async def test_an_allowed_fetch_answers_status_type_and_text_decoded_by_its_charset(
    site: Site,
) -> None:
    answer = await fetch(("localhost",), private=True).call(
        {"url": site.url("/page", "localhost")}, CONTEXT
    )
    assert answer == {
        "url": site.url("/page", "localhost"),
        "status": 200,
        "content_type": "text/html; charset=iso-8859-1",
        "text": "<p>café</p>",
    }
    # The request went to the checked address, named as the URL names it.
    assert site.requests == [("/page", f"localhost:{site.port}")]


async def test_binary_content_is_described_not_decoded(site: Site) -> None:
    answer = await fetch(("127.0.0.1",), private=True).call({"url": site.url("/image")}, CONTEXT)
    assert isinstance(answer, dict)
    assert answer["text"] == "(6 bytes of image/png, not text)"


async def test_redirects_are_followed_and_every_hop_is_checked_again(site: Site) -> None:
    tool = fetch(("localhost",), private=True)
    answer = await tool.call({"url": site.url("/to//page", "localhost")}, CONTEXT)
    assert isinstance(answer, dict) and answer["text"] == "<p>café</p>"

    # A hop to a host not on the allowlist: refused, never requested.
    site.requests.clear()
    error = await refused(tool, site.url(f"/to/{site.url('/page')}", "localhost"))
    assert error.code == "refused"
    assert [path for path, _host in site.requests] == [f"/to/{site.url('/page')}"]


async def test_a_redirect_to_a_forbidden_address_is_refused(site: Site) -> None:
    # 0.0.0.0 reaches this machine; it is refused even where private addresses are allowed
    # (a public first hop cannot be built on a test machine without changing its network).
    site.requests.clear()
    tool = fetch(("localhost", "0.0.0.0"), private=True)
    error = await refused(tool, site.url(f"/to/{site.url('/page', '0.0.0.0')}", "localhost"))
    assert error.code == "refused" and "0.0.0.0" in error.message
    assert len(site.requests) == 1


async def test_more_than_five_redirects_are_refused(site: Site) -> None:
    error = await refused(fetch(("127.0.0.1",), private=True), site.url("/loop/0"))
    assert error.code == "too_many_redirects"
    assert len(site.requests) == 6


async def test_an_oversized_body_is_refused_declared_or_streamed(site: Site) -> None:
    tool = fetch(("127.0.0.1",), private=True, max_bytes=1000)
    for path in ("/declared-big", "/streamed-big"):
        error = await refused(tool, site.url(path))
        assert error.code == "too_large" and "too large" in error.message


async def test_a_server_that_does_not_answer_in_time_is_a_timeout(site: Site) -> None:
    error = await refused(fetch(("127.0.0.1",), private=True, timeout=0.3), site.url("/hang"))
    assert error.code == "timeout"


async def test_only_http_urls_are_fetched(site: Site) -> None:
    tool = fetch(("*",), private=True)
    for url in ("file:///etc/passwd", "ftp://127.0.0.1/", "not a url"):
        assert (await refused(tool, url)).code in ("refused", "invalid_arguments")


def test_the_allowlist_admits_a_host_and_its_subdomains_only() -> None:
    hosts = ("example.com", "API.Other.org.")
    assert host_allowed("example.com", hosts)
    assert host_allowed("docs.example.com", hosts)
    assert host_allowed("api.other.org", hosts)
    assert not host_allowed("badexample.com", hosts)
    assert not host_allowed("example.com.evil.net", hosts)
    assert not host_allowed("other.org", hosts)
    assert host_allowed("anything.net", ("*",))


@pytest.mark.parametrize(
    ("address", "public_only", "private_too"),
    [
        ("93.184.216.34", True, True),
        ("2606:2800:220:1:248:1893:25c8:1946", True, True),
        ("10.1.2.3", False, True),
        ("172.16.0.1", False, True),
        ("192.168.1.1", False, True),
        ("127.0.0.1", False, True),
        ("169.254.169.254", False, True),  # link-local: cloud metadata
        ("100.64.0.1", False, True),  # shared address space
        ("240.0.0.1", False, True),  # reserved
        ("::1", False, True),
        ("fe80::1", False, True),
        ("fc00::1", False, True),
        ("::ffff:127.0.0.1", False, True),  # IPv4-mapped loopback
        ("0.0.0.0", False, False),
        ("::", False, False),
        ("224.0.0.1", False, False),
        ("ff02::1", False, False),
    ],
)
def test_addresses_are_judged_after_resolution(
    address: str, public_only: bool, private_too: bool
) -> None:
    ip = ipaddress.ip_address(address)
    assert address_allowed(ip, private=False) is public_only
    assert address_allowed(ip, private=True) is private_too


def test_fetch_is_offered_only_when_the_settings_list_it() -> None:
    assert "fetch" not in build_toolbox(Settings(), plugins=False)._local
    enabled = build_toolbox(
        Settings(tools=("calculator", "fetch"), fetch_hosts=("example.com",)), plugins=False
    )
    assert set(enabled._local) == {"calculator", "fetch"}
    assert "example.com" in enabled._local["fetch"][0].description


def certificate(name: str, folder: Path) -> tuple[Path, Path, str]:
    """A self-signed certificate for `name`: its file, its key's file, and its PEM text."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    cert_file.write_text(pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, pem


@pytest.mark.parametrize("certified", ["localhost", "elsewhere.test"])
async def test_https_to_the_checked_address_keeps_the_name_for_sni_and_the_certificate(
    site: Site, tmp_path: Path, certified: str
) -> None:
    cert_file, key_file, pem = certificate(certified, tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    names: list[str | None] = []

    def heard(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        names.append(name)

    context.sni_callback = heard
    server = await asyncio.start_server(site.handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    trusted = ssl.create_default_context(cadata=pem)
    url = f"https://localhost:{port}/page"
    try:
        if certified == "localhost":
            answer = await get(url, ("localhost",), private=True, max_bytes=1000,
                               time_limit=10, verify=trusted)
            assert answer["text"] == "<p>café</p>"
        else:  # the certificate is checked against the URL's name, not the address used
            with pytest.raises(ToolError) as raised:
                await get(url, ("localhost",), private=True, max_bytes=1000, time_limit=10,
                          verify=trusted)
            assert raised.value.code == "fetch_failed"
            assert "certificate" in raised.value.message.lower()
        assert names and set(names) == {"localhost"}
    finally:
        server.close()
        await server.wait_closed()
