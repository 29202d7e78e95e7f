"""The HTTP resources of PROTOCOL.md. Thin: parse, authorise via `chats`, answer JSON.

Imports `chats`, `accounts`, `runtime`, `web.*`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from gapless.db import generations as db_generations
from gapless.web import shapes
from gapless.web.deps import CallerDep, RuntimeDep
from gapless.web.shapes import answers

router = APIRouter(prefix="/api")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ChatFields(Strict):
    title: str | None = Field(default=None, max_length=200)
    model: str | None = Field(default=None, max_length=200)
    system_prompt: str | None = Field(default=None, max_length=20_000)
    agent_id: str | None = Field(default=None, max_length=40)  # null clears it (PATCH)


class NewChat(ChatFields):
    account_id: str | None = None


class NewMessage(Strict):
    content: str
    parent_id: str | None = None
    model: str | None = Field(default=None, max_length=200)


def given(body: BaseModel) -> dict[str, Any]:
    """Only the fields the client sent (so `"parent_id": null` differs from no key)."""
    return {name: getattr(body, name) for name in body.model_fields_set}


@router.get("/chats", responses=answers(shapes.ChatPage))
async def list_chats(
    runtime: RuntimeDep,
    caller: CallerDep,
    cursor: str | None = Query(default=None, max_length=600),
    limit: int = Query(default=50, ge=1, le=200),
) -> dict[str, Any]:
    """A page of the chats the caller sees, newest first, without their system prompts;
    `next` is the cursor of the following page (null at the end)."""
    return await runtime.chats.visible(caller, cursor, limit)


@router.post("/chats", status_code=201, responses=answers(shapes.Chat, 201))
async def create_chat(body: NewChat, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    return await runtime.chats.create(caller, given(body))


@router.get("/chats/{chat_id}", responses=answers(shapes.State))
async def get_chat(chat_id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    return await runtime.chats.state(caller, chat_id)


@router.patch("/chats/{chat_id}", responses=answers(shapes.Chat))
async def patch_chat(
    chat_id: str, body: ChatFields, runtime: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    return await runtime.chats.update(
        caller,
        chat_id,
        {k: v for k, v in given(body).items() if v is not None or k == "agent_id"},
    )


@router.delete("/chats/{chat_id}", status_code=204)
async def delete_chat(chat_id: str, runtime: RuntimeDep, caller: CallerDep) -> Response:
    await runtime.chats.delete(caller, chat_id)
    return Response(status_code=204)


@router.post("/chats/{chat_id}/messages", status_code=201, responses=answers(shapes.Exchange, 201))
async def post_message(
    chat_id: str, body: NewMessage, runtime: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    return await runtime.chats.post(caller, chat_id, given(body))


@router.get("/messages/{message_id}", responses=answers(shapes.MessageState))
async def get_message(message_id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    return await runtime.chats.message(caller, message_id)


@router.post("/messages/{message_id}/stop", responses=answers(shapes.Message))
async def stop_message(message_id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    return await runtime.chats.stop(caller, message_id)


@router.post(
    "/messages/{message_id}/retry", status_code=201, responses=answers(shapes.Message, 201)
)
async def retry_message(message_id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    return await runtime.chats.retry(caller, message_id)


@router.delete("/messages/{message_id}", status_code=204)
async def delete_message(message_id: str, runtime: RuntimeDep, caller: CallerDep) -> Response:
    await runtime.chats.delete_message(caller, message_id)
    return Response(status_code=204)


@router.get("/models")
async def models(runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    return {
        "models": [
            {"id": m.id, "provider": m.provider, "name": m.name, "label": m.label or m.id}
            for m in runtime.chats.models()
        ],
        "default": runtime.chats.default_model,
    }


@router.get("/generations")
async def generations(
    runtime: RuntimeDep,
    caller: CallerDep,
    chat_id: str | None = None,
    model: str | None = None,
    before: str | None = None,
    limit: int = Query(default=50, ge=1, le=200),
) -> dict[str, Any]:
    if chat_id is not None:
        await runtime.chats.chat(caller, chat_id)
    items = await db_generations.list_generations(
        runtime.engine,
        None if caller.site_admin else sorted(caller.account_ids),
        chat_id=chat_id,
        model=model,
        before=before,
        limit=limit,
    )
    return {"generations": items, "next": items[-1]["id"] if len(items) == limit else None}
