"""Who is calling: a bearer token (programs) or the session cookie (the browser, with CSRF).

Imports `accounts`, `errors`.
"""

from __future__ import annotations

import hmac

from starlette.requests import HTTPConnection

from gapless.accounts import Accounts
from gapless.db.accounts import Caller
from gapless.errors import ForbiddenError, UnauthorizedError

COOKIE = "gapless_session"
# Over https the cookie is `__Host-` prefixed: browsers then insist on Secure, path /, and no
# Domain, so no sibling site can set or shadow it (ASVS 3.4.4).
SECURE_COOKIE = "__Host-gapless_session"


def session_secret(connection: HTTPConnection) -> str | None:
    return connection.cookies.get(SECURE_COOKIE) or connection.cookies.get(COOKIE)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def identify(connection: HTTPConnection, accounts: Accounts) -> Caller:
    """The caller, authenticated once per request: `web.guard` did it before the body was
    read and left it in the request's state; otherwise (WebSocket) here."""
    known: Caller | None = connection.scope.get("state", {}).get("caller")
    if known is not None:
        return known
    header = connection.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return await accounts.by_bearer(header[7:].strip())
    secret = session_secret(connection)
    if secret:
        caller = await accounts.by_session(secret)
        if caller is not None:
            return caller
    raise UnauthorizedError("sign in, or send Authorization: Bearer <token>")


def check_csrf(connection: HTTPConnection, caller: Caller) -> None:
    """Cookie-authenticated requests that change state must echo the session's CSRF token."""
    if not caller.session or connection.scope["method"] in SAFE_METHODS:
        return
    sent = connection.headers.get("x-csrf-token", "")
    if not sent or not hmac.compare_digest(sent, caller.csrf):
        raise ForbiddenError("missing or wrong X-CSRF-Token", code="csrf")


def same_origin(connection: HTTPConnection, public_url: str) -> bool:
    """Whether a browser's Origin is this service's own (WebSocket handshakes)."""
    origin = connection.headers.get("origin")
    if origin is None:
        return False
    if public_url:
        return origin.rstrip("/") == public_url.rstrip("/")
    host = connection.headers.get("host", "")
    scheme = "https" if connection.url.scheme in ("https", "wss") else "http"
    return origin == f"{scheme}://{host}"
