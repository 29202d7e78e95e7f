"""What the model sees: the system prompt, the path's turns, and this reply's steps so far.

A reply's parts are its steps laid end to end (text and thinking, the step's
tool calls, then the next step), so they are read back into turns: each step
an `assistant` turn with its calls, each call's result a `tool` turn. Every
provider renders those in its own API's format. Pure; imports
`providers.base`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gapless.providers.base import Prompt, ToolCall, ToolSpec, Turn

ANSWERED = frozenset({"complete", "failed", "denied", "cancelled"})


def result_text(part: Mapping[str, Any]) -> tuple[str, bool]:
    """What the model is told a call gave: its output, or why it gave none (is_error)."""
    status = part.get("status")
    error = part.get("error") or {}
    if status == "complete":
        return str(part.get("output") or ""), False
    if status == "denied":
        reason = error.get("message") or "no reason given"
        return f"The user denied this tool call ({reason}).", True
    message = error.get("message") or status or "no result"
    return f"Error ({error.get('code', status)}): {message}", True


def turns_of(parts: Iterable[Mapping[str, Any]]) -> list[Turn]:
    """A reply's parts as turns: each step's text, thinking and calls, then their results."""
    turns: list[Turn] = []
    text: list[str] = []
    thinking: list[str] = []
    signature = ""
    calls: list[Mapping[str, Any]] = []

    def close_step() -> None:
        nonlocal signature
        answered = [c for c in calls if c.get("status") in ANSWERED]
        if "".join(text) or answered:  # a step of thinking alone tells the model nothing
            turns.append(
                Turn(
                    "assistant",
                    "".join(text),
                    tool_calls=tuple(
                        ToolCall(str(c["id"]), str(c["name"]), str(c.get("arguments") or ""))
                        for c in answered
                    ),
                    thinking="".join(thinking),
                    signature=signature,
                )
            )
        for call in answered:
            output, is_error = result_text(call)
            turns.append(
                Turn(
                    "tool",
                    output,
                    tool_call_id=str(call["id"]),
                    name=str(call["name"]),
                    is_error=is_error,
                )
            )
        text.clear()
        thinking.clear()
        calls.clear()
        signature = ""

    for part in parts:
        kind = part.get("type")
        if kind == "tool":
            calls.append(part)
            continue
        if calls:  # text after calls: the next step began
            close_step()
        if kind == "thinking":
            thinking.append(str(part.get("text") or ""))
            signature = str(part.get("signature") or signature)
        else:
            text.append(str(part.get("text") or ""))
    close_step()
    return turns


def build_prompt(
    chat: Mapping[str, Any],
    path: list[dict[str, Any]],
    agent: Mapping[str, Any] | None = None,
    steps: Iterable[Mapping[str, Any]] = (),
    tools: tuple[ToolSpec, ...] = (),
    tuning: Mapping[str, Any] | None = None,
) -> Prompt:
    """The agent's instructions (then the chat's system prompt), the path from the root to
    the reply's parent, and the reply's own steps so far; temperature and max tokens are the
    agent's, or without one `tuning`'s (a prompt version's config)."""
    turns: list[Turn] = []
    for message in path:
        if message["role"] == "user":
            turns.append(Turn("user", message["content"]))
        else:
            turns.extend(turns_of(message.get("parts") or []))
    turns.extend(turns_of(steps))
    system = "\n\n".join(
        text for text in ((agent or {}).get("instructions"), chat.get("system_prompt")) if text
    )
    return Prompt(
        turns=tuple(turns),
        system=system,
        max_tokens=(agent or tuning or {}).get("max_tokens"),
        temperature=(agent or tuning or {}).get("temperature"),
        tools=tools,
    )
