"""The `fetch` built-in: an HTTP GET a model may ask for, off unless the operator enables it.

A model's URL is untrusted input aimed at the server's network (SSRF), so:
- only hosts on the allowlist (`fetch_hosts`: a host and its subdomains; `*`
  for any host) and only http(s);
- the host is resolved here and every address it resolves to is checked:
  private, loopback, link-local, reserved and shared addresses are refused
  unless `fetch_private`; multicast and unspecified (`0.0.0.0` reaches
  localhost) always are;
- the request then goes to the checked address itself (the URL carries the IP;
  the Host header and TLS's SNI and certificate check keep the name), so a
  second DNS answer cannot swap in another address (DNS rebinding);
- redirects are followed here, at most 5, each hop checked like the first;
- proxies from the environment are ignored (they would connect elsewhere);
- one time limit covers the whole fetch, and reading stops past `max_bytes`.
Imports `agents.tools`, `agents.functions`.
"""

from __future__ import annotations

import asyncio
import codecs
import ipaddress
import socket
import ssl
from typing import Annotated, Any

import httpx
from pydantic import Field

from gapless.agents.functions import FunctionTool, tool
from gapless.agents.tools import ToolError

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
TEXTUAL = ("text/", "application/json", "application/xml", "application/javascript", "+json",
           "+xml")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def fetch_tool(
    hosts: tuple[str, ...], private: bool = False, max_bytes: int = 1_000_000,
    timeout: float = 10.0,
) -> FunctionTool:
    """The `fetch` tool with these limits (the toolbox passes the settings' values)."""

    async def fetch(
        url: Annotated[str, Field(min_length=1, max_length=2000, description="An http(s) URL")],
    ) -> dict[str, Any]:
        return await get(url, hosts, private=private, max_bytes=max_bytes, time_limit=timeout)

    allowed = "any host" if "*" in hosts else ", ".join(hosts) or "no host (none is allowed)"
    return tool(
        fetch,
        description="Fetch a URL with HTTP GET and answer its status, content type and text. "
        f"Reachable: {allowed}.",
    )


async def get(
    url: str,
    hosts: tuple[str, ...],
    *,
    private: bool,
    max_bytes: int,
    time_limit: float,
    verify: ssl.SSLContext | bool = True,
) -> dict[str, Any]:
    """GET `url` under the rules above: `{url, status, content_type, text}` or ToolError.
    `verify`: the certificates trusted (the system's; a test passes its own)."""
    try:
        async with (
            asyncio.timeout(time_limit),  # one limit for every hop together
            httpx.AsyncClient(trust_env=False, timeout=time_limit, verify=verify) as client,
        ):
            for _hop in range(MAX_REDIRECTS + 1):
                target = _parse(url)
                host = target.raw_host.decode("ascii").lower().rstrip(".")
                if not host_allowed(host, hosts):
                    raise ToolError(f"fetching from {host} is not allowed", code="refused")
                addresses = await resolve(host, target.port or _port(target), private)
                response = await _send(client, target, host, addresses)
                try:
                    location = response.headers.get("location")
                    if response.status_code in REDIRECTS and location:
                        url = str(target.join(location))
                        continue
                    return await _answer(url, response, max_bytes)
                finally:
                    await response.aclose()
            raise ToolError(f"more than {MAX_REDIRECTS} redirects", code="too_many_redirects")
    except TimeoutError:
        raise ToolError(f"no complete answer within {time_limit:g} s", code="timeout") from None
    except httpx.HTTPError as error:
        raise ToolError(f"fetch failed: {type(error).__name__}: {error}", code="fetch_failed"
                        ) from None


def host_allowed(host: str, hosts: tuple[str, ...]) -> bool:
    """`host` is on the allowlist: listed itself, a subdomain of a listed host, or `*` listed."""
    for allowed in hosts:
        allowed = allowed.lower().rstrip(".")
        if allowed == "*" or host == allowed or host.endswith("." + allowed):
            return True
    return False


def address_allowed(address: Address, private: bool) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if address.is_unspecified or address.is_multicast:
        return False
    return private or address.is_global


async def resolve(host: str, port: int, private: bool) -> list[Address]:
    """The addresses to connect to; ToolError if `host` resolves to any refused address."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise ToolError(f"cannot resolve {host}: {error}", code="unresolved") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        if not address_allowed(address, private):
            raise ToolError(
                f"{host} is {address}, a private or reserved address: refused", code="refused"
            )
    if not addresses:
        raise ToolError(f"cannot resolve {host}", code="unresolved")
    return list(dict.fromkeys(addresses))


async def _send(
    client: httpx.AsyncClient, target: httpx.URL, host: str, addresses: list[Address]
) -> httpx.Response:
    """The GET sent to the first checked address that accepts a connection (a name may
    resolve to an IPv6 address this machine has no route to, then to a reachable one)."""
    for address in addresses:
        request = client.build_request(
            "GET",
            target.copy_with(host=str(address)),
            headers={"Host": target.netloc.decode("ascii")},
            extensions={"sni_hostname": host} if target.scheme == "https" else {},
        )
        try:
            return await client.send(request, stream=True)
        except httpx.ConnectError:
            if address == addresses[-1]:
                raise
    raise AssertionError("resolve() answers at least one address")


def _parse(url: str) -> httpx.URL:
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise ToolError(f"not a URL: {error}", code="invalid_arguments") from None
    if target.scheme not in ("http", "https") or not target.raw_host:
        raise ToolError("only http and https URLs can be fetched", code="refused")
    return target


def _port(target: httpx.URL) -> int:
    return 443 if target.scheme == "https" else 80


async def _answer(url: str, response: httpx.Response, max_bytes: int) -> dict[str, Any]:
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise ToolError(f"the response is too large ({length} bytes)", code="too_large")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise ToolError(f"the response is too large (over {max_bytes} bytes)",
                            code="too_large")
    content_type = response.headers.get("content-type", "")
    text = None
    if any(kind in content_type.lower() for kind in TEXTUAL) or not content_type:
        text = bytes(body).decode(_charset(response), errors="replace")
    return {
        "url": url,
        "status": response.status_code,
        "content_type": content_type,
        "text": text if text is not None else f"({len(body)} bytes of {content_type}, not text)",
    }


def _charset(response: httpx.Response) -> str:
    name = response.charset_encoding or "utf-8"
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"
