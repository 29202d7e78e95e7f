"""The generation job: a reply's chunks to the log at once, to the database on a debounce.

Order is the guarantee, so it is spelled out here:
1. wait while a reply on this one's path is unfinished;
2. take the reply (a lease) and store the log head as its position, *before* any delta;
3. each chunk becomes the next numbered `message.delta`, appended at once;
4. a debounced writer stores text, parts, seq and the position of the last delta
   it reflects, in one write, a few times a second at most (`writer.Flusher`);
5. the last write (final status, text, parts, usage) happens before the final
   event, and no delta follows the final event.

A reply with an agent runs in steps (`steps.py`): each step is one model call,
then its tool calls, whose arguments, status and output are deltas too. A
call that needs approval pauses the reply (`requires_action`), and the run
ends; the decision submits a run that goes on from there. Providers only
yield; this module numbers, persists, times and prices. It knows nothing of
HTTP. Imports `db`, `log`, `providers`, `events`, `stream`, `writer`, `steps`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gapless import events
from gapless.agents.tools import Tool
from gapless.db import Engine
from gapless.db import agents as db_agents
from gapless.db import chats as db
from gapless.db import replies as db_replies
from gapless.db.rows import now
from gapless.errors import FencedError, GaplessError
from gapless.log.base import EventLog, chat_stream
from gapless.observe.recorder import NullRecorder, Recorder, trace_id_of
from gapless.providers.base import Provider, Usage
from gapless.stream import FINAL_EVENTS, TOOL_FINAL, Delta, Parts
from gapless.together import Together
from gapless.waits import first_of
from gapless.writer import Flusher, Hook, Progress, no_hook, texts

logger = logging.getLogger("gapless.generation")


@dataclass(frozen=True)
class Hooks:
    """Points where tests pause a job to force an interleaving (never used to sleep)."""

    after_delta: Hook = no_hook
    before_flush: Hook = no_hook


class Toolbox(Protocol):
    async def resolve(self, names: Sequence[str]) -> dict[str, Tool]:
        """The enabled tools among `names` (unknown ones are absent)."""
        ...


class NoTools:
    async def resolve(self, names: Sequence[str]) -> dict[str, Tool]:
        return {}


@dataclass(frozen=True)
class Context:
    engine: Engine
    log: EventLog
    providers: Mapping[str, Provider]
    flusher: Flusher  # this process's debounced writer of every streaming reply
    cost: Callable[[str, Usage], float | None] = lambda model, usage: None
    hooks: Hooks = field(default_factory=Hooks)
    toolbox: Toolbox = field(default_factory=NoTools)
    recorder: Recorder = field(default_factory=NullRecorder)
    tool_timeout: float = 30.0
    tool_output_max: int = 20_000
    max_steps: int = 25
    # After a reply's end is published: an experiment takes its result (`evals.after`). Given
    # the reply's chat when the run read it (None: unknown, the hook looks it up).
    after: Callable[[str, Mapping[str, Any] | None], Awaitable[None]] = field(
        default=lambda reply_id, chat: _nothing()
    )
    # The runs that start in one loop turn take their replies in one transaction (`together`).
    starts: Together[db_replies.Start, bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "starts", Together(lambda starts: db_replies.start_replies(self.engine, starts))
        )


async def _nothing() -> None:
    return None


# The run ended but could not store its end (the database stayed away past every retry):
# said the way the reaper says it, so the reply ends alike whoever gets there first.
UNSTORED = {"code": "interrupted", "message": "The end of this reply could not be stored."}


class Unstored(Exception):
    """The final write gave up: the reply is ended by `generate`'s fallback or the reaper."""


async def publish(ctx: Context, stream: str, delta: Delta, progress: Progress) -> None:
    """Append the reply's next delta to the log at once; the flusher writes it later."""
    stored = await ctx.log.append(stream, events.delta(delta), fence=delta.message_id)
    progress.parts.add(delta)
    epoch_changed = bool(progress.position) and _epoch(progress.position) != _epoch(stored.cursor)
    progress.seq, progress.position = delta.seq, stored.cursor
    if epoch_changed:
        # The log lost its history (a Redis flush): the row's stored position names the
        # old log, so bring the row up to this delta now, or late joiners would see a gap.
        await ctx.flusher.write_now(delta.message_id)
    if progress.first_token_at is None:
        progress.first_token_at = now()
    ctx.flusher.mark()
    await ctx.hooks.after_delta(delta.message_id, delta.seq)


def usage_json(usage: Usage | None) -> dict[str, int] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }


def stored(parts: Parts, seq: int) -> dict[str, Any]:
    """The columns of a reply's text as written with its status."""
    content, thinking, parts_json = texts(parts)
    return {"content": content, "thinking": thinking, "parts": parts_json, "seq": seq}


async def finish(
    ctx: Context,
    stream: str,
    reply_id: str,
    lease: str,
    status: str,
    error: dict[str, str] | None,
    progress: Progress,
) -> None:
    """The final write, then the final event (nothing of this run follows it)."""
    final = await retrying(
        lambda: db_replies.finish_reply(
            ctx.engine,
            reply_id,
            lease,
            status,
            error_code=(error or {}).get("code"),
            error_message=(error or {}).get("message"),
            **stored(progress.parts, progress.seq),
            **(usage_json(progress.usage) or {}),
        )
    )
    if final is None:
        return
    event = events.message(f"message.{EVENT[status]}", final)
    try:
        await ctx.log.append(stream, event, fence=reply_id)
    except FencedError:
        # Revoked (a stop elsewhere, the reaper) after this final write: the revoker's own
        # final write found the reply ended and publishes nothing, so this is the only final
        # event, and no delta of this run follows it.
        await ctx.log.append(stream, event)


def _epoch(cursor: str) -> str:
    return cursor.partition(".")[0]


EVENT = {"complete": "completed", "failed": "failed", "cancelled": "cancelled"}


def closing(parts: Parts, status: str, error: dict[str, str] | None) -> list[dict[str, Any]]:
    """How a reply that ends ends its unfinished tool calls (never a call left running in a
    final Message): `cancelled` when stopped, else `failed` with the reply's error. The run
    publishes these as deltas; a reply ended by no run (`end_unstarted`) stores them."""
    change: dict[str, Any] = {"status": "cancelled"}
    if status != "cancelled":
        ended = error or {"code": "interrupted", "message": "The run ended."}
        change = {"status": "failed", "error": ended}
    return [
        {"id": part["id"], **change} for part in parts.tools() if part["status"] not in TOOL_FINAL
    ]


async def end_unstarted(
    ctx: Context,
    reply_id: str,
    status: str,
    error: dict[str, str] | None,
    lease: str | None = None,
) -> dict[str, Any] | None:
    """End a reply no live run holds (stopped before it started or while it awaits
    approval, interrupted, or its run presumed dead, then only if it still holds `lease`),
    keeping its text and parts.

    The fence is revoked first, so a run that is not dead after all can publish
    nothing after this final event.
    """
    await ctx.log.revoke(reply_id)
    found = await _published(ctx, reply_id)
    values: dict[str, Any] = {}
    if found is not None:
        parts, seq = found
        for change in closing(parts, status, error):
            parts.add(Delta(reply_id, seq, tool=change))
        values = stored(parts, seq)
    final = await db_replies.finish_reply(
        ctx.engine,
        reply_id,
        lease,
        status,
        error_code=(error or {}).get("code"),
        error_message=(error or {}).get("message"),
        **values,
    )
    if final is not None:
        await db_agents.close_calls(
            ctx.engine, reply_id, "cancelled" if status == "cancelled" else "failed", error
        )
        ctx.recorder.run_ended(trace_id_of(reply_id), _run_status(status, error), error, now())
        await ctx.log.append(
            chat_stream(final["chat_id"]), events.message(f"message.{EVENT[status]}", final)
        )
    return final


def _run_status(status: str, error: Mapping[str, str] | None) -> str:
    """A trace's status: the reply's, but `interrupted` when its run died."""
    return "interrupted" if (error or {}).get("code") == "interrupted" else status


async def _published(ctx: Context, reply_id: str) -> tuple[Parts, int] | None:
    """The parts and seq of what the reply's runs published: its row, plus what the log
    holds beyond it (a run that died, or was stopped elsewhere, after a delta but before
    its debounced write). Read after the fence was revoked, so the log is complete up to
    its head; the row alone when the log lost that history; None when it is gone."""
    try:
        row, position = await db.get_message(ctx.engine, reply_id)
    except KeyError:
        return None
    parts, seq = Parts(row["parts"]), row["seq"]
    if position is None:
        return parts, seq
    stream = chat_stream(row["chat_id"])
    head = await ctx.log.head(stream)
    found = Parts(row["parts"])
    subscription = await ctx.log.subscribe(stream, position)
    try:
        cursor = position
        while cursor != head:
            batch = await asyncio.wait_for(subscription.next(), 5.0)
            for event in batch:
                if event.type == "reset":
                    return parts, seq
                cursor = event.cursor
                if event.type == "message.delta":
                    delta = Delta.from_json(event.payload())
                    if delta.message_id == reply_id and delta.seq == seq + 1:
                        found.add(delta)
                        seq += 1
                if cursor == head:
                    break
    except TimeoutError:
        return parts, row["seq"]
    finally:
        await subscription.close()
    return found, seq


async def retrying(write: Callable[[], Awaitable[Any]], attempts: int = 8) -> Any:
    """A final write must not be lost to a database that is busy for a moment."""
    delay = 0.1
    for attempt in range(attempts):
        try:
            return await write()
        except GaplessError:
            raise
        except Exception:
            if attempt == attempts - 1:
                raise
            logger.warning("database write failed; retrying in %.1fs", delay, exc_info=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
    return None


async def wait_for_path(
    ctx: Context, stream: str, reply: Mapping[str, Any], stop: asyncio.Event
) -> bool:
    """Wait until no reply on this one's path is unfinished; False when stopped."""
    while not stop.is_set():
        head = await ctx.log.head(stream)  # read before the database, so no final event slips by
        ancestors = await db.path(ctx.engine, reply["parent_id"]) if reply["parent_id"] else []
        waiting = blocking(ancestors)
        if not waiting:
            return True
        subscription = await ctx.log.subscribe(stream, head)
        try:
            while not stop.is_set() and not await _ended(subscription, waiting, stop):
                pass
        finally:
            await subscription.close()
    return False


def blocking(ancestors: list[dict[str, Any]]) -> set[str]:
    """The replies on a path that are still unfinished (a reply below them must wait)."""
    return {m["id"] for m in ancestors if m["role"] == "assistant" and m["status"] in db.UNFINISHED}


async def _ended(subscription: Any, waiting: set[str], stop: asyncio.Event) -> bool:
    batch = await first_of(subscription.next(), stop)
    for event in batch or []:
        if event.type == "reset":
            return True  # history lost: look at the database again
        ending = event.type in FINAL_EVENTS or event.type == "message.deleted"
        if ending and event.payload().get("id") in waiting:
            return True
    return False
