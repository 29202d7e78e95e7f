"""Evaluators on live traces, sampled and filtered.

After every reply's run (`evals.after`), the evaluators with `sample` > 0 of
the reply's account whose filter matches it (agent, model, prompt name) and
whose draw falls under their sample score it; the scores go on its trace
(key `eval:{trace}:{evaluator}`, so a second call stores nothing new), where
review queues' "score below" rules find them. Only replies that ended
`complete` are scored, and never an experiment's (the experiment scores its
own). The common case costs nothing: which evaluators are live is read at
most once every `CACHE_SECONDS` per process (and again at once after this
process changed one), and a reply is read only when some account has one.
Imports `db`, `generation` (the context), `observe.recorder`,
`evals.evaluators`, `evals.scoring`.
"""

from __future__ import annotations

import hashlib
import time
import weakref
from collections.abc import Mapping
from typing import Any

from gapless.db import Engine
from gapless.db import evaluators as db
from gapless.evals import scoring
from gapless.evals.evaluators import Case
from gapless.generation import Context
from gapless.observe.recorder import trace_id_of

CACHE_SECONDS = 5.0
FILTER_KEYS = ("agent_id", "model", "prompt_name")
# Per engine (one per process, a few in tests): when it was read, and account -> evaluators.
# A module's cache, because the hook is given only the context, which is not ours to grow.
_cache: weakref.WeakKeyDictionary[Any, tuple[float, dict[str, list[dict[str, Any]]]]] = (
    weakref.WeakKeyDictionary()
)


def forget(engine: Engine) -> None:
    """Read the live evaluators again at the next reply (one was created or changed)."""
    _cache.pop(engine, None)


async def live_evaluators(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every account's live evaluators, as read at most `CACHE_SECONDS` ago."""
    found = _cache.get(engine)
    clock = time.monotonic()
    if found is not None and clock - found[0] < CACHE_SECONDS:
        return found[1]
    by_account: dict[str, list[dict[str, Any]]] = {}
    for evaluator in await db.live_all(engine):
        by_account.setdefault(evaluator["account_id"], []).append(evaluator)
    _cache[engine] = (clock, by_account)
    return by_account


def draw(trace_id: str, evaluator_id: str) -> float:
    """A number in [0, 1) fixed by the trace and the evaluator: uniform over traces, and the
    same however often the hook runs for one reply."""
    digest = hashlib.blake2b(f"{trace_id}:{evaluator_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def matches(wanted: Mapping[str, Any], reply: Mapping[str, Any]) -> bool:
    """Whether the reply is one the evaluator's filter asks for (an absent key: any)."""
    facts = {
        "agent_id": reply.get("agent_id"),
        "model": reply.get("model") or reply.get("chat_model"),
        "prompt_name": (reply.get("prompt") or {}).get("name"),
    }
    return all(not wanted.get(k) or wanted[k] == facts[k] for k in FILTER_KEYS)


async def reply_ended(ctx: Context, reply_id: str) -> None:
    live = await live_evaluators(ctx.engine)
    if not live:
        return
    reply = await db.reply_of(ctx.engine, reply_id)
    if reply is None or reply["status"] != "complete" or reply["experiment_id"]:
        return
    trace_id = trace_id_of(reply_id)
    chosen = [
        evaluator
        for evaluator in live.get(reply["account_id"], [])
        if matches(evaluator["filter"], reply)
        and draw(trace_id, evaluator["id"]) < float(evaluator["sample"])
    ]
    if not chosen:
        return
    case = await case_of(ctx.engine, reply)
    results = await scoring.score(ctx, reply["account_id"], chosen, case)
    await scoring.store(
        ctx.engine,
        reply["account_id"],
        results,
        key=trace_id,
        trace_id=trace_id,
        chat_id=reply["chat_id"],
        message_id=reply_id,
    )


async def case_of(engine: Engine, reply: Mapping[str, Any]) -> Case:
    """The reply as a case: the user message it answers, its text, and its model calls'
    duration, cost and tokens."""
    question = await db.text_of(engine, reply["parent_id"]) if reply["parent_id"] else None
    figures = await db.run_figures(engine, reply["id"])
    return Case(
        input={"messages": [{"role": "user", "content": question or ""}], "variables": {}},
        output=reply["content"] or "",
        metadata={
            "chat_id": reply["chat_id"],
            "reply_id": reply["id"],
            "trace_id": trace_id_of(reply["id"]),
            "model": reply.get("model") or reply.get("chat_model"),
        },
        duration_ms=figures["duration_ms"],
        cost=figures["cost"],
        tokens=figures["tokens"],
    )
