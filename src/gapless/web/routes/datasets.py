"""Datasets (`/api/datasets`), their items, imports and "add to dataset" from a reply, and
the datasets pages. Thin: parse, call `evals.datasets`, answer JSON. Included by
`web.routes.evals`. Imports `evals.datasets`, `web.deps`, `web.shapes`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from gapless.evals.datasets import Datasets
from gapless.web.api import Strict
from gapless.web.deps import CallerDep, RuntimeDep
from gapless.web.shapes import answers

router = APIRouter(tags=["evaluations"])
STATIC = Path(__file__).resolve().parents[1] / "static"
Metadata = dict[str, Any]  # any JSON object


class ChatMessage(Strict):
    role: Literal["user", "assistant"]
    content: str = Field(min_length=1, max_length=100_000)


class ItemInput(Strict):
    """The conversation an item sends (the last message the user's) and the variables a
    prompt target renders with."""

    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    variables: dict[str, str] | None = Field(default=None, max_length=100)


class NewItem(Strict):
    input: str | ItemInput = Field(description="text (one user message) or the conversation")
    expected: str | None = Field(default=None, max_length=100_000, description="expected output")
    metadata: Metadata | None = None


class ItemPatch(Strict):
    """The fields to change; `expected` or `metadata` null clears it."""

    input: str | ItemInput | None = None
    expected: str | None = Field(default=None, max_length=100_000)
    metadata: Metadata | None = None


class NewDataset(Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5_000)
    account_id: str | None = Field(default=None, max_length=40)


class DatasetPatch(Strict):
    """The fields to change; `baseline_id` is an experiment of this dataset (null clears)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5_000)
    baseline_id: str | None = Field(default=None, max_length=40)


class Import(Strict):
    """JSONL: one object `{input, expected?, metadata?}` a line. CSV: a header row; an `input`
    column, `expected` and `metadata` (a JSON object) optional, any other column a variable."""

    format: Literal["jsonl", "csv"]
    text: str


class FromReply(Strict):
    message_id: str = Field(max_length=40, description="the reply (an assistant message)")


class Item(BaseModel):
    id: str
    dataset_id: str
    input: dict[str, Any]  # {messages: [{role, content}], variables: {name: text}}
    expected: str | None
    metadata: dict[str, Any]
    source_reply_id: str | None
    status: Literal["active", "archived"]
    created_at: str
    updated_at: str


class Dataset(BaseModel):
    id: str
    account_id: str
    name: str
    description: str
    baseline_id: str | None
    items: int = Field(description="how many active items")
    created_by: str | None
    created_at: str
    updated_at: str


class DatasetDetail(Dataset):
    items: list[Item]  # type: ignore[assignment]  # the detail lists them
    count: int


class DatasetList(BaseModel):
    datasets: list[Dataset]


class Imported(BaseModel):
    imported: int
    items: list[Item]


@router.get("/api/datasets", responses=answers(DatasetList))
async def list_datasets(runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """The caller's datasets, by name, each with how many active items it has."""
    return {"datasets": await Datasets(runtime.engine).visible(caller)}


@router.post("/api/datasets", status_code=201, responses=answers(Dataset, 201))
async def create_dataset(
    body: NewDataset, runtime: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    """A dataset (in the caller's only account unless `account_id` says; 409 `name_taken`)."""
    return await Datasets(runtime.engine).create(caller, body.model_dump())


@router.get("/api/datasets/{dataset_id}", responses=answers(DatasetDetail))
async def get_dataset(
    dataset_id: str,
    runtime: RuntimeDep,
    caller: CallerDep,
    archived: bool = Query(default=False, description="include archived items"),
) -> dict[str, Any]:
    """The dataset with its items in the order they were added (active ones, or all)."""
    return await Datasets(runtime.engine).detail(caller, dataset_id, archived)


@router.patch("/api/datasets/{dataset_id}", responses=answers(Dataset))
async def update_dataset(
    dataset_id: str, body: DatasetPatch, runtime: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    """Rename, describe, or mark the baseline run the comparison measures against."""
    return await Datasets(runtime.engine).update(
        caller, dataset_id, body.model_dump(exclude_unset=True)
    )


@router.delete("/api/datasets/{dataset_id}", status_code=204)
async def delete_dataset(dataset_id: str, runtime: RuntimeDep, caller: CallerDep) -> Response:
    """The dataset with its items and its experiments (409 `running` while one runs)."""
    await Datasets(runtime.engine).delete(caller, dataset_id)
    return Response(status_code=204)


@router.post("/api/datasets/{dataset_id}/items", status_code=201, responses=answers(Item, 201))
async def add_item(
    dataset_id: str, body: NewItem, runtime: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    """An item by hand; a text input is one user message."""
    return await Datasets(runtime.engine).add_item(
        caller, dataset_id, body.model_dump(exclude_unset=True)
    )


@router.post(
    "/api/datasets/{dataset_id}/import",
    status_code=201,
    responses=answers(Imported, 201),
)
async def import_items(
    dataset_id: str, body: Import, runtime: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    """Every row of a JSONL or CSV text as an item, in one transaction; any bad row refuses
    the whole text (422 `bad_rows`, every bad line in `details`, nothing imported). At most
    5,000 rows and 250,000 characters (413)."""
    return await Datasets(runtime.engine).import_items(caller, dataset_id, body.format, body.text)


@router.post(
    "/api/datasets/{dataset_id}/items/from-reply",
    status_code=201,
    responses=answers(Item, 201),
)
async def item_from_reply(
    dataset_id: str, body: FromReply, runtime: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    """ "Add to dataset": the reply's conversation up to its question as the input, its text
    as the expected output, `{chat_id, trace_id, model}` as metadata. The reply's chat is in
    the dataset's account (404 otherwise)."""
    return await Datasets(runtime.engine).from_reply(caller, dataset_id, body.message_id)


@router.patch("/api/datasets/{dataset_id}/items/{item_id}", responses=answers(Item))
async def update_item(
    dataset_id: str, item_id: str, body: ItemPatch, runtime: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    """Change an item's input, expected output or metadata."""
    return await Datasets(runtime.engine).update_item(
        caller, dataset_id, item_id, body.model_dump(exclude_unset=True)
    )


@router.delete(
    "/api/datasets/{dataset_id}/items/{item_id}",
    status_code=204,
    responses={200: {"model": Item, "description": "archived: an experiment used the item"}},
)
async def delete_item(
    dataset_id: str, item_id: str, runtime: RuntimeDep, caller: CallerDep
) -> Response:
    """Delete the item (204), or archive it when an experiment used it (200, the item)."""
    archived = await Datasets(runtime.engine).remove_item(caller, dataset_id, item_id)
    if archived is None:
        return Response(status_code=204)
    return JSONResponse(archived)


async def _page() -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


for _path in ("/datasets", "/datasets/{dataset_id}"):
    router.add_api_route(_path, _page, include_in_schema=False)
