"""FastAPI dependencies: the runtime, and the authenticated caller (CSRF checked).

All are `async def`, even those that never wait: FastAPI runs a plain `def`
dependency in a worker thread, which cost every request two thread hops.
Imports `runtime`, `accounts`, `web.auth`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request

from gapless.accounts import Accounts
from gapless.db.accounts import Caller
from gapless.runtime import Runtime
from gapless.web.auth import check_csrf, identify


async def runtime(request: Request) -> Runtime:
    found: Runtime = request.app.state.runtime
    return found


async def accounts(request: Request) -> Accounts:
    return accounts_of(await runtime(request))


def accounts_of(runtime: Runtime) -> Accounts:
    """The accounts use cases with this process's settings and event log (revocations)."""
    settings = runtime.settings
    return Accounts(
        runtime.engine,
        runtime.log,
        password_min=settings.password_min,
        session_ttl=timedelta(days=settings.session_days),
    )


async def caller(request: Request) -> Caller:
    found = await identify(request, await accounts(request))
    check_csrf(request, found)
    return found


RuntimeDep = Annotated[Runtime, Depends(runtime)]
CallerDep = Annotated[Caller, Depends(caller)]
AccountsDep = Annotated[Accounts, Depends(accounts)]
