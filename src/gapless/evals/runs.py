"""How an experiment's items run: started under the concurrency limit, ended by the
after-reply hook, taken over by the janitor's sweep, stopped.

An item is a reply. Starting one writes, in one transaction, a chat of the
experiment's own, the item's input messages and a pending reply, then submits
the reply to the runner: the same queue and workers as every reply, its tools,
trace and cost like any. When the reply ends, `reply_ended` (the job's hook,
in the worker) claims the item, scores it, stores its result with the
experiment's counters, and starts the next items under the concurrency limit.
`sweep` (every process's janitor) does the same for whatever a dead process
left: a reply the reaper ended `interrupted` gets a new attempt (at most
`ATTEMPTS`), a stale `scoring` claim is taken over, a reply never submitted is
submitted. A finished item is never run again: every move of an item is
conditional on the state it moves from (`db.experiment_moves`). Imports `db`,
`errors`, `events`, `generation`, `jobs.base`, `log`, `observe.recorder`,
`evals.prompts`, `evals.evaluators`, `evals.judge`, `evals.scoring`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from gapless import events
from gapless.db import agents as db_agents
from gapless.db import chats as db_chats
from gapless.db import evaluators as db_evaluators
from gapless.db import experiment_moves as moves
from gapless.db import experiments as db
from gapless.db.rows import now
from gapless.errors import GaplessError
from gapless.evals import prompts, scoring
from gapless.evals.evaluators import Case, failed, kept
from gapless.evals.judge import CALL_SECONDS
from gapless.generation import Context, end_unstarted, retrying
from gapless.jobs.base import Runner
from gapless.log.base import account_stream
from gapless.observe.recorder import trace_id_of

logger = logging.getLogger("gapless.evals")
ATTEMPTS = 3  # runs of one item whose worker died, before the item fails
# a `scoring` claim older than this lost its process: a live scorer may wait a judge's
# longest call (the judges answer at once), so a claim is older only when its process died
STALE = timedelta(seconds=CALL_SECONDS + 60)
UNSUBMITTED = timedelta(seconds=30)  # a reply still pending, unleased: submitted again
FINAL = ("complete", "failed", "cancelled")
APPROVAL = {
    "code": "approval_required",
    "message": "A tool call awaited approval; an experiment's runs cannot be approved.",
}
GONE = {"code": "reply_deleted", "message": "The item's reply was deleted."}
ORPHANED = {"code": "unknown_agent", "message": "The experiment's agent was deleted."}


def announcer(ctx: Context) -> moves.Announce:
    async def announce(account_id: str, payload: dict[str, Any]) -> None:
        event = events.make("experiment.updated", payload)
        await ctx.log.append(account_stream(account_id), event)

    return announce


# ---- the hook and the sweep --------------------------------------------------------------


async def reply_ended(ctx: Context, runner: Runner, reply_id: str) -> None:
    """After a reply's run: when it is an experiment item's, that item moves on."""
    item = await db.of_reply(ctx.engine, reply_id)
    if item is not None:
        await ended(ctx, runner, item)


async def sweep(ctx: Context, runner: Runner) -> None:
    """Move every open experiment on (one indexed query when there is none)."""
    for experiment_id in await db.open_ids(ctx.engine):
        try:
            await _sweep_one(ctx, runner, experiment_id)
        except Exception:
            logger.exception("sweeping experiment %s failed", experiment_id)


async def _sweep_one(ctx: Context, runner: Runner, experiment_id: str) -> None:
    experiment = await db.get_experiment(ctx.engine, experiment_id)
    if experiment is None:
        return
    stopping = experiment["status"] == "stopping"
    moment = now()
    for attempt in await db.in_flight(ctx.engine, experiment_id):
        item, status = attempt.item, attempt.reply_status
        claimed = attempt.claimed_at or moment
        if item["status"] == "scoring":
            if moment - claimed > STALE and await moves.take_over(
                ctx.engine, item["id"], attempt.claimed_at
            ):
                await _score(ctx, runner, item, experiment)
        elif status is None or status in FINAL or status == "requires_action":
            await ended(ctx, runner, item)
        elif stopping:
            await halt(ctx, runner, [item["reply_id"]])
        elif status == "pending" and not attempt.leased and moment - claimed > UNSUBMITTED:
            await moves.touch(ctx.engine, item["id"])  # its process died before it submitted
            await runner.submit(item["reply_id"])
    await moved_on(ctx, runner, experiment)


async def moved_on(ctx: Context, runner: Runner, experiment: Mapping[str, Any]) -> None:
    """Start the next items of a running experiment (of a queued one, begun first), or end a
    stopping one that has nothing left in flight (an item's result ends it already: this is
    for the sweep and a stop)."""
    if experiment["status"] == "queued":  # its creator died before it began
        await moves.begin(ctx.engine, experiment["id"], announcer(ctx))
        await fill(ctx, runner, experiment["id"])
    elif experiment["status"] == "running":
        await fill(ctx, runner, experiment["id"])
    elif experiment["status"] == "stopping":
        await moves.settle(ctx.engine, experiment["id"], announcer(ctx))


async def ended(ctx: Context, runner: Runner, item: Mapping[str, Any]) -> None:
    """The item's reply has ended (or paused, or is gone): its result, a new attempt, or its
    stop; then the experiment moves on."""
    try:
        reply: dict[str, Any] | None = (await db_chats.get_message(ctx.engine, item["reply_id"]))[0]
    except KeyError:  # its chat was deleted under it
        reply = None
    # the run after its reply: a stop marks the run `stopping` before it stops the replies, so
    # a reply the stop cancelled is always seen with its run stopping (a failure otherwise)
    experiment = await db.get_experiment(ctx.engine, item["experiment_id"])
    if experiment is None:
        return
    announce = announcer(ctx)
    if reply is None:
        await moves.finish(ctx.engine, item, ("running",), "failed", announce, error=GONE)
        await moved_on(ctx, runner, experiment)
        return
    if reply["status"] == "requires_action":
        await end_unstarted(ctx, reply["id"], "failed", APPROVAL)
        reply, _ = await db_chats.get_message(ctx.engine, reply["id"])
    if reply["status"] not in FINAL:
        return
    error = reply["error"] or {}
    stopping = experiment["status"] in ("stopping", "stopped")
    if reply["status"] == "complete":
        if await moves.claim(ctx.engine, item, announce):
            await _score(ctx, runner, item, experiment)
        return
    if stopping and (reply["status"] == "cancelled" or error.get("code") == "interrupted"):
        await moves.finish(ctx.engine, item, ("running",), "stopped", announce)
    elif error.get("code") == "interrupted" and item["attempt"] < ATTEMPTS:
        if not await _orphaned(ctx, reply):
            await _retry(ctx, runner, item, reply)
            return
        await moves.finish(ctx.engine, item, ("running",), "failed", announce, error=ORPHANED)
    else:
        failure = reply["error"] or {"code": "cancelled", "message": "The reply was stopped."}
        figures = await db_evaluators.run_figures(ctx.engine, reply["id"])
        await moves.finish(
            ctx.engine, item, ("running",), "failed", announce, error=failure, **figures
        )
    await moved_on(ctx, runner, experiment)


async def _retry(
    ctx: Context, runner: Runner, item: Mapping[str, Any], reply: Mapping[str, Any]
) -> None:
    """A new reply to the same message, in the item's chat, as its next attempt."""
    fresh = db_chats.message_values(
        reply["chat_id"],
        reply["parent_id"],
        "assistant",
        status="pending",
        model=reply["model"],
        agent_id=reply["agent_id"],
        prompt=_prompt_json(reply["prompt"]),
        user_id=await _asker(ctx, reply["id"]),
    )
    if await moves.retry(ctx.engine, item, fresh, trace_id_of(fresh["id"]), announcer(ctx)):
        logger.info("item %s: attempt %d after an interruption", item["id"], item["attempt"] + 1)
        await runner.submit(fresh["id"])


async def _orphaned(ctx: Context, reply: Mapping[str, Any]) -> bool:
    """Whether the reply's agent was deleted: a new attempt would run as a bare model call
    (no instructions, no tools), scored as the agent's answer."""
    agent_id = reply["agent_id"]
    return bool(agent_id) and await db_agents.get_agent(ctx.engine, agent_id) is None


async def _asker(ctx: Context, reply_id: str) -> str | None:
    found = await db_chats.reply_context(ctx.engine, reply_id)
    return found[1][-1].get("user_id") if found else None


async def _score(
    ctx: Context, runner: Runner, item: Mapping[str, Any], experiment: Mapping[str, Any]
) -> None:
    """Score the claimed item's reply, store the scores (once per key) and its result; a
    score a dead scorer stored is kept, so the item's result is the one on its trace."""
    account_id = experiment["account_id"]
    try:
        reply, _ = await db_chats.get_message(ctx.engine, item["reply_id"])
    except KeyError:  # its chat was deleted since the claim: a result, or it scores forever
        await moves.finish(ctx.engine, item, ("scoring",), "failed", announcer(ctx), error=GONE)
        await moved_on(ctx, runner, experiment)
        return
    figures = await db_evaluators.run_figures(ctx.engine, item["reply_id"])
    case = Case(
        input=item["input"] or {},
        output=reply["content"],
        expected=item["expected"],
        metadata=item["metadata"],
        **figures,
    )
    status, values = "done", {"output": reply["content"], **figures}
    try:
        ids = experiment["evaluators"]
        found = [
            _pinned(e, experiment)
            for e in await retrying(lambda: db_evaluators.get_many(ctx.engine, ids))
        ]
        keys = {e["id"]: scoring.key_of(item["id"], e["id"]) for e in found}
        done = await retrying(lambda: db_evaluators.keyed_scores(ctx.engine, [*keys.values()]))
        todo = [e for e in found if keys[e["id"]] not in done]  # a dead scorer's stay
        fresh = await scoring.score(ctx, account_id, todo, case)
        stored = [kept(e, done[keys[e["id"]]]).json() for e in found if keys[e["id"]] in done]
        results = _with_deleted(ids, [*fresh, *stored])
        await retrying(  # a database away for a moment is no reason to fail the item
            lambda: scoring.store(
                ctx.engine,
                account_id,
                results,
                key=item["id"],
                trace_id=item["trace_id"],
                chat_id=item["chat_id"],
                message_id=item["reply_id"],
            )
        )
        values["scores"] = results
    except Exception as exc:
        logger.exception("scoring item %s failed", item["id"])
        status = "failed"
        values["error"] = {"code": "scoring_failed", "message": f"{type(exc).__name__}: {exc}"}
    if duration := values.get("duration_ms"):
        values["duration_ms"] = round(duration)
    await moves.finish(ctx.engine, item, ("scoring",), status, announcer(ctx), **values)
    await moved_on(ctx, runner, experiment)


def _pinned(evaluator: dict[str, Any], experiment: Mapping[str, Any]) -> dict[str, Any]:
    """A judge's rubric as its label stood when the run started: a label moved mid-run
    would mix rubric versions in one run's scores (a reply, likewise, keeps the prompt
    version it started with)."""
    prompt = (evaluator.get("config") or {}).get("prompt") or {}
    started = experiment.get("started_at")
    if evaluator["kind"] != "judge" or prompt.get("version") or not started:
        return evaluator
    as_of = {**prompt, "as_of": datetime.fromisoformat(started)}
    return {**evaluator, "config": {**evaluator["config"], "prompt": as_of}}


def _with_deleted(ids: list[str], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One result per evaluator the run started with, in its order: one deleted since is an
    error (left out, its item would pass on fewer checks than its run's other items)."""
    by_id = {r["evaluator_id"]: r for r in results}
    gone = "the evaluator was deleted during the run"
    return [
        by_id.get(i) or failed({"id": i, "name": i, "kind": "deleted"}, gone).json() for i in ids
    ]


# ---- starting items ----------------------------------------------------------------------


async def fill(ctx: Context, runner: Runner, experiment_id: str) -> None:
    """Start pending items while the concurrency limit has room (an item that cannot start,
    a template its variables do not render, fails and frees its place at once)."""
    while True:
        candidates = await db.pending(ctx.engine, experiment_id)
        if not candidates:
            return
        experiment = await db.get_experiment(ctx.engine, experiment_id)
        if experiment is None:
            return
        starts = [await _start(ctx, experiment, item) for item in candidates]
        started, failed = await moves.start_items(ctx.engine, experiment_id, starts, announcer(ctx))
        for reply_id in started:
            await runner.submit(reply_id)
        if not failed:
            return


async def _start(
    ctx: Context, experiment: Mapping[str, Any], item: Mapping[str, Any]
) -> moves.Start:
    """The chat, messages and pending reply of an item's first attempt."""
    target = experiment["target"]
    account_id = experiment["account_id"]
    agent_id = target.get("agent_id")
    used: dict[str, Any] | None = None
    system = ""
    try:
        if agent_id:
            agent = await db_agents.get_agent(ctx.engine, agent_id)
            if agent is None or agent["account_id"] != account_id:
                raise GaplessError(ORPHANED["message"], code=ORPHANED["code"])
            model = target.get("model") or agent["model"]
        else:
            variables = (item["input"] or {}).get("variables") or {}
            ref = {**target["prompt"], "variables": variables}
            system, used = await prompts.resolve_instructions(ctx.engine, account_id, ref)
            model = target["model"]
    except GaplessError as exc:
        return moves.Start(item["id"], error={"code": exc.code, "message": exc.message})
    title = f"{experiment['name']} #{item['position'] + 1}"
    chat = db.chat_row(account_id, experiment["id"], title, model, system, agent_id)
    rows: list[dict[str, Any]] = []
    asker = experiment["created_by"]
    for message in (item["input"] or {}).get("messages") or []:
        parent = rows[-1]["id"] if rows else None
        role = "user" if message.get("role") == "user" else "assistant"
        extra = {"user_id": asker} if role == "user" else {"model": model}
        content = str(message["content"])
        rows.append(
            db_chats.message_values(
                chat["id"], parent, role, content=content, status="complete", **extra
            )
        )
    reply = db_chats.message_values(
        chat["id"],
        rows[-1]["id"] if rows else None,
        "assistant",
        status="pending",
        model=model,
        agent_id=agent_id,
        prompt=_prompt_json(used),
        user_id=asker,
    )
    return moves.Start(item["id"], trace_id_of(reply["id"]), chat, [*rows, reply])


def _prompt_json(used: Mapping[str, Any] | None) -> str | None:
    return json.dumps({"name": used["name"], "version": used["version"]}) if used else None


# ---- stopping ----------------------------------------------------------------------------


async def halt(ctx: Context, runner: Runner, reply_ids: list[str]) -> None:
    """Stop these replies wherever they run (ended `cancelled`), or end them when no run
    holds them (still queued)."""

    async def one(reply_id: str) -> None:
        if not await runner.stop(reply_id):
            await end_unstarted(ctx, reply_id, "cancelled", None)

    await asyncio.gather(*(one(r) for r in reply_ids))


async def stop(ctx: Context, runner: Runner, experiment_id: str) -> None:
    """Pending items stop at once; running items' replies are stopped, then their items."""
    replies = await moves.stop(ctx.engine, experiment_id, announcer(ctx))
    await halt(ctx, runner, replies)
    for attempt in await db.in_flight(ctx.engine, experiment_id):
        if attempt.item["status"] == "running":
            await ended(ctx, runner, attempt.item)
    await moves.settle(ctx.engine, experiment_id, announcer(ctx))
