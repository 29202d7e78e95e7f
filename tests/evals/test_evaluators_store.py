"""`scoring.store` and `db.evaluators.get_many` on each engine: results that are scores are
stored once per key (a second store keeps the first), errors are not scores."""

from __future__ import annotations

from gapless.db import Engine
from gapless.db import accounts as db_accounts
from gapless.db import evaluators as db
from gapless.db import scores as db_scores
from gapless.evals.scoring import store


def result(evaluator_id: str, name: str, value: float | None, **rest: object) -> dict[str, object]:
    return {
        "evaluator_id": evaluator_id,
        "name": name,
        "data_type": "boolean",
        "value": value,
        "label": None,
        "explanation": None,
        "passed": None,
        "error": None,
        **rest,
    }


async def test_results_are_stored_once_per_key_and_errors_never(engine: Engine) -> None:
    account = await db_accounts.create_account(engine, "Acme")
    first = [
        result("evl_a", "exact", 1.0, explanation="same", passed=True),
        result("evl_b", "judged", 0.3, data_type="numeric", label="meh", explanation="weak"),
        result("evl_c", "cheap", None, error="the case has no cost"),
    ]
    place = {"trace_id": "trc_1", "chat_id": None, "message_id": None}
    await store(engine, account, first, key="exi_1", **place)
    await store(engine, account, [result("evl_a", "exact", 0.0)], key="exi_1", **place)
    await store(engine, account, [result("evl_a", "exact", 0.0)], key="exi_2", **place)

    found = await db_scores.list_scores(engine, [account], {"trace_id": "trc_1"}, None, 50)
    rows = sorted((s["name"], s["value"], s["comment"], s["source"], s["author"]) for s in found)
    assert rows == [
        ("exact", False, None, "evaluator", "evl_a"),
        ("exact", True, "same", "evaluator", "evl_a"),
        ("judged", 0.3, "weak", "evaluator", "evl_b"),
    ]


async def test_get_many_keeps_the_order_asked_and_skips_unknown_ids(engine: Engine) -> None:
    account = await db_accounts.create_account(engine, "Acme")
    made = []
    for name in ("b", "a", "c"):
        found = await db.create(
            engine,
            {
                "account_id": account,
                "name": name,
                "kind": "json",
                "config": {},
                "sample": 0.0,
                "filter": {},
            },
        )
        assert found is not None
        made.append(found["id"])
    assert (
        await db.create(
            engine,
            {
                "account_id": account,
                "name": "a",
                "kind": "json",
                "config": {},
                "sample": 0.0,
                "filter": {},
            },
        )
        is None
    )
    wanted = [made[2], "evl_gone", made[0]]
    assert [e["name"] for e in await db.get_many(engine, wanted)] == ["c", "b"]
    assert await db.get_many(engine, []) == []
