"""Dataset storage on SQLite and PostgreSQL: names unique per account, items added all at once
or not at all, listed in order, archived (not deleted) once a run of the dataset used them,
and gone with their dataset or account."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from gapless.db import Engine
from gapless.db import accounts as db_accounts
from gapless.db import datasets as db
from gapless.db.rows import new_id, now
from gapless.db.tables import accounts, dataset_items, experiment_items, experiments


def an_item(text: str) -> dict[str, object]:
    return {
        "input": {"messages": [{"role": "user", "content": text}], "variables": {}},
        "expected": text.upper(),
        "metadata": {"n": len(text)},
    }


async def a_run(
    engine: Engine, dataset: Mapping[str, Any], item_ids: list[str], status: str = "completed"
) -> str:
    """An experiment of the dataset that ran these items (its rows, as a run writes them)."""
    experiment_id = new_id("exp")
    async with engine.begin() as conn:
        await conn.execute(
            experiments.insert().values(
                id=experiment_id,
                account_id=dataset["account_id"],
                dataset_id=dataset["id"],
                name="run",
                target="{}",
                evaluators="[]",
                concurrency=1,
                status=status,
                total=len(item_ids),
                done=len(item_ids),
                failed=0,
                progress=len(item_ids),
                created_at=now(),
            )
        )
        for position, item_id in enumerate(item_ids):
            await conn.execute(
                experiment_items.insert().values(
                    id=new_id("exi"),
                    experiment_id=experiment_id,
                    item_id=item_id,
                    position=position,
                    status="done",
                    attempt=1,
                )
            )
    return experiment_id


async def test_datasets_are_named_once_per_account_and_counted(engine: Engine) -> None:
    team = await db_accounts.create_account(engine, "Team")
    other = await db_accounts.create_account(engine, "Other")
    made = await db.create_dataset(engine, {"account_id": team, "name": "qa", "created_by": "u"})
    assert made is not None and made["items"] == 0 and made["description"] == ""
    assert await db.create_dataset(engine, {"account_id": team, "name": "qa"}) is None
    elsewhere = await db.create_dataset(engine, {"account_id": other, "name": "qa"})
    assert elsewhere is not None
    await db.create_dataset(engine, {"account_id": team, "name": "a first"})

    assert [d["name"] for d in await db.list_datasets(engine, [team])] == ["a first", "qa"]
    assert len(await db.list_datasets(engine, None)) == 3
    assert await db.update_dataset(engine, made["id"], {"name": "a first"}) is None
    renamed = await db.update_dataset(engine, made["id"], {"name": "qa2", "description": "d"})
    assert renamed is not None and (renamed["name"], renamed["description"]) == ("qa2", "d")

    added = await db.add_items(engine, made["id"], [an_item("one"), an_item("two")])
    assert added is not None
    found = await db.get_dataset(engine, made["id"])
    assert found is not None and found["items"] == 2


async def test_items_are_added_together_and_listed_in_order(engine: Engine) -> None:
    team = await db_accounts.create_account(engine, "Team")
    dataset = await db.create_dataset(engine, {"account_id": team, "name": "qa"})
    assert dataset is not None
    texts = [f"question {n}" for n in range(30)]
    added = await db.add_items(engine, dataset["id"], [an_item(t) for t in texts])
    assert added is not None
    listed = await db.list_items(engine, dataset["id"])
    assert [i["input"]["messages"][0]["content"] for i in listed] == texts
    assert listed == added  # what was answered is what was stored
    assert listed[0]["metadata"] == {"n": 10} and listed[0]["status"] == "active"

    # over the limit: nothing of the batch is stored
    assert await db.add_items(engine, dataset["id"], [an_item("x")] * 5, limit=32) is None
    assert len(await db.list_items(engine, dataset["id"])) == 30

    # concurrent adders take turns under the dataset's lock: the limit holds
    results = await asyncio.gather(
        *(db.add_items(engine, dataset["id"], [an_item("y")] * 2, limit=34) for _ in range(4))
    )
    assert sum(r is not None for r in results) == 2
    assert len(await db.list_items(engine, dataset["id"])) == 34

    changed = await db.update_item(
        engine, dataset["id"], listed[0]["id"], {"expected": None, "metadata": {"k": "v"}}
    )
    assert changed is not None and changed["expected"] is None and changed["metadata"] == {"k": "v"}
    assert await db.update_item(engine, "dst_other", listed[0]["id"], {"expected": "x"}) is None


async def test_an_item_a_run_of_the_dataset_used_is_archived_not_deleted(engine: Engine) -> None:
    team = await db_accounts.create_account(engine, "Team")
    dataset = await db.create_dataset(engine, {"account_id": team, "name": "qa"})
    other = await db.create_dataset(engine, {"account_id": team, "name": "other"})
    assert dataset is not None and other is not None
    added = await db.add_items(engine, dataset["id"], [an_item("a"), an_item("b"), an_item("c")])
    assert added is not None
    ran, fresh, named_elsewhere = (i["id"] for i in added)
    run = await a_run(engine, dataset, [ran])
    elsewhere = await a_run(engine, other, [named_elsewhere])

    archived = await db.remove_item(engine, dataset["id"], ran)
    assert archived is not None and archived["status"] == "archived"
    assert await db.remove_item(engine, dataset["id"], fresh) is None
    assert await db.remove_item(engine, dataset["id"], named_elsewhere) is None
    assert [i["id"] for i in await db.list_items(engine, dataset["id"])] == []
    kept = await db.list_items(engine, dataset["id"], archived=True)
    assert [(i["id"], i["status"]) for i in kept] == [(ran, "archived")]
    found = await db.get_dataset(engine, dataset["id"])
    assert found is not None and found["items"] == 0

    assert await db.experiment_in(engine, run, dataset["id"])
    assert not await db.experiment_in(engine, elsewhere, dataset["id"])
    assert not await db.experiment_in(engine, "exp_none", dataset["id"])

    going = await a_run(engine, dataset, [], status="running")
    assert await db.delete_dataset(engine, dataset["id"]) is False  # not while a run goes on
    assert len(await db.list_items(engine, dataset["id"], archived=True)) == 1
    async with engine.begin() as conn:
        await conn.execute(
            experiments.update().where(experiments.c.id == going).values(status="stopped")
        )
    assert await db.delete_dataset(engine, dataset["id"]) is True
    assert await db.get_dataset(engine, dataset["id"]) is None
    async with engine.connect() as conn:
        left = await conn.scalar(
            sa.select(sa.func.count()).where(dataset_items.c.dataset_id == dataset["id"])
        )
        runs = await conn.scalar(
            sa.select(sa.func.count()).where(experiments.c.dataset_id == dataset["id"])
        )
    assert (left, runs) == (0, 0)

    async with engine.begin() as conn:
        await conn.execute(accounts.delete().where(accounts.c.id == team))
    assert await db.get_dataset(engine, other["id"]) is None


async def test_stored_input_and_metadata_are_json(engine: Engine) -> None:
    team = await db_accounts.create_account(engine, "Team")
    dataset = await db.create_dataset(engine, {"account_id": team, "name": "qa"})
    assert dataset is not None
    await db.add_items(engine, dataset["id"], [an_item("é \u2028 ✓")])
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(dataset_items))).one()
    assert json.loads(row.input)["messages"][0]["content"] == "é \u2028 ✓"
    assert json.loads(row.metadata) == {"n": 5}
