"""The answers of the chat, message and agent routes as OpenAPI shapes (PROTOCOL.md's).

Documentation only: the routes answer plain dicts and FastAPI does not validate
them against these (`responses=`, not `response_model=`), so describing an
answer costs a request nothing. The fuzz test (`tests/security/test_fuzz.py`)
checks every answer against them. Imports nothing from gapless.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Error(BaseModel):
    code: str
    message: str
    details: list[Any] | None = None


class Chat(BaseModel):
    id: str
    account_id: str
    title: str
    model: str
    system_prompt: str | None = None  # left out of list items
    agent_id: str | None = None
    experiment_id: str | None = None  # an experiment's item runs here; not in the chat list
    created_at: str
    updated_at: str


class Message(BaseModel):
    """A Message; `parts` as PROTOCOL.md v1.1 "Parts" describes them."""

    id: str
    chat_id: str
    parent_id: str | None
    role: str
    content: str
    thinking: str
    parts: list[dict[str, Any]]
    status: str
    seq: int
    error: Error | None
    model: str | None
    usage: dict[str, int] | None
    agent_id: str | None = None
    prompt: dict[str, Any] | None = None
    created_at: str
    updated_at: str


class ChatPage(BaseModel):
    chats: list[Chat]
    next: str | None


class State(BaseModel):
    chat: Chat
    messages: list[Message]
    cursor: str


class MessageState(BaseModel):
    message: Message
    cursor: str


class Exchange(BaseModel):
    user_message: Message
    assistant_message: Message


class Agent(BaseModel):
    id: str
    account_id: str
    name: str
    description: str
    instructions: str
    model: str
    temperature: float | None
    max_tokens: int | None
    tools: list[str]
    approval: dict[str, str]
    step_limit: int
    prompt: dict[str, Any] | None = None
    created_at: str
    updated_at: str


class Agents(BaseModel):
    agents: list[Agent]


class Tools(BaseModel):
    tools: list[dict[str, Any]]


def answers(model: type[BaseModel], status: int = 200) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that answers `model` with `status`."""
    return {status: {"model": model}}
