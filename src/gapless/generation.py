"""The generation job: a reply's chunks to the log at once, to the database on a debounce.

Order is the guarantee, so it is spelled out here:
1. wait while a reply on this one's path is unfinished;
2. take the reply (a lease) and store the log head as its position, *before* any delta;
3. each chunk becomes the next numbered `message.delta`, appended at once;
4. a debounced writer stores text, seq and the position of the last delta it
   reflects, in one write, a few times a second at most (`writer.Flusher`);
5. the last write (final status, text, usage) happens before the final event,
   and no delta follows the final event.
Providers only yield; this module numbers, persists, times and prices. It
knows nothing of HTTP. Imports `db`, `log`, `providers`, `events`, `stream`, `writer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gapless import events
from gapless.db import Engine
from gapless.db import chats as db
from gapless.db import generations as records
from gapless.db.rows import now
from gapless.errors import FencedError, GaplessError, ProviderError
from gapless.log.base import EventLog, chat_stream
from gapless.providers.base import Chunk, Prompt, Provider, Text, Thinking, Turn, Usage, split_model
from gapless.stream import FINAL_EVENTS, Delta
from gapless.writer import Flusher, Hook, Progress, no_hook

logger = logging.getLogger("gapless.generation")


@dataclass(frozen=True)
class Hooks:
    """Points where tests pause a job to force an interleaving (never used to sleep)."""

    after_delta: Hook = no_hook
    before_flush: Hook = no_hook


@dataclass(frozen=True)
class Context:
    engine: Engine
    log: EventLog
    providers: Mapping[str, Provider]
    flusher: Flusher  # this process's debounced writer of every streaming reply
    cost: Callable[[str, Usage], float | None] = lambda model, usage: None
    hooks: Hooks = field(default_factory=Hooks)


async def generate(ctx: Context, reply_id: str, stop: asyncio.Event) -> None:
    """Run one reply to its end: complete, failed, or cancelled when `stop` is set.

    Whatever fails (a database locked or gone before the first delta), the reply
    still ends, with a final event: no subscriber waits for an end that never comes.
    """
    try:
        await _generate(ctx, reply_id, stop)
    except Exception as exc:
        logger.exception("generation of %s failed", reply_id)
        error = (
            UNSTORED
            if isinstance(exc, _Unstored)
            else {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}
        )
        with contextlib.suppress(Exception):
            await _retrying(lambda: end_unstarted(ctx, reply_id, "failed", error))


# The run ended but could not store its end (the database stayed away past every retry):
# said the way the reaper says it, so the reply ends alike whoever gets there first.
UNSTORED = {"code": "interrupted", "message": "The end of this reply could not be stored."}


class _Unstored(Exception):
    """The final write gave up: the reply is ended by `generate`'s fallback or the reaper."""


async def _generate(ctx: Context, reply_id: str, stop: asyncio.Event) -> None:
    found = await db.reply_context(ctx.engine, reply_id)
    if found is None or found[1][-1]["status"] != "pending":
        return
    chat, path = found
    reply = path[-1]
    stream = chat_stream(chat["id"])
    if _blocking(path[:-1]):  # rare: most replies follow finished ones, and need no wait
        if not await _wait_for_path(ctx, stream, reply, stop):
            await end_unstarted(ctx, reply_id, "cancelled", None)
            return
        path = await db.path(ctx.engine, reply_id)  # those replies have their text now
    lease = secrets.token_hex(8)
    model_id = reply["model"] or chat["model"]
    provider_name, model = split_model(model_id)
    record = records.new_generation(
        reply_id, chat["id"], chat["account_id"], provider_name, model_id
    )
    if not await db.start_reply(ctx.engine, reply_id, await ctx.log.head(stream), lease, record):
        return  # stopped or taken by another run meanwhile
    generation_id = str(record["id"])
    progress = Progress()
    status, error = "complete", None
    lost = asyncio.Event()  # set when this run's lease or fence was taken: end quietly

    def taken() -> None:
        lost.set()
        stop.set()

    ctx.flusher.track(reply_id, lease, progress, taken)
    try:
        provider = ctx.providers.get(provider_name)
        if provider is None:
            raise ProviderError(f"model {model_id} is not enabled here", code="model_unavailable")
        prompt = build_prompt(chat, path[:-1])
        async for chunk in until_stopped(provider.stream(model, prompt), stop):
            await _publish(ctx, stream, reply_id, chunk, progress)
        if stop.is_set():
            status = "cancelled"
    except FencedError:
        lost.set()
    except ProviderError as exc:
        status, error = "failed", {"code": exc.code, "message": exc.message}
    except Exception as exc:  # a bug must still end the reply clearly, never spin forever
        logger.exception("generation %s crashed", reply_id)
        status, error = "failed", {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}
    finally:
        await ctx.flusher.untrack(reply_id)  # no debounced write follows: the final one is next
    if lost.is_set():
        logger.warning("run of %s lost its lease; whoever took it ended the reply", reply_id)
        status, error = "failed", {"code": "interrupted", "message": "The run lost its lease."}
    else:
        try:
            await _finish(ctx, stream, reply_id, lease, status, error, progress)
        except Exception as exc:
            raise _Unstored(str(exc)) from exc
    await records.finish_generation(
        ctx.engine,
        generation_id,
        status=status,
        first_token_at=progress.first_token_at,
        usage=_usage(progress.usage),
        deltas=progress.seq,
        flushes=progress.flushes,
        error=error,
        cost=ctx.cost(model_id, progress.usage) if progress.usage else None,
    )


async def _publish(
    ctx: Context, stream: str, reply_id: str, chunk: Chunk, progress: Progress
) -> None:
    if isinstance(chunk, Usage):
        progress.usage = chunk
        return
    if not chunk.text:
        return
    is_text = isinstance(chunk, Text)
    delta = Delta(
        reply_id,
        progress.seq + 1,
        content=chunk.text if is_text else "",
        thinking=chunk.text if isinstance(chunk, Thinking) else "",
    )
    stored = await ctx.log.append(stream, events.delta(delta), fence=reply_id)
    (progress.content if is_text else progress.thinking).append(chunk.text)
    epoch_changed = bool(progress.position) and _epoch(progress.position) != _epoch(stored.cursor)
    progress.seq, progress.position = delta.seq, stored.cursor
    if epoch_changed:
        # The log lost its history (a Redis flush): the row's stored position names the
        # old log, so bring the row up to this delta now, or late joiners would see a gap.
        await ctx.flusher.write_now(reply_id)
    if progress.first_token_at is None:
        progress.first_token_at = now()
    ctx.flusher.mark()
    await ctx.hooks.after_delta(reply_id, delta.seq)


def _usage(usage: Usage | None) -> dict[str, int] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }


async def _finish(
    ctx: Context,
    stream: str,
    reply_id: str,
    lease: str,
    status: str,
    error: dict[str, str] | None,
    progress: Progress,
) -> None:
    usage = _usage(progress.usage) or {}
    final = await _retrying(
        lambda: db.finish_reply(
            ctx.engine,
            reply_id,
            lease,
            status,
            content="".join(progress.content),
            thinking="".join(progress.thinking),
            seq=progress.seq,
            error_code=(error or {}).get("code"),
            error_message=(error or {}).get("message"),
            **usage,
        )
    )
    if final is not None:
        with contextlib.suppress(FencedError):  # revoked after our last write: theirs wins
            await ctx.log.append(
                stream, events.message(f"message.{_EVENT[status]}", final), fence=reply_id
            )


def _epoch(cursor: str) -> str:
    return cursor.partition(".")[0]


_EVENT = {"complete": "completed", "failed": "failed", "cancelled": "cancelled"}


async def end_unstarted(
    ctx: Context,
    reply_id: str,
    status: str,
    error: dict[str, str] | None,
    lease: str | None = None,
) -> dict[str, Any] | None:
    """End a reply no live run holds (stopped before it started, interrupted, or its run
    presumed dead, then only if it still holds `lease`), keeping its text.

    The fence is revoked first, so a run that is not dead after all can publish
    nothing after this final event.
    """
    await ctx.log.revoke(reply_id)
    final = await db.finish_reply(
        ctx.engine,
        reply_id,
        lease,
        status,
        error_code=(error or {}).get("code"),
        error_message=(error or {}).get("message"),
        **await _published(ctx, reply_id),
    )
    if final is not None:
        await ctx.log.append(
            chat_stream(final["chat_id"]), events.message(f"message.{_EVENT[status]}", final)
        )
    return final


async def _published(ctx: Context, reply_id: str) -> dict[str, Any]:
    """Text, thinking and seq of what the reply's runs published, when the log holds more
    than its row: a run that died (or was stopped elsewhere) after a delta but before its
    debounced write. Read after the fence was revoked, so the log is complete up to its
    head; {} (keep the row) when it is not unfinished or the log lost that history."""
    try:
        row, position = await db.get_message(ctx.engine, reply_id)
    except KeyError:
        return {}
    if position is None:
        return {}
    stream = chat_stream(row["chat_id"])
    head = await ctx.log.head(stream)
    content, thinking, seq = [row["content"]], [row["thinking"]], row["seq"]
    subscription = await ctx.log.subscribe(stream, position)
    try:
        cursor = position
        while cursor != head:
            batch = await asyncio.wait_for(subscription.next(), 5.0)
            for event in batch:
                if event.type == "reset":
                    return {}
                cursor = event.cursor
                data = event.payload()
                ours = event.type == "message.delta" and data["message_id"] == reply_id
                if ours and data["seq"] == seq + 1:
                    content.append(data.get("content", ""))
                    thinking.append(data.get("thinking", ""))
                    seq += 1
                if cursor == head:
                    break
    except TimeoutError:
        return {}
    finally:
        await subscription.close()
    if seq == row["seq"]:
        return {}
    return {"content": "".join(content), "thinking": "".join(thinking), "seq": seq}


async def _retrying(write: Callable[[], Awaitable[Any]], attempts: int = 8) -> Any:
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


def build_prompt(chat: Mapping[str, Any], path: list[dict[str, Any]]) -> Prompt:
    """The system prompt, then the path from the root to the reply's parent."""
    turns = tuple(
        Turn(m["role"], m["content"]) for m in path if m["content"] or m["role"] == "user"
    )
    return Prompt(turns=turns, system=chat.get("system_prompt") or "")


async def _wait_for_path(
    ctx: Context, stream: str, reply: Mapping[str, Any], stop: asyncio.Event
) -> bool:
    """Wait until no reply on this one's path is pending or streaming; False when stopped."""
    while not stop.is_set():
        head = await ctx.log.head(stream)  # read before the database, so no final event slips by
        ancestors = await db.path(ctx.engine, reply["parent_id"]) if reply["parent_id"] else []
        blocking = _blocking(ancestors)
        if not blocking:
            return True
        subscription = await ctx.log.subscribe(stream, head)
        try:
            while not stop.is_set() and not await _ended(subscription, blocking, stop):
                pass
        finally:
            await subscription.close()
    return False


def _blocking(ancestors: list[dict[str, Any]]) -> set[str]:
    """The replies on a path that are still unfinished (a reply below them must wait)."""
    return {m["id"] for m in ancestors if m["role"] == "assistant" and m["status"] in db.UNFINISHED}


async def _ended(subscription: Any, blocking: set[str], stop: asyncio.Event) -> bool:
    batch = await first_of(subscription.next(), stop)
    for event in batch or []:
        if event.type == "reset":
            return True  # history lost: look at the database again
        ending = event.type in FINAL_EVENTS or event.type == "message.deleted"
        if ending and event.payload().get("id") in blocking:
            return True
    return False


ANSWERED_AT_ONCE = 0.0002  # seconds: quicker than any wait for the network or a timer


async def first_of(work: Awaitable[Any], stop: asyncio.Event) -> Any:
    """`work`'s result, or None when `stop` is set first (then `work` is cancelled).

    Two tasks per call: for rare waits only (a reply waiting for its path), never per chunk.
    """
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


async def until_stopped(chunks: AsyncIterator[Chunk], stop: asyncio.Event) -> AsyncIterator[Chunk]:
    """The provider's chunks until it ends or `stop` is set; closing it then stops its work.

    One watcher per run, not a task per chunk (the benchmark's profile): when
    `stop` is set while the job waits for the provider, the watcher cancels that
    wait, and only that. A stop that arrives while a chunk is being appended is
    seen before the next one is asked for, so an append is never cut in half.
    """
    iterator = aiter(chunks)
    job = asyncio.current_task()
    assert job is not None
    asking = interrupted = False

    def interrupt(_: object) -> None:
        nonlocal interrupted
        if asking and not interrupted:
            interrupted = True
            job.cancel()

    watcher = asyncio.ensure_future(stop.wait())
    watcher.add_done_callback(interrupt)
    try:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            asking, asked = True, loop.time()
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                if not interrupted or job.uncancel() > 0:
                    raise  # cancelled from outside too (shutdown): not ours to swallow
                interrupted = False
                return
            finally:
                asking = False
            yield chunk
            if loop.time() - asked < ANSWERED_AT_ONCE:
                # The model answered without waiting (a burst parsed from one read): give
                # the loop a turn, so subscribers get each chunk as it comes and nobody
                # starves. A model that waits (every real one, mostly) gives turns itself.
                await asyncio.sleep(0)
    finally:
        watcher.remove_done_callback(interrupt)
        watcher.cancel()
        if interrupted:  # the provider swallowed our cancellation: take it back all the same
            job.uncancel()
        with contextlib.suppress(Exception):
            await iterator.aclose()  # type: ignore[attr-defined]
