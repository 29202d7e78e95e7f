"""The exception tree of Gapless, each with a stable `code` and an HTTP status.

Imports nothing from gapless. The web layer translates these once, at one
boundary, into `{"error": {"code", "message", "details"?}}`; nothing else knows HTTP.

    GaplessError (500)
    ├── InvalidError (422)         bad input: wrong shape, unknown parent, unknown model
    │   └── TooLargeError (413)    content over the limit
    ├── NotFoundError (404)        missing, or not the caller's (never leaks existence)
    ├── UnauthorizedError (401)    no or bad credentials
    ├── ForbiddenError (403)       CSRF or Origin refused (never used to hide a resource)
    ├── ConflictError (409)        the state forbids the action
    ├── RateLimitedError (429)     too many at once or too fast; `retry_after` seconds
    ├── BadRequestError (400)      unusable input: NUL, lone surrogates
    ├── CursorError (400)          a cursor that cannot be parsed (transports answer `reset`)
    ├── FencedError (409)          an append by a run whose reply was taken from it (revoked)
    └── ProviderError (502)        a model provider failed; `code` says how
"""

from __future__ import annotations

from typing import Any


class GaplessError(Exception):
    """Base of every error Gapless raises on purpose."""

    code = "internal"
    status = 500

    def __init__(
        self, message: str, *, code: str | None = None, details: list[Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details  # what a client can point at: an import's bad lines
        if code is not None:
            self.code = code


class InvalidError(GaplessError):
    code = "invalid"
    status = 422


class TooLargeError(InvalidError):
    code = "too_large"
    status = 413


class NotFoundError(GaplessError):
    code = "not_found"
    status = 404


class UnauthorizedError(GaplessError):
    code = "unauthorized"
    status = 401


class ForbiddenError(GaplessError):
    code = "forbidden"
    status = 403


class ConflictError(GaplessError):
    code = "conflict"
    status = 409


class RateLimitedError(GaplessError):
    code = "rate_limited"
    status = 429

    def __init__(
        self, message: str, *, code: str | None = None, retry_after: float = 1.0
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after  # seconds, sent as `Retry-After`


class CursorError(GaplessError):
    code = "bad_cursor"
    status = 400


class FencedError(GaplessError):
    """The log refused an append: the reply's run was revoked (stopped elsewhere, or presumed
    dead). The run must end quietly: whoever revoked it published the final event."""

    code = "fenced"
    status = 409


class ProviderError(GaplessError):
    """A model provider failed. `code` is stable (`auth`, `rate_limit`, `timeout`, ...)."""

    code = "provider_error"
    status = 502


class BadRequestError(GaplessError):
    """Input no handler should see: NUL characters, lone surrogates (refused at the edge)."""

    code = "bad_request"
    status = 400
