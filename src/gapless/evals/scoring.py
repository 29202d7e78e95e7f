"""Score a case with evaluators, and store the results as scores on a trace.

What experiments and live traces share: `score` runs each evaluator (the
judges' calls at once, each traced and costed; a regex or a JSON schema, whose
patterns run with a timeout, in a thread, so their bounded backtracking never
holds the loop) and answers one `Result` per evaluator, in their order;
whatever goes wrong in one is that result's error.
`store` writes the results that are scores (errors are not) with source
`evaluator`, once per key. Imports `db`, `generation` (the context),
`evals.evaluators`, `evals.judge`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from gapless.db import Engine
from gapless.db import evaluators as db
from gapless.evals import judge
from gapless.evals.evaluators import Case, Result, evaluate, failed
from gapless.generation import Context

logger = logging.getLogger("gapless.evals")


def key_of(key: str, evaluator_id: str) -> str:
    """The key of the score an evaluator gives on `key` (an experiment item or a trace)."""
    return f"eval:{key}:{evaluator_id}"


async def score(
    ctx: Context, account_id: str, evaluators: Sequence[Mapping[str, Any]], case: Case
) -> list[dict[str, Any]]:
    """One result per evaluator (as JSON: `Result.json()`), in the evaluators' order."""
    found = await asyncio.gather(*(_one(ctx, account_id, e, case) for e in evaluators))
    return [result.json() for result in found]


async def _one(ctx: Context, account_id: str, evaluator: Mapping[str, Any], case: Case) -> Result:
    try:
        if evaluator["kind"] == "judge":
            return await judge.judge(ctx, account_id, evaluator, case)
        if evaluator["kind"] in ("regex", "json_schema"):  # patterns: up to their timeout
            return await asyncio.to_thread(evaluate, evaluator, case)
        return evaluate(evaluator, case)
    except Exception as exc:  # one evaluator's bug is its result's error, not the run's
        logger.exception("evaluator %s failed", evaluator.get("id"))
        return failed(evaluator, f"the evaluator failed: {type(exc).__name__}: {exc}")


def _row(
    account_id: str, result: Mapping[str, Any], key: str, place: Mapping[str, str | None]
) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "name": result["name"],
        "data_type": result["data_type"],
        "value": result["value"],
        "label": result.get("label"),
        "comment": result.get("explanation"),
        "source": "evaluator",
        "author": result["evaluator_id"],
        "key": key_of(key, result["evaluator_id"]),
        **place,
    }


async def store(
    engine: Engine,
    account_id: str,
    results: Sequence[Mapping[str, Any]],
    *,
    key: str,
    trace_id: str | None,
    chat_id: str | None,
    message_id: str | None,
) -> None:
    """The results that are scores, on the trace (and reply): key `eval:{key}:{evaluator}`;
    a key written before keeps its score, so a second store of one result changes nothing."""
    place = {"trace_id": trace_id, "chat_id": chat_id, "message_id": message_id}
    rows = [
        _row(account_id, result, key, place)
        for result in results
        if result.get("error") is None and result.get("value") is not None
    ]
    await db.add_scores(engine, rows)
