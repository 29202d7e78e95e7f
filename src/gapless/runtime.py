"""Builds every implementation from settings: the only module that names them.

Chooses engines by URL (`memory://`, `redis://`, `sqlite+aiosqlite://`,
`postgresql+asyncpg://`), applies migrations, creates the first account on a
fresh database, ends replies a previous run left unfinished, and trims the
log. Imports everything below it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from gapless import generation
from gapless.chats import Chats, oldest
from gapless.config import Settings
from gapless.db import Engine
from gapless.db import accounts as db_accounts
from gapless.db import chats as db_chats
from gapless.db import engine as db_engine
from gapless.generation import Context, Hooks
from gapless.jobs.base import Runner
from gapless.jobs.inline import InlineRunner
from gapless.log.base import EventLog, chat_stream
from gapless.log.memory import MemoryLog
from gapless.providers.base import Provider
from gapless.providers.demo import DemoProvider

logger = logging.getLogger("gapless")


@dataclass(frozen=True)
class Bootstrap:
    """What a first start created, printed once so the user can sign in."""

    email: str
    password: str
    token: str


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    log: EventLog
    runner: Runner
    context: Context
    chats: Chats
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> Bootstrap | None:
        await db_engine.migrate(self.engine)
        created = await bootstrap(self.engine)
        await self.recover()
        self.tasks.append(asyncio.create_task(self._janitor()))
        return created

    async def recover(self) -> None:
        """Replies a previous run left unfinished end `failed`/`interrupted`, text kept."""
        for message in await db_chats.unfinished(self.engine):
            await generation.end_unstarted(
                self.context,
                message["id"],
                "failed",
                {
                    "code": "interrupted",
                    "message": "The service restarted while this reply was being generated.",
                },
            )

    async def trim(self) -> None:
        positions = await db_chats.unfinished_positions(self.engine)
        keep = {chat_stream(chat): oldest(found) for chat, found in positions.items()}
        await self.log.trim(time.time() - self.settings.retention, keep)

    async def _janitor(self) -> None:
        while True:
            await asyncio.sleep(min(60.0, self.settings.retention / 4))
            try:
                await self.trim()
            except Exception:
                logger.exception("trimming the event log failed")

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.runner.close()
        await self.log.close()
        await self.engine.dispose()


async def bootstrap(engine: Engine) -> Bootstrap | None:
    """On a fresh database: a `local` account, its admin user, and an API token."""
    if await db_accounts.first_admin(engine) is not None:
        return None
    account_id = await db_accounts.create_account(engine, "local")
    password = secrets.token_urlsafe(12)
    email = "admin@localhost"
    user_id = await db_accounts.create_user(engine, email, "Admin", password, site_admin=True)
    await db_accounts.add_member(engine, account_id, user_id, "owner")
    token, _ = await db_accounts.issue_token(engine, user_id)
    return Bootstrap(email, password, token)


def build_providers(settings: Settings) -> dict[str, Provider]:
    found: dict[str, Provider] = {}
    if "demo" in settings.providers:
        found["demo"] = DemoProvider(delay=settings.demo_delay)
    return found


def build_log(url: str) -> EventLog:
    if url.startswith("memory://"):
        return MemoryLog()
    if url.startswith(("redis://", "rediss://")):
        from gapless.log.redis import RedisLog  # lazy: redis is only needed when chosen

        log: EventLog = RedisLog.from_url(url)
        return log
    raise ValueError(f"unknown events URL {url!r}")


def build(
    settings: Settings,
    providers: Mapping[str, Provider] | None = None,
    hooks: Hooks | None = None,
) -> Runtime:
    engine = db_engine.create(settings.resolved_database_url())
    log = build_log(settings.events_url)
    chosen = dict(build_providers(settings))
    chosen.update(providers or {})
    context = Context(
        engine=engine,
        log=log,
        providers=chosen,
        debounce=settings.debounce,
        hooks=hooks or Hooks(),
    )

    async def job(reply_id: str, stop: asyncio.Event) -> None:
        await generation.generate(context, reply_id, stop)

    runner = InlineRunner(job)
    chats = Chats(
        engine=engine,
        log=log,
        runner=runner,
        context=context,
        default_model=settings.default_model,
        max_content=settings.max_content,
    )
    return Runtime(settings, engine, log, runner, context, chats)
