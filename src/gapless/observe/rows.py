"""What the recorder is told, turned into rows: observations, traces, roll-up increments.

Pure. `content=False` (GAPLESS_TRACE_CONTENT=false) drops every message, argument
and output before anything is stored. Imports `observe.recorder`, `observe.histogram`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from gapless.observe.histogram import bucket
from gapless.observe.recorder import Observation, Run

ERRORS = frozenset({"failed", "interrupted"})  # a cancelled (stopped) call is no error
ENDED = frozenset({"complete", "failed", "cancelled", "interrupted", "denied"})
# Attributes that have columns of their own (the rest go to the `attributes` JSON).
COLUMNS = frozenset(
    {"provider", "model", "step", "usage", "cost", "first_chunk_at", "finish_reason"}
)
CONTENT = frozenset({"input", "output", "arguments"})


def ms_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((aware(end) - aware(start)).total_seconds() * 1000, 1)


def aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def run_row(run: Run) -> dict[str, Any]:
    prompt = getattr(run, "prompt", None) or {}
    return {
        "prompt_name": prompt.get("name"),
        "prompt_version": prompt.get("version"),
        "id": run.trace_id,
        "reply_id": run.reply_id,
        "chat_id": run.chat_id,
        "account_id": run.account_id,
        "user_id": run.user_id,
        "agent_id": run.agent_id,
        "agent_name": run.agent_name,
        "model": run.model,
        "status": "running",
        "started_at": run.started_at,
    }


def merged(started: Observation | None, ended: Observation) -> Observation:
    """An observation's end, with what only its start said (a job may tell each half,
    and build the end anew: its start time is the start's)."""
    if started is None:
        return ended
    ended.attributes = {**started.attributes, **ended.attributes}
    ended.parent_id = ended.parent_id or started.parent_id
    ended.started_at = started.started_at
    return ended


def observation_row(obs: Observation, account_id: str, content: bool) -> dict[str, Any]:
    a = obs.attributes
    usage = a.get("usage") or {}
    row: dict[str, Any] = {
        "id": obs.id,
        "trace_id": obs.trace_id,
        "parent_id": obs.parent_id,
        "account_id": account_id,
        "kind": obs.kind,
        "name": obs.name[:200],
        "status": obs.status,
        "started_at": obs.started_at,
        "ended_at": obs.ended_at,
        "duration_ms": ms_between(obs.started_at, obs.ended_at),
        "ttft_ms": ms_between(obs.started_at, a.get("first_chunk_at")),
        "provider": a.get("provider"),
        "model": a.get("model"),
        "step": a.get("step"),
        "input_tokens": usage.get("input_tokens"),
        "output_tokens": usage.get("output_tokens"),
        "reasoning_tokens": usage.get("reasoning_tokens"),
        "cached_tokens": usage.get("cached_tokens"),
        "cost": a.get("cost"),
        "finish_reason": a.get("finish_reason"),
        "error_code": (obs.error or {}).get("code"),
        "error_message": (obs.error or {}).get("message"),
        "input": None,
        "output": None,
    }
    given = a.get("input") if obs.kind != "tool" else a.get("arguments")
    if content:
        shown = messages(given) if obs.kind == "generation" else given
        row["input"] = shown if isinstance(shown, str) or shown is None else _json(shown)
        output = a.get("output")
        row["output"] = output if isinstance(output, str) or output is None else _json(output)
    rest = {k: v for k, v in a.items() if k not in COLUMNS and k not in CONTENT}
    tools = getattr(given, "tools", None)
    if tools:  # the tools the model was offered, by name (their schemas are the agent's)
        rest["tools"] = [getattr(t, "name", str(t)) for t in tools]
    if not content and "tool_calls" in rest:
        rest["tool_calls"] = [_without_arguments(call) for call in rest["tool_calls"] or []]
    row["attributes"] = _json(rest) if rest else None
    return row


def _without_arguments(call: Any) -> Any:
    return {k: v for k, v in call.items() if k != "arguments"} if isinstance(call, dict) else call


def _json(value: Any) -> str:
    return json.dumps(value, default=_plain, ensure_ascii=False, separators=(",", ":"))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return aware(value).isoformat().replace("+00:00", "Z")
    if hasattr(value, "__dict__"):
        return vars(value)
    return str(value)


def messages(given: Any) -> Any:
    """A model call's input as a list of messages: a `Prompt` (system, turns) becomes
    `[{role, content, ...}]` (fields that are empty left out); anything else stays."""
    turns = getattr(given, "turns", None)
    if turns is None:
        return given
    found: list[dict[str, Any]] = []
    if getattr(given, "system", ""):
        found.append({"role": "system", "content": given.system})
    for turn in turns:
        item = {"role": turn.role, "content": turn.content}
        for name in ("tool_call_id", "name", "is_error", "thinking"):
            if getattr(turn, name, None):
                item[name] = getattr(turn, name)
        calls = getattr(turn, "tool_calls", ())
        if calls:
            item["tool_calls"] = [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls
            ]
        found.append(item)
    return found


def answer(obs: Observation) -> str | None:
    """A model call's output as text: the text parts of a reply's parts, or the text."""
    output = obs.attributes.get("output")
    if isinstance(output, list):
        text = "".join(
            "".join(p.get("text") or "")
            for p in output
            if isinstance(p, dict) and p.get("type") == "text"
        )
        return text or None
    return output if isinstance(output, str) and output else None


def question(obs: Observation) -> str | None:
    """The last user message of a model call's input (a trace's title in lists)."""
    found = messages(obs.attributes.get("input"))
    if not isinstance(found, list):
        return None
    for message in reversed(found):
        if isinstance(message, dict) and message.get("role") == "user":
            text = message.get("content")
            return text if isinstance(text, str) else _json(text)
    return None


def usage_rows(row: dict[str, Any], who: dict[str, Any]) -> list[dict[str, Any]]:
    """The roll-up increments of one ended model call: one per dimension, per hour and per
    UTC day (dims `model` and `model.day`, ...; a day's `hour` is its first hour)."""
    started = aware(row["started_at"])
    base: dict[str, Any] = {
        "hour": int(started.timestamp() // 3600),
        "account_id": who["account_id"],
        "count": 1,
        "errors": 1 if row["status"] in ERRORS else 0,
        "input_tokens": row["input_tokens"] or 0,
        "output_tokens": row["output_tokens"] or 0,
        "reasoning_tokens": row["reasoning_tokens"] or 0,
        "cached_tokens": row["cached_tokens"] or 0,
        "cost": row["cost"] or 0.0,
        "duration_ms": row["duration_ms"] or 0.0,
        "ttft_count": 1 if row["ttft_ms"] is not None else 0,
        "ttft_ms": row["ttft_ms"] or 0.0,
    }
    if row["duration_ms"] is not None:
        base[f"d{bucket(row['duration_ms'])}"] = 1
    if row["ttft_ms"] is not None:
        base[f"t{bucket(row['ttft_ms'])}"] = 1
    keys = {
        "all": "",
        "model": row["model"] or "",
        "agent": who.get("agent_id") or "",
        "user": who.get("user_id") or "",
    }
    day = base["hour"] // 24 * 24  # the same sums per UTC day, for month-long dashboards
    hourly = [{**base, "dim": dim, "key": key} for dim, key in keys.items()]
    return hourly + [{**row, "dim": row["dim"] + ".day", "hour": day} for row in hourly]


def add_into(
    total: dict[tuple[Any, ...], dict[str, Any]],
    rows: list[dict[str, Any]],
    keys: tuple[str, ...],
    sums: frozenset[str],
) -> None:
    """Sum rows that share `keys` (one upsert per roll-up row and batch, not per call).
    A usage row carries only the histogram buckets it counts (`db.usage` fills the rest)."""
    for row in rows:
        key = tuple(row[k] for k in keys)
        found = total.get(key)
        if found is None:
            total[key] = dict(row)
        else:
            for column, value in row.items():  # only the histogram buckets a row has
                if column in sums:
                    found[column] = found.get(column, 0) + value
            if "last_at" in row and row["last_at"] is not None:
                found["last_at"] = row["last_at"]


def zero_totals() -> dict[str, Any]:
    """A trace's totals before anything ended (`add_totals` adds each call that ends)."""
    return {
        "generations": 0,
        "tools": 0,
        "steps": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "reasoning_tokens": 0,
        "cached_tokens": 0,
        "cost": 0.0,
        "ttft_ms": None,
        "first": None,
    }


def add_totals(totals: dict[str, Any], row: dict[str, Any]) -> None:
    """Count one ended observation's row into its trace's totals (what `db.traces.roll_up`
    recomputes in SQL when another process saw part of the run)."""
    if row["kind"] == "tool":
        totals["tools"] += 1
        return
    if row["kind"] != "generation":
        return
    totals["generations"] += 1
    totals["steps"] = max(totals["steps"], row["step"] or totals["generations"])
    for name in ("input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens"):
        totals[name] += row[name] or 0
    totals["cost"] += row["cost"] or 0.0
    started = aware(row["started_at"])
    if totals["first"] is None or started < totals["first"]:
        totals["first"], totals["ttft_ms"] = started, row["ttft_ms"]
