"""The tool phase of a step: its calls checked, recorded, run or held for approval.

A call is checked against its tool's schema (a refusal goes back to the model),
recorded before anything runs (so no later run repeats it), then run with the
step's other calls, concurrently, each result a delta as it comes. A call that
needs approval pauses the reply (`requires_action`, `message.updated`) and the
run ends; the run the last decision submits runs the approved calls and tells
the model of the denied ones (`_decided`). `ToolPhase` is the half of
`steps.Steps` that does this, kept apart for size. Imports `generation`,
`agents`, `db`, `observe`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from gapless import events
from gapless.agents import calls as checks
from gapless.agents.tools import Tool, ToolContext
from gapless.db import accounts as db_accounts
from gapless.db import agents as db_agents
from gapless.db import replies as db_replies
from gapless.db import search as db_search
from gapless.db.rows import now
from gapless.errors import FencedError
from gapless.generation import Context, stored, usage_json
from gapless.observe.recorder import Observation, trace_id_of
from gapless.writer import Progress


def span(reply_id: str, what: str, key: str = "") -> Observation:
    trace = trace_id_of(reply_id)
    return Observation(
        f"{trace}.{what}{key}", trace, "span", what, now(), attributes={"what": what}
    )


def end(ctx: Context, observation: Observation, status: str) -> None:
    observation.ended_at, observation.status = now(), status
    ctx.recorder.ended(observation)


class ToolPhase:
    """What `steps.Steps` holds, as far as the tool phase reads it."""

    ctx: Context
    chat: dict[str, Any]
    reply: dict[str, Any]
    agent: dict[str, Any] | None
    stream: str
    lease: str
    stop: asyncio.Event
    step: int
    progress: Progress
    tools: dict[str, Tool]
    lost: asyncio.Event

    @property
    def reply_id(self) -> str:
        return str(self.reply["id"])

    def taken(self) -> None:
        """The flusher found the lease taken (stopped elsewhere, or presumed dead)."""
        self.lost.set()
        self.stop.set()

    async def _publish(self, content: str = "", thinking: str = "", tool: Any = None) -> None:
        raise NotImplementedError  # steps.Steps publishes

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
        paused = await db_replies.pause_reply(
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
        ctx.recorder.started(span(self.reply_id, "approval", f".{self.step}"))
        with contextlib.suppress(FencedError):  # stopped meanwhile: the stop's final event wins
            await ctx.log.append(
                self.stream, events.message("message.updated", paused), fence=self.reply_id
            )
        self.lost.set()  # nothing more of this run: the decision starts the next
        return False

    async def _decided(self, calls: list[dict[str, Any]]) -> bool:
        """Run the approved calls of the paused step and tell the model of the denied ones."""
        end(self.ctx, span(self.reply_id, "approval", f".{self.step}"), "complete")
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
