"""The LLM judge: a versioned prompt (the rubric) asks a model for a verdict on a case.

The rubric is a prompt version rendered in the sandbox with `input`, `output`,
`expected`, `metadata` (and `messages`); it is the judge's message, and the
system prompt says the one answer we accept: a JSON object `{"score": 0..1,
"label"?: str, "explanation": str}`, alone or in a single ```json fence. Anything else is an
evaluator error "not a verdict: ...", never a score; so is a provider error.
The call goes through our providers and is recorded like a reply's model call:
a trace of its own (agent name `judge {evaluator}`, chat id the evaluator's id,
no reply), one generation observation with its usage and cost.
Imports `errors`, `generation` (the context), `db.rows`, `evals.prompts`,
`evals.evaluators`, `observe.recorder`, `providers.base`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gapless.db.rows import new_id, now
from gapless.errors import GaplessError
from gapless.evals.evaluators import Case, Result, failed, judged
from gapless.evals.prompts import resolve_instructions
from gapless.generation import Context, usage_json
from gapless.observe.recorder import Observation, Run
from gapless.providers.base import Finish, Prompt, Text, Turn, Usage, split_model

CALL_SECONDS = 120.0  # a judge that has not answered by then is an evaluator error
MAX_ANSWER = 20_000  # characters of a verdict: a longer answer is not one
VERDICT_KEYS = frozenset({"score", "label", "explanation"})
FENCE = re.compile(r"```(?:json)?[ \t]*\n(.*?)\n?[ \t]*```", re.DOTALL | re.IGNORECASE)
FORMAT = (
    "You are a judge: grade the answer you are shown by the rubric you are given. "
    "Answer with ONLY a JSON object, nothing before or after it: "
    '{"score": <a number from 0 to 1>, "label": <optional short text>, '
    '"explanation": <one or two sentences>}'
)


class VerdictError(ValueError):
    """The judge's answer is not a verdict (the message says why)."""


def parse_verdict(text: str) -> dict[str, Any]:
    """{score, label, explanation} from the judge's answer, strictly: one JSON object, alone
    or in one ```json fence; `VerdictError` otherwise."""
    body = text.strip()
    if len(body) > MAX_ANSWER:
        raise VerdictError(f"an answer of over {MAX_ANSWER} characters")
    if body.startswith("```"):
        fenced = FENCE.fullmatch(body)
        if fenced is None or "```" in fenced.group(1):
            raise VerdictError("not one ```json fence around the object")
        body = fenced.group(1).strip()
    if not body.startswith("{"):
        raise VerdictError(f"not a JSON object: {_excerpt(body)}")
    try:
        found = json.loads(body, parse_constant=_constant, object_pairs_hook=_unique)
    except VerdictError:
        raise
    except (ValueError, RecursionError) as exc:
        raise VerdictError(f"not one JSON object ({exc}): {_excerpt(body)}") from None
    if not isinstance(found, dict):
        raise VerdictError("not a JSON object")
    extra = sorted(set(found) - VERDICT_KEYS)
    if extra:
        raise VerdictError(f"unexpected keys {', '.join(extra)}")
    score = found.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise VerdictError("score is missing" if score is None else "score is not a number")
    if not math.isfinite(score) or not 0 <= score <= 1:
        raise VerdictError(f"score {score!r} is not from 0 to 1")
    explanation = found.get("explanation")
    if not isinstance(explanation, str) or not explanation.strip():
        raise VerdictError("explanation is missing or not a text")
    label = found.get("label")
    if label is not None and not isinstance(label, str):
        raise VerdictError("label is not a text")
    return {"score": float(score), "label": label or None, "explanation": explanation.strip()}


def _constant(name: str) -> Any:
    raise VerdictError(f"{name} is not a number")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise VerdictError("a key given twice")
    return dict(pairs)


def _excerpt(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def variables(case: Case) -> dict[str, Any]:
    """What a rubric may read: the input as text (the one message, or every message as
    `role: content` lines), the output, the expected output ("" when none), the metadata,
    and the messages themselves."""
    found = case.input.get("messages") if isinstance(case.input, Mapping) else None
    turns = [m for m in found or [] if isinstance(m, Mapping)]
    if len(turns) == 1:
        text = str(turns[0].get("content") or "")
    else:
        text = "\n\n".join(f"{m.get('role')}: {m.get('content')}" for m in turns)
    return {
        "input": text,
        "output": case.output,
        "expected": case.expected if case.expected is not None else "",
        "metadata": dict(case.metadata),
        "messages": [dict(m) for m in turns],
    }


async def judge(ctx: Context, account_id: str, evaluator: Mapping[str, Any], case: Case) -> Result:
    """The judge's verdict on `case` as a numeric result (passed: score >= `pass`), or an
    evaluator error; never raises for a bad answer or a failing model."""
    config = evaluator.get("config") or {}
    ref = {**dict(config.get("prompt") or {}), "variables": variables(case)}
    try:
        rubric, used = await resolve_instructions(ctx.engine, account_id, ref)
        provider_name, model = split_model(str(config.get("model") or ""))
    except GaplessError as exc:
        return failed(evaluator, f"the judge cannot start: {exc.message}")
    provider = ctx.providers.get(provider_name)
    if provider is None:
        return failed(evaluator, f"model {config.get('model')} is not enabled here")
    prompt = Prompt(turns=(Turn("user", rubric),), system=FORMAT)
    call = _Call(ctx, account_id, evaluator, str(config["model"]), used)
    answer = await call.run(provider.stream(model, prompt), prompt, provider_name)
    if isinstance(answer, Result):
        return answer
    try:
        verdict = parse_verdict(answer)
    except VerdictError as exc:
        call.close(verdict_error=str(exc))
        return failed(evaluator, f"not a verdict: {exc}")
    call.close(verdict=verdict)
    return Result(
        str(evaluator["id"]),
        str(evaluator["name"]),
        "numeric",
        value=verdict["score"],
        label=verdict["label"],
        explanation=verdict["explanation"],
        passed=judged(evaluator, verdict["score"]),
    )


class _Call:
    """One traced judge call: a run of its own and its generation observation."""

    def __init__(
        self,
        ctx: Context,
        account_id: str,
        evaluator: Mapping[str, Any],
        model_id: str,
        used: dict[str, Any],
    ) -> None:
        self.ctx, self.evaluator, self.model_id = ctx, evaluator, model_id
        self.trace_id = new_id("trc")
        self.run_info = Run(
            self.trace_id,
            "",  # no reply: the judge is not a chat's turn
            str(evaluator["id"]),  # its calls add up under the evaluator, not a user's chat
            account_id,
            None,
            None,
            f"judge {evaluator['name']}",
            model_id,
            now(),
            prompt=used,
        )
        self.observation: Observation | None = None
        self.status = "complete"
        self.error: dict[str, str] | None = None

    async def run(self, chunks: Any, prompt: Prompt, provider_name: str) -> str | Result:
        """The model's text, or an error result (the call is recorded either way)."""
        ctx = self.ctx
        ctx.recorder.run_started(self.run_info)
        observation = Observation(
            new_id("gen"),
            self.trace_id,
            "generation",
            f"judge {self.model_id.partition(':')[2]}",
            now(),
            attributes={
                "provider": provider_name,
                "model": self.model_id,
                "step": 1,
                "settings": {"temperature": None, "max_tokens": None},
                "input": prompt,
                "evaluator_id": self.evaluator["id"],
            },
        )
        ctx.recorder.started(observation)
        self.observation = observation
        text: list[str] = []
        usage: Usage | None = None
        reason: str | None = None
        first_at: datetime | None = None
        size = 0
        result: str | Result
        try:
            async with asyncio.timeout(CALL_SECONDS):
                async for chunk in chunks:
                    if isinstance(chunk, Text) and chunk.text:
                        first_at = first_at or now()
                        text.append(chunk.text)
                        size += len(chunk.text)
                        if size > MAX_ANSWER:
                            break
                    elif isinstance(chunk, Usage):
                        usage = chunk
                    elif isinstance(chunk, Finish):
                        reason = chunk.reason
            result = "".join(text)
        except GaplessError as exc:
            self.status, self.error = "failed", {"code": exc.code, "message": exc.message}
            result = failed(self.evaluator, f"the judge's model failed: {exc.message}")
        except TimeoutError:
            self.status = "failed"
            self.error = {"code": "timeout", "message": f"no answer in {CALL_SECONDS:g} s"}
            result = failed(
                self.evaluator, f"the judge's model gave no answer in {CALL_SECONDS:g} s"
            )
        except Exception as exc:  # a provider bug is this evaluator's error, not the worker's
            self.status = "failed"
            self.error = {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}
            result = failed(self.evaluator, f"the judge's call failed: {type(exc).__name__}")
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
        cost = ctx.cost(self.model_id, usage) if usage else None
        observation.ended_at, observation.status = now(), self.status
        observation.error = self.error
        observation.attributes.update(
            usage=_usage(usage),
            cost=cost,
            first_chunk_at=first_at,
            finish_reason=reason,
            output="".join(text),
        )
        if isinstance(result, Result):
            self.close()
        return result

    def close(self, **outcome: Any) -> None:
        """End the observation (with the parsed verdict or why it is none) and the run."""
        assert self.observation is not None
        self.observation.attributes.update(outcome)
        self.ctx.recorder.ended(self.observation)
        self.ctx.recorder.run_ended(self.trace_id, self.status, self.error, now())


def _usage(usage: Usage | None) -> dict[str, int] | None:
    """As a reply's model call records it: `usage_json`, and its cached tokens."""
    found = usage_json(usage)
    if found is not None and usage is not None:
        found["cached_tokens"] = usage.cached_tokens
    return found
