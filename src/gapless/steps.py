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
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gapless import events
from gapless.agents import calls as checks
from gapless.agents.history import build_prompt
from gapless.agents.tools import Tool, ToolContext
from gapless.db import accounts as db_accounts
from gapless.db import agents as db_agents
from gapless.db import chats as db
from gapless.db import generations as records
from gapless.db import search as db_search
from gapless.db.rows import now
from gapless.errors import FencedError, ProviderError
from gapless.generation import (
    Context,
    Unstored,
    blocking,
    end_unstarted,
    finish,
    publish,
    stored,
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


async def run(ctx: Context, reply_id: str, stop: asyncio.Event) -> None:
    """Take the reply (fresh, or going on after its calls were decided) and run it."""
    found = await db.reply_context(ctx.engine, reply_id)
    if found is None:
        return
    chat, path = found
    reply = path[-1]
    going_on = reply["status"] == "requires_action"
    if reply["status"] != "pending" and not going_on:
        return
    stream = chat_stream(chat["id"])
    waited: Observation | None = None
    if not going_on and blocking(path[:-1]):  # rare: most replies follow finished ones
        waited = _span(reply_id, "path")
        if not await wait_for_path(ctx, stream, reply, stop):
            await end_unstarted(ctx, reply_id, "cancelled", None)
            return
        path = await db.path(ctx.engine, reply_id)  # those replies have their text now
        reply = path[-1]
    decided = await db_agents.calls_of(ctx.engine, reply_id) if going_on else []
    if any(c["status"] == "awaiting_approval" and not c["decision"] for c in decided):
        return  # not every call is decided: the last decision submits the run
    agent = await db_agents.get_agent(ctx.engine, reply["agent_id"]) if reply["agent_id"] else None
    model_id = reply["model"] or chat["model"]
    provider_name, _ = split_model(model_id)
    step = max((c["step"] for c in decided), default=0)
    record = None
    if not going_on:
        record = records.new_generation(
            reply_id, chat["id"], chat["account_id"], provider_name, model_id, step=1
        )
    lease = secrets.token_hex(8)
    if not await db.start_reply(ctx.engine, reply_id, await ctx.log.head(stream), lease, record):
        return  # stopped or taken by another run meanwhile
    steps = Steps(ctx, chat, path[:-1], reply, agent, stream, lease, stop, step=step)
    await steps.go(record, decided, waited)


def _span(reply_id: str, what: str, key: str = "") -> Observation:
    trace = trace_id_of(reply_id)
    return Observation(
        f"{trace}.{what}{key}", trace, "span", what, now(), attributes={"what": what}
    )


@dataclass
class Steps:
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

    @property
    def reply_id(self) -> str:
        return str(self.reply["id"])

    @property
    def limit(self) -> int:
        if self.agent is None:
            return 1
        return max(1, min(int(self.agent["step_limit"] or STEP_LIMIT), self.ctx.max_steps))

    def taken(self) -> None:
        """The flusher found the lease taken (stopped elsewhere, or presumed dead)."""
        self.lost.set()
        self.stop.set()

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
            _end(ctx, waited, "complete")
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
        if status != "complete":
            # Calls cut short by a stop or an error end with the reply, as deltas.
            change: dict[str, Any] = {"status": "cancelled" if status == "cancelled" else "failed"}
            if status != "cancelled":
                change["error"] = error or {"code": status, "message": "The reply ended."}
            for part in progress.parts.tools():
                if part["status"] in ("input", "running", "awaiting_approval"):
                    with contextlib.suppress(FencedError):
                        await self._publish(tool={"id": part["id"], **change})
        try:
            await finish(self.ctx, self.stream, self.reply_id, self.lease, status, error, progress)
        except FencedError:
            return
        except Exception as exc:
            raise Unstored(str(exc)) from exc
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
        prompt = build_prompt(chat, self.path, self.agent, self.progress.parts.json(), specs)
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

    # ---- tool calls --------------------------------------------------------------------------

    def _approval(self, name: str) -> bool:
        policy = (self.agent or {}).get("approval", {}).get(name)
        if policy is not None:
            return bool(policy == "always")
        tool = self.tools.get(name)
        return bool(tool is not None and tool.destructive)

    async def _tool_step(self, calls: list[dict[str, Any]]) -> bool:
        """Check the step's calls, record them, run those that need no approval; answers
        False when the run ends here (paused for approval, or its lease was lost)."""
        rows, ready, failed, waiting = [], [], [], []
        for part in calls:
            tool = self.tools.get(part["name"])
            checked = checks.check(tool, part["name"], part["arguments"])
            if isinstance(checked, checks.Outcome):
                failed.append((part, checked))
                status = "failed"
            elif self._approval(part["name"]):
                waiting.append(part)
                status = "awaiting_approval"
            else:
                assert tool is not None
                ready.append((part, tool, checked))
                status = "running"
            rows.append(self._row(part, status))
        await db_agents.record_calls(self.ctx.engine, rows)  # before anything runs
        for part, outcome in failed:
            await self._conclude(part, outcome)
        for part in waiting:
            await self._publish(tool={"id": part["id"], "status": "awaiting_approval"})
        await self._run_calls(ready)
        if not waiting or self.stop.is_set():
            return True
        return await self._pause()

    def _row(self, part: Mapping[str, Any], status: str) -> dict[str, Any]:
        return {
            "message_id": self.reply_id,
            "call_id": part["id"],
            "chat_id": self.chat["id"],
            "account_id": self.chat["account_id"],
            "step": self.step,
            "name": part["name"],
            "arguments": part["arguments"],
            "status": status,
        }

    async def _refuse(self, calls: list[dict[str, Any]], error: dict[str, str]) -> None:
        """Calls asked for at the step limit are not run: they end with the reply."""
        await db_agents.record_calls(self.ctx.engine, [self._row(p, "failed") for p in calls])
        for part in calls:
            await self._conclude(part, checks.Outcome("failed", None, error))

    async def _run_calls(self, ready: list[tuple[dict[str, Any], Tool, dict[str, Any]]]) -> None:
        """Run calls concurrently, each result published as it comes; a stop cancels the rest."""
        if not ready:
            return
        context = await self._tool_context()
        tasks: dict[asyncio.Future[Any], dict[str, Any]] = {}
        for part, tool, arguments in ready:
            await self._publish(tool={"id": part["id"], "status": "running"})
            self.ctx.recorder.started(self._tool_observation(part))
            running = asyncio.ensure_future(
                checks.run(
                    tool, arguments, context, self.ctx.tool_timeout, self.ctx.tool_output_max
                )
            )
            tasks[running] = part
        stopper = asyncio.ensure_future(self.stop.wait())
        pending: set[asyncio.Future[Any]] = set(tasks)
        try:
            while pending and not self.stop.is_set():
                done, pending = await asyncio.wait(
                    pending | {stopper}, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(stopper)
                for finished in done:
                    if finished is not stopper:
                        await self._conclude(tasks[finished], finished.result())  # type: ignore[arg-type]
        finally:
            stopper.cancel()
            for cut in pending:
                cut.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for cut in pending:  # stopped: the calls still running end cancelled
            await self._conclude(tasks[cut], checks.Outcome("cancelled", None, None))

    async def _conclude(self, part: Mapping[str, Any], outcome: checks.Outcome) -> None:
        change: dict[str, Any] = {"id": part["id"], "status": outcome.status}
        if outcome.output is not None:
            change["output"] = outcome.output
        if outcome.error is not None:
            change["error"] = outcome.error
        await self._publish(tool=change)
        await db_agents.finish_call(
            self.ctx.engine,
            self.reply_id,
            part["id"],
            outcome.status,
            outcome.output,
            outcome.error,
        )
        observation = self._tool_observation(part)
        observation.ended_at, observation.status = now(), outcome.status
        observation.error = outcome.error
        observation.attributes["output"] = outcome.output
        self.ctx.recorder.ended(observation)

    def _tool_observation(self, part: Mapping[str, Any]) -> Observation:
        trace = trace_id_of(self.reply_id)
        return Observation(
            f"{trace}.tool.{part['id']}",
            trace,
            "tool",
            f"execute_tool {part['name']}",
            now(),
            attributes={
                "tool": part["name"],
                "call_id": part["id"],
                "arguments": part.get("arguments", ""),
                "step": self.step,
            },
        )

    async def _tool_context(self) -> ToolContext:
        user_id = self.reply.get("user_id")
        caller = await db_accounts.caller_for_user(self.ctx.engine, user_id) if user_id else None
        if caller is None:
            accounts: frozenset[str] | None = frozenset({self.chat["account_id"]})
        else:
            accounts = None if caller.site_admin else frozenset(caller.account_ids)
        search = db_search.searcher(self.ctx.engine, accounts)
        return ToolContext(user_id, accounts, self.chat["id"], self.reply_id, search)

    # ---- approval ----------------------------------------------------------------------------

    async def _pause(self) -> bool:
        """Leave the reply `requires_action` and end this run; True when every call was
        decided meanwhile (the run goes on at once)."""
        ctx = self.ctx
        await ctx.flusher.untrack(self.reply_id)
        paused = await db.pause_reply(
            ctx.engine,
            self.reply_id,
            self.lease,
            **stored(self.progress.parts, self.progress.seq),
            **(usage_json(self.progress.usage) or {}),
        )
        if paused is False:
            self.lost.set()
            return False
        if paused is True:
            ctx.flusher.track(self.reply_id, self.lease, self.progress, self.taken)
            decided = await db_agents.calls_of(ctx.engine, self.reply_id)
            return await self._decided(decided)
        assert isinstance(paused, dict)
        ctx.recorder.started(_span(self.reply_id, "approval", f".{self.step}"))
        with contextlib.suppress(FencedError):  # stopped meanwhile: the stop's final event wins
            await ctx.log.append(
                self.stream, events.message("message.updated", paused), fence=self.reply_id
            )
        self.lost.set()  # nothing more of this run: the decision starts the next
        return False

    async def _decided(self, calls: list[dict[str, Any]]) -> bool:
        """Run the approved calls of the paused step and tell the model of the denied ones."""
        span = _span(self.reply_id, "approval", f".{self.step}")
        _end(self.ctx, span, "complete")
        ready = []
        for call in calls:
            if call["status"] != "awaiting_approval" or not call["decision"]:
                continue
            part = self.progress.parts.tool(call["call_id"]) or {
                "id": call["call_id"],
                "name": call["name"],
                "arguments": call["arguments"],
            }
            if call["decision"] == "deny":
                reason = call["reason"] or "The user denied this call."
                await self._conclude(
                    part, checks.Outcome("denied", None, {"code": "denied", "message": reason})
                )
                continue
            tool = self.tools.get(call["name"])
            checked = checks.check(tool, call["name"], call["arguments"])
            if not await db_agents.start_call(self.ctx.engine, self.reply_id, call["call_id"]):
                # Started by a run before this one: it may have run, so it never runs again.
                checked = checks.failed("interrupted", "This call was started before; not rerun.")
            if isinstance(checked, checks.Outcome):
                await self._conclude(part, checked)
            else:
                assert tool is not None
                ready.append((part, tool, checked))
        await self._run_calls(ready)
        return not self.lost.is_set()

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
        )


def _end(ctx: Context, observation: Observation, status: str) -> None:
    observation.ended_at, observation.status = now(), status
    ctx.recorder.ended(observation)


def _usage(usage: Usage | None) -> dict[str, int] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        **({"cached_tokens": usage.cached_tokens} if usage.cached_tokens else {}),
    }


def _step_limit(limit: int) -> dict[str, str]:
    return {
        "code": "step_limit",
        "message": f"The agent reached its limit of {limit} steps before it answered.",
    }
