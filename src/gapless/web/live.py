"""This process's open streams, by user: the per-user cap, and ending them when access ends.

Every SSE stream, WebSocket and WebSocket subscription is registered here and
counts against its user's cap (`max_streams`, 429 `too_many_streams` beyond);
a stream or subscription has a `Held` (a `feed.Hold`), which can end it from outside.
Each API process follows the log's `accounts.ACCESS` stream (`Live.run`):
when a session or token is revoked, a member removed or a user deleted, in any
process, the matching streams here end at once with `reset {reason: access}`,
and WebSockets of that user re-check who they are before their next subscribe.
The heartbeat's re-check stays, for what the log cannot tell (a memory log
seen from another process, an expiry). Imports `accounts`, `feed`, `log`,
`errors`, `db.accounts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from gapless.accounts import ACCESS
from gapless.db.accounts import Caller
from gapless.errors import RateLimitedError
from gapless.feed import Hold
from gapless.log.base import EventLog

logger = logging.getLogger("gapless.web.live")


class Holder(Protocol):
    def revoke(self, tokens: list[str] | None, account_id: str | None) -> None: ...


def matches(token_id: str, account_id: str | None, tokens: object, account: object) -> bool:
    """Whether a revocation (`tokens`: None for all of the user's; `account`: one
    account or None) reaches what holds `token_id` on `account_id`."""
    if isinstance(tokens, list) and token_id not in tokens:
        return False
    return account is None or account == account_id


class Held(Hold):
    """One held stream or subscription: `feed.follow` ends it with `reset(access)` when
    `Live` ends it (`Hold.end`), and its close gives back its place in the user's cap.
    Nothing of it runs per batch."""

    __slots__ = ("account_id", "caller", "live")

    def __init__(self, live: Live, caller: Caller, account_id: str) -> None:
        super().__init__()
        self.live, self.caller, self.account_id = live, caller, account_id

    def revoke(self, tokens: list[str] | None, account_id: str | None) -> None:
        if not self.ended and matches(self.caller.token_id, self.account_id, tokens, account_id):
            self.end()

    async def close(self) -> None:
        self.live.release(self.caller.user_id, self)


class Live:
    def __init__(self, log: EventLog, max_streams: int) -> None:
        self.log, self.max_streams = log, max_streams
        self.by_user: dict[str, set[Holder]] = {}
        self.counts: dict[str, int] = {}
        self.task: asyncio.Task[None] | None = None

    def hold(self, caller: Caller, account_id: str) -> Held:
        """Register a stream or subscription about to be followed: pass it to `feed.follow`
        as its `hold` (which closes it), or close it when not followed after all."""
        held = Held(self, caller, account_id)
        self.watch(caller.user_id, held)
        return held

    def watch(self, user_id: str, holder: Holder) -> None:
        """Count `holder` (a stream, a subscription, a WebSocket) against its user's cap, and
        tell it of revocations; `RateLimitedError` (429 `too_many_streams`) over the cap."""
        count = self.counts.get(user_id, 0)
        if count >= self.max_streams:
            raise RateLimitedError(
                f"at most {self.max_streams} open streams, sockets and subscriptions per user",
                code="too_many_streams",
                retry_after=15,
            )
        self.counts[user_id] = count + 1
        self.by_user.setdefault(user_id, set()).add(holder)

    def release(self, user_id: str, holder: Holder) -> None:
        held = self.by_user.get(user_id)
        if held is None or holder not in held:
            return
        held.discard(holder)
        self.counts[user_id] -= 1
        if not self.counts[user_id]:
            del self.counts[user_id]
        if not held:
            del self.by_user[user_id]

    def revoke(self, user_id: str, tokens: list[str] | None, account_id: str | None) -> None:
        for holder in list(self.by_user.get(user_id, ())):
            holder.revoke(tokens, account_id)

    async def run(self) -> None:
        """Follow `ACCESS` from now, for the process's life (again from now after a reset)."""
        while True:
            subscription = await self.log.subscribe(ACCESS, None)
            try:
                while True:
                    batch = await subscription.next()
                    for event in batch:
                        if event.type == "access.revoked":
                            found = event.payload()
                            self.revoke(found["user_id"], found["tokens"], found["account_id"])
                    if batch[-1].type == "reset":
                        break
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("following revocations failed; again in a second")
                await asyncio.sleep(1)
            finally:
                await subscription.close()

    def start(self) -> None:
        self.task = asyncio.create_task(self.run())

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
