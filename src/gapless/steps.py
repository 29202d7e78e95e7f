"""A reply's run in steps: a model call, its tool calls, the next model call, until the model
answers without tools, the step limit, a stop, or a call that awaits approval.

Every piece is a numbered delta of the reply (`generation.publish`): the
step's text and thinking as the model streams them, each tool call's name and
arguments, then its status and output. A tool call's row is written before it
runs, so no later run repeats it (`db.agents`). A call that needs approval
pauses the reply (`requires_action`, `message.updated`) and this run ends; the
last decision submits a run that starts here again and goes on. A reply
without an agent is one step without tools, as before agents existed.
Imports `generation`, `agents`, `db`, `providers`, `stream`, `waits`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from gapless.agents.history import build_prompt
from gapless.agents.phase import ToolPhase, end, span
from gapless.agents.tools import Tool
from gapless.db import agents as db_agents
from gapless.db import chats as db
from gapless.db import generations as records
from gapless.db import replies as db_replies
from gapless.db.rows import now
from gapless.errors import FencedError, GaplessError, ProviderError
from gapless.evals import prompts
from gapless.generation import (
    UNSTORED,
    Context,
    Unstored,
    blocking,
    closing,
    end_unstarted,
    finish,
    publish,
    retrying,
    usage_json,
    wait_for_path,
)
from gapless.log.base import chat_stream
from gapless.observe.recorder import Observation, Run, trace_id_of
from gapless.providers.base import (
    Finish,
    Text,
    Thinking,
    ToolCallArgs,
    ToolCallStart,
    ToolSpec,
    Usage,
    split_model,
)
from gapless.stream import Delta, Parts
from gapless.waits import until_stopped
from gapless.writer import Progress

logger = logging.getLogger("gapless.generation")
STEP_LIMIT = 10  # an agent's default
UNKNOWN_AGENT = {"code": "unknown_agent", "message": "The agent of this reply was deleted."}


async def generate(ctx: Context, reply_id: str, stop: asyncio.Event) -> None:
    """Run one reply to its end (complete, failed, or cancelled when `stop` is set), or to a
    pause for approval.

    Whatever fails (a database locked or gone before the first delta), the reply
    still ends, with a final event: no subscriber waits for an end that never comes.
    """
    chat: dict[str, Any] | None = None
    try:
        found = await db.reply_context(ctx.engine, reply_id)
        if found is not None:
            chat = found[0]
            await run(ctx, *found, stop)
    except Exception as exc:
        logger.exception("generation of %s failed", reply_id)
        error = (
            UNSTORED
            if isinstance(exc, Unstored)
            else {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}
        )
        with contextlib.suppress(Exception):
            await retrying(lambda: end_unstarted(ctx, reply_id, "failed", error))
    await ctx.after(reply_id, chat)


async def run(
    ctx: Context, chat: dict[str, Any], path: list[dict[str, Any]], stop: asyncio.Event
) -> None:
    """Take the reply (`path`'s last message: fresh, or going on after its calls were
    decided) and run it."""
    reply = path[-1]
    reply_id = reply["id"]
    going_on = reply["status"] == "requires_action"
    if reply["status"] != "pending" and not going_on:
        return
    stream = chat_stream(chat["id"])
    waited: Observation | None = None
    if not going_on and blocking(path[:-1]):  # rare: most replies follow finished ones
        waited = span(reply_id, "path")
        if not await wait_for_path(ctx, stream, reply, stop):
            await end_unstarted(ctx, reply_id, "cancelled", None)
            return
        path = await db.path(ctx.engine, reply_id)  # those replies have their text now
        reply = {**path[-1], "user_id": reply["user_id"]}
    decided = await db_agents.calls_of(ctx.engine, reply_id) if going_on else []
    if any(c["status"] == "awaiting_approval" and not c["decision"] for c in decided):
        return  # not every call is decided: the last decision submits the run
    agent = await db_agents.get_agent(ctx.engine, reply["agent_id"]) if reply["agent_id"] else None
    if reply["agent_id"] and agent is None:  # deleted since: never run bare in its name
        await end_unstarted(ctx, reply_id, "failed", UNKNOWN_AGENT)
        return
    try:  # the prompt version a reply starts with stays its own when the label moves
        agent, used = await prompts.apply_prompt(
            ctx.engine, chat["account_id"], agent, reply["prompt"]
        )
    except GaplessError as exc:  # the prompt is gone, or no longer renders
        await end_unstarted(ctx, reply_id, "failed", {"code": exc.code, "message": exc.message})
        return
    model_id = reply["model"] or chat["model"]
    provider_name, _ = split_model(model_id)
    step = max((c["step"] for c in decided), default=0)
    record = None
    if not going_on:
        record = records.new_generation(
            reply_id, chat["id"], chat["account_id"], provider_name, model_id, step=1
        )
    lease = secrets.token_hex(8)
    head = await ctx.log.head(stream)
    stored_prompt = json.dumps(used) if used else None
    if not await ctx.starts(db_replies.Start(reply_id, head, lease, record, stored_prompt)):
        return  # stopped or taken by another run meanwhile
    reply["prompt"] = used
    steps = Steps(ctx, chat, path[:-1], reply, agent, stream, lease, stop, step=step)
    if agent is None and used:  # a prompt version's run: its config's settings
        steps.tuning = await prompts.tuning(ctx.engine, chat["account_id"], used)
    await steps.go(record, decided, waited)


@dataclass
class Steps(ToolPhase):
    ctx: Context
    chat: dict[str, Any]
    path: list[dict[str, Any]]  # the reply's ancestors, root first
    reply: dict[str, Any]
    agent: dict[str, Any] | None
    stream: str
    lease: str
    stop: asyncio.Event
    step: int = 0
    progress: Progress = field(default_factory=Progress)
    tools: dict[str, Tool] = field(default_factory=dict)
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    totals: list[int] = field(default_factory=lambda: [0, 0, 0])
    tuning: dict[str, Any] = field(default_factory=dict)  # settings without an agent

    @property
    def limit(self) -> int:
        if self.agent is None:
            return 1
        return max(1, min(int(self.agent["step_limit"] or STEP_LIMIT), self.ctx.max_steps))

    async def go(
        self,
        record: dict[str, Any] | None,
        decided: list[dict[str, Any]],
        waited: Observation | None,
    ) -> None:
        ctx, reply_id = self.ctx, self.reply_id
        self.progress = Progress(parts=Parts(self.reply["parts"]), seq=int(self.reply["seq"]))
        ctx.flusher.track(reply_id, self.lease, self.progress, self.taken)
        ctx.recorder.run_started(self._run(resumed=bool(decided)))
        if waited is not None:
            end(ctx, waited, "complete")
        status, error = "complete", None
        try:
            if self.agent is not None:
                self.tools = await ctx.toolbox.resolve(self.agent["tools"])
            if decided and not await self._decided(decided):
                return  # lost its lease
            while not self.stop.is_set():
                self.step += 1
                calls = await self._model_step(record)
                record = None
                if not calls or self.stop.is_set():
                    break
                if self.step >= self.limit:
                    status, error = "failed", _step_limit(self.limit)
                    await self._refuse(calls, error)
                    break
                if not await self._tool_step(calls):
                    return  # paused for approval (or lost its lease): this run ends here
            if self.stop.is_set() and status == "complete":
                status = "cancelled"
        except FencedError:
            self.lost.set()
        except ProviderError as exc:
            status, error = "failed", {"code": exc.code, "message": exc.message}
        except Exception as exc:  # a bug must still end the reply clearly, never spin forever
            logger.exception("generation %s crashed", reply_id)
            status, error = (
                "failed",
                {"code": "internal", "message": f"{type(exc).__name__}: {exc}"},
            )
        finally:
            await ctx.flusher.untrack(reply_id)  # no debounced write follows: the final one is next
        await self._end(status, error)

    async def _end(self, status: str, error: dict[str, str] | None) -> None:
        if self.lost.is_set():
            logger.warning(
                "run of %s lost its lease; whoever took it ended the reply", self.reply_id
            )
            return
        progress = self.progress
        if status != "complete":  # calls cut short by a stop or an error end with the reply
            for change in closing(progress.parts, status, error):
                with contextlib.suppress(FencedError):
                    await self._publish(tool=change)
        try:
            await finish(self.ctx, self.stream, self.reply_id, self.lease, status, error, progress)
        except FencedError:
            return
        except Exception as exc:
            raise Unstored(str(exc)) from exc
        if self.agent is not None or progress.parts.tools():
            # Without an agent and without a tool part, the reply has no call to close: no
            # transaction (a third of a plain reply's end).
            await db_agents.close_calls(self.ctx.engine, self.reply_id, "cancelled", error)
        self.ctx.recorder.run_ended(trace_id_of(self.reply_id), status, error, now())

    # ---- a model call ------------------------------------------------------------------------

    async def _model_step(self, record: dict[str, Any] | None) -> list[dict[str, Any]]:
        """One model call, streamed as deltas; answers the tool parts it started."""
        ctx, chat = self.ctx, self.chat
        model_id = self.reply["model"] or chat["model"]
        provider_name, model = split_model(model_id)
        if record is None:
            record = records.new_generation(
                self.reply_id, chat["id"], chat["account_id"], provider_name, model_id, self.step
            )
            await records.start_generation(ctx.engine, record)
        specs = tuple(ToolSpec(t.name, t.description, t.schema) for t in self.tools.values())
        parts = self.progress.parts.json()
        prompt = build_prompt(chat, self.path, self.agent, parts, specs, self.tuning)
        observation = Observation(
            str(record["id"]),
            trace_id_of(self.reply_id),
            "generation",
            f"chat {model}",
            record["started_at"],
            attributes={
                "provider": provider_name,
                "model": model_id,
                "step": self.step,
                "settings": {"temperature": prompt.temperature, "max_tokens": prompt.max_tokens},
                "input": prompt,
            },
        )
        ctx.recorder.started(observation)
        started: dict[str, str] = {}  # the provider's call ids -> this reply's part ids
        usage: Usage | None = None
        reason: str | None = None
        first_at = None
        seq_before = self.progress.seq
        outcome, error = "complete", None
        try:
            provider = ctx.providers.get(provider_name)
            if provider is None:
                raise ProviderError(
                    f"model {model_id} is not enabled here", code="model_unavailable"
                )
            async for chunk in until_stopped(provider.stream(model, prompt), self.stop):
                if isinstance(chunk, Usage):
                    usage = chunk
                elif isinstance(chunk, Finish):
                    reason = chunk.reason
                elif isinstance(chunk, Thinking) and chunk.signature and not chunk.text:
                    self.progress.parts.sign(chunk.signature)
                else:
                    published = await self._chunk(chunk, started)
                    if published and first_at is None:
                        first_at = now()
            if self.stop.is_set():
                outcome = "cancelled"
        except ProviderError as exc:
            outcome, error = "failed", {"code": exc.code, "message": exc.message}
            raise
        except FencedError:
            outcome = "interrupted"
            raise
        finally:
            self._count(usage)
            cost = ctx.cost(model_id, usage) if usage else None
            await records.finish_generation(
                ctx.engine,
                str(record["id"]),
                status=outcome,
                first_token_at=first_at,
                usage=_usage(usage),
                deltas=self.progress.seq - seq_before,
                flushes=self.progress.flushes,
                error=error,
                cost=cost,
                finish_reason=reason,
            )
            observation.ended_at, observation.status, observation.error = now(), outcome, error
            observation.attributes.update(
                usage=_usage(usage),
                cost=cost,
                first_chunk_at=first_at,
                finish_reason=reason,
                output=self.progress.parts.json(),
            )
            ctx.recorder.ended(observation)
        return [p for p in (self.progress.parts.tool(i) for i in started.values()) if p]

    async def _chunk(self, chunk: Any, started: dict[str, str]) -> bool:
        """A chunk as the reply's next delta; False when it carries nothing to show."""
        if isinstance(chunk, Text) and chunk.text:
            await self._publish(content=chunk.text)
        elif isinstance(chunk, Thinking) and chunk.text:
            await self._publish(thinking=chunk.text)
        elif isinstance(chunk, ToolCallStart):
            part_id = chunk.id or f"call_{len(started)}"
            if self.progress.parts.tool(part_id) is not None:  # ids are unique in a reply
                part_id = f"{part_id}-{self.step}-{len(started)}"
            started[chunk.id] = part_id
            await self._publish(tool={"id": part_id, "name": chunk.name})
        elif isinstance(chunk, ToolCallArgs) and chunk.text and chunk.id in started:
            await self._publish(tool={"id": started[chunk.id], "arguments": chunk.text})
        else:
            return False
        return True

    async def _publish(self, content: str = "", thinking: str = "", tool: Any = None) -> None:
        delta = Delta(self.reply_id, self.progress.seq + 1, content, thinking, tool)
        await publish(self.ctx, self.stream, delta, self.progress)

    def _count(self, usage: Usage | None) -> None:
        """The reply's usage is the sum of its steps'."""
        if usage is None:
            return
        totals = self.totals
        totals[0] += usage.input_tokens
        totals[1] += usage.output_tokens
        totals[2] += usage.reasoning_tokens
        self.progress.usage = Usage(*totals)

    def _run(self, resumed: bool) -> Run:
        agent = self.agent or {}
        return Run(
            trace_id_of(self.reply_id),
            self.reply_id,
            self.chat["id"],
            self.chat["account_id"],
            self.reply.get("user_id"),
            agent.get("id"),
            agent.get("name"),
            self.reply["model"] or self.chat["model"],
            now(),
            resumed,
            self.reply["prompt"],
        )


def _usage(usage: Usage | None) -> dict[str, int] | None:
    """A model call's usage as its generation record keeps it (a reply's row has no cached
    tokens: `usage_json` alone)."""
    found = usage_json(usage)
    if found is not None and usage is not None and usage.cached_tokens:
        found["cached_tokens"] = usage.cached_tokens
    return found


def _step_limit(limit: int) -> dict[str, str]:
    return {
        "code": "step_limit",
        "message": f"The agent reached its limit of {limit} steps before it answered.",
    }
