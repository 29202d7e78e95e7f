"""The trace context a job carries from the process that submitted it to the one that runs it.

A W3C `traceparent` string in a context variable: the submitting side sets it
around `runner.submit` (a task created there inherits it; the SAQ runner puts
it in the job's arguments and sets it again in the worker around the run), and
the OpenTelemetry recorder reads it when the run starts. Pure (no OpenTelemetry
import: with export off this costs one context variable). Imports nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_current: ContextVar[str | None] = ContextVar("gapless_traceparent", default=None)


def current() -> str | None:
    """The `traceparent` of the submitting span, where a run starts (None: none given)."""
    return _current.get()


def kwargs() -> dict[str, str]:
    """The job arguments that carry it (none when there is nothing to carry)."""
    found = _current.get()
    return {"trace": found} if found else {}


@contextmanager
def carrying(traceparent: str | None) -> Iterator[None]:
    """Runs (and tasks created) inside this block see `traceparent` as their parent."""
    token = _current.set(traceparent)
    try:
        yield
    finally:
        _current.reset(token)
