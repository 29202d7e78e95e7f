"""`Recorder`: what the generation job tells observability, and nothing more.

The job calls these at a run's start and end, around each model call (a
`generation`), each tool call (`tool`) and each wait (`span`: the reply's path,
an approval, the queue). Calls are plain functions that must not block or
fail: a recorder queues what it is told and writes it elsewhere, so tracing
costs the streaming path nothing. One trace per reply (`trace_id`, derived
from the reply's id, so a continuation after an approval, or the reaper,
finds the same trace). Imports nothing from gapless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

Kind = Literal["generation", "tool", "span"]


def trace_id_of(reply_id: str) -> str:
    """The trace of a reply: one per reply, whichever process records it."""
    return "trc_" + reply_id.partition("_")[2] if "_" in reply_id else "trc_" + reply_id


@dataclass
class Run:
    """A reply's run as it starts (or goes on after an approval: `resumed`)."""

    trace_id: str
    reply_id: str
    chat_id: str
    account_id: str
    user_id: str | None
    agent_id: str | None
    agent_name: str | None
    model: str
    started_at: datetime
    resumed: bool = False
    prompt: dict[str, Any] | None = None  # {name, version} the agent's instructions came from


@dataclass
class Observation:
    """One node of a trace. `attributes` by kind:

    generation: provider, model, step, settings {temperature, max_tokens}, input
      (the messages, when content capture is on), output (text), tool_calls,
      usage {input_tokens, output_tokens, reasoning_tokens, cached_tokens}, cost,
      first_chunk_at (datetime), finish_reason
    tool: tool name, call_id, arguments (JSON text), output, step
    span: what was waited for (`path`, `approval`, `queue`)
    """

    id: str
    trace_id: str
    kind: Kind
    name: str
    started_at: datetime
    parent_id: str | None = None
    ended_at: datetime | None = None
    status: str = "running"  # running | complete | failed | cancelled | interrupted | denied
    error: dict[str, str] | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


class Recorder(Protocol):
    def run_started(self, run: Run) -> None: ...

    def started(self, observation: Observation) -> None: ...

    def ended(self, observation: Observation) -> None: ...

    def run_ended(
        self, trace_id: str, status: str, error: dict[str, str] | None, ended_at: datetime
    ) -> None:
        """The run ended (complete, failed, cancelled, or paused `requires_action`); every
        observation of the trace still open ends with that status (a run that died)."""
        ...


class NullRecorder:
    """Records nothing (tests of the streaming core, and before observability is wired)."""

    def run_started(self, run: Run) -> None:
        return None

    def started(self, observation: Observation) -> None:
        return None

    def ended(self, observation: Observation) -> None:
        return None

    def run_ended(
        self, trace_id: str, status: str, error: dict[str, str] | None, ended_at: datetime
    ) -> None:
        return None
