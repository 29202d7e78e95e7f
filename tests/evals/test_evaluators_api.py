"""The evaluators API on a real server: create, list, read, change, delete, try; a config its
kind cannot use is 422 and nothing is saved; a name twice is 409; another account's
evaluators are 404 (and their prompts are not a judge's)."""

from __future__ import annotations

from typing import Any, get_args

import httpx
import pytest

from gapless.evals.evaluators import KINDS
from gapless.web.routes.evaluators import Evaluator, EvaluatorList, Kind, Result
from tests.conftest import client_for
from tests.evals.conftest import outsider
from tests.support.server import LiveServer

SCHEMA = {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}


async def create(api: httpx.AsyncClient, **fields: Any) -> httpx.Response:
    return await api.post("/api/evaluators", json=fields)


async def test_an_evaluator_is_created_read_changed_tried_and_deleted(
    any_db_server: LiveServer,
) -> None:
    async with client_for(any_db_server) as api:
        created = await create(
            api,
            name="valid city",
            kind="json_schema",
            config={"schema": SCHEMA},
            sample=0.25,
            filter={"model": "scripted:default"},
        )
        assert created.status_code == 201, created.text
        evaluator = created.json()
        Evaluator.model_validate(evaluator)  # as documented
        assert evaluator["name"] == "valid city" and evaluator["kind"] == "json_schema"
        assert evaluator["config"] == {"schema": SCHEMA}
        assert evaluator["sample"] == 0.25 and evaluator["filter"] == {"model": "scripted:default"}
        assert evaluator["id"].startswith("evl_") and evaluator["created_by"]
        url = f"/api/evaluators/{evaluator['id']}"
        assert (await api.get(url)).json() == evaluator

        again = await create(api, name="valid city", kind="json")
        assert again.status_code == 409 and again.json()["error"]["code"] == "name_taken"

        tried = await api.post(f"{url}/try", json={"output": '{"city": 3}'})
        assert tried.status_code == 200, tried.text
        Result.model_validate(tried.json())
        assert tried.json() == {
            "evaluator_id": evaluator["id"],
            "name": "valid city",
            "data_type": "boolean",
            "value": 0.0,
            "label": None,
            "explanation": "at city: 3 is not of type 'string'",
            "passed": False,
            "error": None,
        }
        assert (await api.post(f"{url}/try", json={"output": '{"city": "Oslo"}'})).json()["passed"]

        changed = await api.patch(
            url,
            json={
                "name": "has a date",
                "kind": "regex",
                "config": {"pattern": r"\d{4}"},
                "filter": None,
            },
        )
        assert changed.status_code == 200, changed.text
        found = changed.json()
        assert (found["name"], found["kind"], found["config"]) == (
            "has a date",
            "regex",
            {"pattern": r"\d{4}"},
        )
        assert found["filter"] == {} and found["sample"] == 0.25
        bad = await api.patch(url, json={"config": {"pattern": "(["}})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "bad_config"
        assert (await api.get(url)).json()["config"] == {"pattern": r"\d{4}"}
        slow = await api.post(f"{url}/try", json={"output": "no year", "duration_ms": 10})
        assert slow.json()["passed"] is False and slow.json()["explanation"].startswith("no match")

        listed = EvaluatorList.model_validate((await api.get("/api/evaluators")).json())
        assert [e.name for e in listed.evaluators] == ["has a date"]
        assert (await api.delete(url)).status_code == 204
        assert (await api.get(url)).status_code == 404
        assert (await api.get("/api/evaluators")).json()["evaluators"] == []


BAD = [
    ({"kind": "regex", "config": {"pattern": "(unclosed"}}, "bad_config"),
    ({"kind": "json_schema", "config": {"schema": {"type": 12}}}, "bad_config"),
    ({"kind": "telepathy", "config": {}}, None),
    ({"kind": "numeric", "config": {"tolerance": -2}}, "bad_config"),
    (
        {
            "kind": "judge",
            "config": {"prompt": {"name": "no-such-rubric"}, "model": "scripted:default"},
        },
        "unknown_prompt",
    ),
    (
        {
            "kind": "judge",
            "config": {
                "prompt": {"name": "rubric", "label": "staging"},
                "model": "scripted:default",
            },
        },
        "unknown_prompt",
    ),
    (
        {"kind": "judge", "config": {"prompt": {"name": "rubric"}, "model": "nowhere:x"}},
        "bad_model",
    ),
    (
        {
            "kind": "judge",
            "config": {"prompt": {"name": "needs-answer"}, "model": "scripted:default"},
        },
        "missing_variable",
    ),
    ({"kind": "exact", "sample": 1.5}, None),
    ({"kind": "exact", "account_id": "acc_nope"}, "no_account"),  # a site admin's: none such
]


@pytest.mark.parametrize(("fields", "code"), BAD)
async def test_a_bad_evaluator_is_422_and_nothing_is_saved(
    live_server: LiveServer, fields: dict[str, Any], code: str | None
) -> None:
    async with client_for(live_server) as api:
        for name, content in (
            ("rubric", "Grade {{ output }}."),
            ("needs-answer", "Grade {{ answer }}."),
        ):
            made = await api.post(
                "/api/prompts", json={"name": name, "content": content, "labels": ["production"]}
            )
            assert made.status_code == 201
        refused = await create(api, name="x", **fields)
        assert refused.status_code == 422, refused.text
        if code is not None:
            assert refused.json()["error"]["code"] == code
        assert (await api.get("/api/evaluators")).json()["evaluators"] == []


async def test_a_judge_with_a_version_of_its_prompt_is_saved(live_server: LiveServer) -> None:
    async with client_for(live_server) as api:
        await api.post("/api/prompts", json={"name": "rubric", "content": "Grade {{ output }}."})
        made = await create(
            api,
            name="judged",
            kind="judge",
            config={"prompt": {"name": "rubric", "version": 1}, "model": "scripted:default"},
        )
        assert made.status_code == 201, made.text
        assert made.json()["config"] == {
            "prompt": {"name": "rubric", "version": 1},
            "model": "scripted:default",
            "pass": 0.5,
        }


async def test_another_accounts_evaluators_are_404(live_server: LiveServer) -> None:
    eve = await outsider(live_server)
    async with client_for(live_server) as api, client_for(live_server, eve.token) as other:
        await api.post(
            "/api/prompts",
            json={"name": "rubric", "content": "Grade {{ output }}.", "labels": ["production"]},
        )
        mine = (await create(api, name="exactly", kind="exact")).json()
        base = f"/api/evaluators/{mine['id']}"
        for method, url, body in [
            ("GET", base, None),
            ("PATCH", base, {"name": "taken over"}),
            ("DELETE", base, None),
            ("POST", f"{base}/try", {"output": "x", "expected": "x"}),
        ]:
            answer = await other.request(method, url, json=body)
            assert answer.status_code == 404, (method, url, answer.text)
        assert (await other.get("/api/evaluators")).json()["evaluators"] == []
        assert (await api.get(base)).json()["name"] == "exactly"

        # my prompt is not theirs to judge with; their own evaluator is in their account
        judge = await create(
            other,
            name="j",
            kind="judge",
            config={"prompt": {"name": "rubric"}, "model": "scripted:default"},
        )
        assert judge.status_code == 422 and judge.json()["error"]["code"] == "unknown_prompt"
        theirs = await create(other, name="exactly", kind="exact")
        assert theirs.status_code == 201 and theirs.json()["account_id"] == eve.account_id
        planted = await create(other, name="planted", kind="exact", account_id=mine["account_id"])
        assert planted.status_code == 422
        assert planted.json()["error"]["code"] == "no_account"


def test_the_documented_kinds_are_the_kinds() -> None:
    assert get_args(Kind) == KINDS
