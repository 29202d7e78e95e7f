"""Identifiers, clock, and rows turned into PROTOCOL.md's JSON shapes.

Ids sort by creation time (a hex clock, a counter, randomness), so "newest"
is a string comparison on every engine. Imports `stream` (pure).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from datetime import UTC, datetime
from typing import Any

from gapless.stream import parts_of

_counter = itertools.count()


def new_id(prefix: str) -> str:
    stamp = f"{time.time_ns() // 1000:014x}{next(_counter) % 4096:03x}"
    return f"{prefix}_{stamp}{os.urandom(5).hex()}"


def now() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes; they were stored as UTC
        value = value.replace(tzinfo=UTC)
    return value.isoformat().replace("+00:00", "Z")


def aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def error_json(row: Any) -> dict[str, str] | None:
    if not row.error_code:
        return None
    return {"code": row.error_code, "message": row.error_message or ""}


def message_json(row: Any) -> dict[str, Any]:
    usage = None
    if row.input_tokens is not None or row.output_tokens is not None:
        usage = {
            "input_tokens": row.input_tokens or 0,
            "output_tokens": row.output_tokens or 0,
            "reasoning_tokens": row.reasoning_tokens or 0,
        }
    return {
        "id": row.id,
        "chat_id": row.chat_id,
        "parent_id": row.parent_id,
        "role": row.role,
        "content": row.content,
        "thinking": row.thinking,
        "parts": json.loads(row.parts) if row.parts else parts_of(row.content, row.thinking),
        "status": row.status,
        "seq": row.seq,
        "error": error_json(row),
        "model": row.model,
        "usage": usage,
        "agent_id": getattr(row, "agent_id", None),
        "prompt": json.loads(row.prompt) if getattr(row, "prompt", None) else None,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def chat_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "account_id": row.account_id,
        "title": row.title,
        "model": row.model,
        "system_prompt": row.system_prompt,
        "agent_id": getattr(row, "agent_id", None),
        "experiment_id": getattr(row, "experiment_id", None),
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def _ms(start: datetime | None, end: datetime | None) -> float | None:
    start, end = aware(start), aware(end)
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() * 1000, 1)


def generation_json(row: Any) -> dict[str, Any]:
    duration = _ms(row.started_at, row.finished_at)
    streaming = _ms(row.first_token_at, row.finished_at)
    rate = None
    if streaming and row.output_tokens:
        rate = round(row.output_tokens / (streaming / 1000), 1)
    return {
        "id": row.id,
        "message_id": row.message_id,
        "chat_id": row.chat_id,
        "provider": row.provider,
        "model": row.model,
        "status": row.status,
        "started_at": iso(row.started_at),
        "first_token_at": iso(row.first_token_at),
        "finished_at": iso(row.finished_at),
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "reasoning_tokens": row.reasoning_tokens,
        "cached_tokens": getattr(row, "cached_tokens", None),
        "step": getattr(row, "step", None),
        "finish_reason": getattr(row, "finish_reason", None),
        "ttft_ms": _ms(row.started_at, row.first_token_at),
        "duration_ms": duration,
        "tokens_per_second": rate,
        "cost": row.cost,
        "deltas": row.deltas,
        "flushes": row.flushes,
        "error": error_json(row),
    }
