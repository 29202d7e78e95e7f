"""The prompts API on a real server: versions that never change, labels and their history,
rendering with variables, the diff's two texts, and authorisation (404 across accounts)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from gapless.errors import InvalidError
from gapless.evals.prompts import apply_prompt, check_ref, resolve_instructions
from tests.conftest import client_for
from tests.evals.conftest import outsider
from tests.support.server import LiveServer

FIRST = {
    "name": "support-bot",
    "content": "You help {{ customer }} with {{ product }}.",
    "config": {"model": "demo:echo", "temperature": 0.2, "max_tokens": 300},
    "message": "first cut",
    "labels": ["production"],
}


async def test_a_prompt_is_created_versioned_and_labelled(live_server: LiveServer) -> None:
    async with client_for(live_server) as api:
        created = await api.post("/api/prompts", json=FIRST)
        assert created.status_code == 201, created.text
        prompt = created.json()
        assert prompt["name"] == "support-bot"
        assert prompt["labels"] == {"latest": 1, "production": 1}
        assert [v["version"] for v in prompt["versions"]] == [1]
        assert prompt["versions"][0]["labels"] == ["latest", "production"]

        second = await api.post(
            "/api/prompts/support-bot/versions",
            json={
                "content": "Be brief with {{ customer }}.",
                "message": "shorter",
                "labels": ["staging"],
            },
        )
        assert second.status_code == 201, second.text
        v2 = second.json()
        assert v2["version"] == 2 and v2["labels"] == ["latest", "staging"]
        assert v2["variables"] == ["customer"] and v2["config"] == {}
        assert v2["message"] == "shorter" and v2["author"]

        v1 = (await api.get("/api/prompts/support-bot/versions/1")).json()
        assert v1["content"] == FIRST["content"] and v1["config"] == FIRST["config"]
        assert v1["variables"] == ["customer", "product"]
        production = (await api.get("/api/prompts/support-bot/labels/production")).json()
        assert production["version"] == 1
        latest = (await api.get("/api/prompts/support-bot/labels/latest")).json()
        assert latest["version"] == 2

        listed = (await api.get("/api/prompts")).json()["prompts"]
        assert [(p["name"], p["latest_version"]) for p in listed] == [("support-bot", 2)]
        assert listed[0]["labels"] == {"latest": 2, "production": 1, "staging": 2}

        again = await api.post("/api/prompts", json=FIRST)
        assert again.status_code == 409 and again.json()["error"]["code"] == "exists"


async def test_moving_a_label_is_recorded_with_who_when_and_from_which_version(
    any_db_server: LiveServer,
) -> None:
    live_server = any_db_server
    async with client_for(live_server) as api:
        await api.post("/api/prompts", json=FIRST)
        await api.post("/api/prompts/support-bot/versions", json={"content": "v2 {{ customer }}"})
        moved = await api.put("/api/prompts/support-bot/labels/production", json={"version": 2})
        assert moved.status_code == 200, moved.text
        assert moved.json()["from_version"] == 1 and moved.json()["to_version"] == 2
        custom = await api.put("/api/prompts/support-bot/labels/canary", json={"version": 1})
        assert custom.json() == {**custom.json(), "from_version": None, "to_version": 1}
        assert (await api.delete("/api/prompts/support-bot/labels/canary")).status_code == 204

        moves = (await api.get("/api/prompts/support-bot/history")).json()["moves"]
        me = (await api.get("/api/session")).json()["user"]["id"]
        assert [(m["label"], m["from_version"], m["to_version"]) for m in moves] == [
            ("canary", 1, None),
            ("canary", None, 1),
            ("production", 1, 2),
            ("latest", 1, 2),
            ("production", None, 1),
            ("latest", None, 1),
        ]
        assert {m["moved_by"] for m in moves} == {me} and all(m["moved_at"] for m in moves)

        refused = await api.put("/api/prompts/support-bot/labels/latest", json={"version": 1})
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "bad_label"
        missing = await api.put("/api/prompts/support-bot/labels/production", json={"version": 9})
        assert missing.status_code == 404
        bad = await api.put("/api/prompts/support-bot/labels/Not%20A%20Label", json={"version": 1})
        assert bad.status_code == 422


async def test_render_fills_the_variables_and_a_missing_one_is_a_422_naming_it(
    live_server: LiveServer,
) -> None:
    async with client_for(live_server) as api:
        await api.post("/api/prompts", json=FIRST)
        done = await api.post(
            "/api/prompts/support-bot/render",
            json={"variables": {"customer": "Ann", "product": "tide tables"}},
        )
        assert done.status_code == 200, done.text
        assert done.json() == {
            "name": "support-bot",
            "version": 1,
            "config": FIRST["config"],
            "text": "You help Ann with tide tables.",
        }
        missing = await api.post(
            "/api/prompts/support-bot/render", json={"version": 1, "variables": {"customer": "Ann"}}
        )
        assert missing.status_code == 422
        assert missing.json()["error"] == {
            "code": "missing_variable",
            "message": "missing variables: product",
        }
        unknown = await api.post("/api/prompts/support-bot/render", json={"label": "staging"})
        assert unknown.status_code == 404


async def test_stored_template_injection_renders_inert_or_is_refused(
    live_server: LiveServer,
) -> None:
    async with client_for(live_server) as api:
        hostile = {"name": "hostile", "content": "{{ cycler.__init__.__globals__.os }}"}
        assert (await api.post("/api/prompts", json=hostile)).status_code == 201
        refused = await api.post("/api/prompts/hostile/render", json={"label": "latest"})
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "unsafe_template"
        await api.post(
            "/api/prompts/hostile/versions",
            json={"content": "Echo: {{ text }}", "labels": ["production"]},
        )
        inert = await api.post(
            "/api/prompts/hostile/render", json={"variables": {"text": "{{ ''.__class__ }}"}}
        )
        assert inert.json()["text"] == "Echo: {{ ''.__class__ }}"
        broken = await api.post(
            "/api/prompts/hostile/versions", json={"content": "{% for x in y %}"}
        )
        assert broken.status_code == 422
        assert broken.json()["error"]["code"] == "template_syntax"


async def test_the_diff_answers_both_versions_whole(live_server: LiveServer) -> None:
    async with client_for(live_server) as api:
        await api.post("/api/prompts", json=FIRST)
        await api.post(
            "/api/prompts/support-bot/versions",
            json={"content": "You help {{ customer }}.", "config": {"model": "demo:echo"}},
        )
        pair = (await api.get("/api/prompts/support-bot/diff?old=1&new=2")).json()
        assert pair["old"]["content"] == FIRST["content"]
        assert pair["new"]["content"] == "You help {{ customer }}."
        assert pair["new"]["config"] == {"model": "demo:echo"}
        assert (await api.get("/api/prompts/support-bot/diff?old=1&new=7")).status_code == 404


async def test_another_accounts_prompts_are_404_and_never_listed(live_server: LiveServer) -> None:
    eve = await outsider(live_server)
    async with client_for(live_server) as api, client_for(live_server, eve.token) as other:
        await api.post("/api/prompts", json=FIRST)
        assert (await other.get("/api/prompts")).json()["prompts"] == []
        for method, url, body in [
            ("GET", "/api/prompts/support-bot", None),
            ("GET", "/api/prompts/support-bot/versions/1", None),
            ("GET", "/api/prompts/support-bot/labels/production", None),
            ("GET", "/api/prompts/support-bot/history", None),
            ("GET", "/api/prompts/support-bot/diff?old=1&new=1", None),
            ("POST", "/api/prompts/support-bot/versions", {"content": "mine now"}),
            ("PUT", "/api/prompts/support-bot/labels/production", {"version": 1}),
            ("DELETE", "/api/prompts/support-bot/labels/production", None),
            ("POST", "/api/prompts/support-bot/render", {"variables": {}}),
            ("DELETE", "/api/prompts/support-bot", None),
        ]:
            answer = await other.request(method, url, json=body)
            assert answer.status_code == 404, (method, url, answer.text)
            assert answer.json()["error"]["code"] == "not_found"
        mine = (await api.get("/api/prompts")).json()["prompts"][0]["account_id"]
        naming = await other.get(f"/api/prompts/support-bot?account_id={mine}")
        assert naming.status_code == 404
        # the same name in their own account is theirs, and separate
        assert (await other.post("/api/prompts", json=FIRST)).status_code == 201
        theirs = (await other.get("/api/prompts/support-bot")).json()
        assert theirs["account_id"] == eve.account_id
        mine_again = await api.get(f"/api/prompts/support-bot?account_id={mine}")
        assert mine_again.json()["account_id"] == mine


async def test_a_name_in_two_of_the_callers_accounts_needs_account_id(
    live_server: LiveServer,
) -> None:
    eve = await outsider(live_server)
    async with client_for(live_server) as admin, client_for(live_server, eve.token) as other:
        await admin.post("/api/prompts", json=FIRST)
        await other.post("/api/prompts", json=FIRST)
        ambiguous = await admin.get("/api/prompts/support-bot")  # a site admin sees both
        assert ambiguous.status_code == 422 and ambiguous.json()["error"]["code"] == "ambiguous"
        chosen = await admin.get(f"/api/prompts/support-bot?account_id={eve.account_id}")
        assert chosen.json()["account_id"] == eve.account_id


async def test_resolving_an_agents_prompt_keeps_the_version_it_resolved(
    live_server: LiveServer,
) -> None:
    async with client_for(live_server) as api:
        created = (await api.post("/api/prompts", json=FIRST)).json()
        await api.post(
            "/api/prompts/support-bot/versions", json={"content": "v2 for {{ customer }}"}
        )
        engine, account = live_server.runtime.engine, created["account_id"]
        ref = {
            "name": "support-bot",
            "label": "production",
            "variables": {"customer": "Bo", "product": "maps"},
        }
        text, used = await live_server.arun(resolve_instructions(engine, account, ref))
        assert (text, used) == ("You help Bo with maps.", {"name": "support-bot", "version": 1})
        await api.put("/api/prompts/support-bot/labels/production", json={"version": 2})
        # what started with version 1 still holds its text; a new start takes version 2
        again = await live_server.arun(resolve_instructions(engine, account, ref))
        assert again == ("v2 for Bo", {"name": "support-bot", "version": 2})
        pinned = {"name": "support-bot", "version": 1, "variables": ref["variables"]}
        assert (await live_server.arun(resolve_instructions(engine, account, pinned)))[1] == {
            "name": "support-bot",
            "version": 1,
        }


async def test_concurrent_new_versions_get_distinct_numbers(any_db_server: LiveServer) -> None:
    live_server = any_db_server
    async with client_for(live_server) as api:
        await api.post("/api/prompts", json=FIRST)
        answers = await asyncio.gather(
            *[
                api.post("/api/prompts/support-bot/versions", json={"content": f"v {i}"})
                for i in range(6)
            ]
        )
        assert all(a.status_code == 201 for a in answers)
        assert sorted(a.json()["version"] for a in answers) == [2, 3, 4, 5, 6, 7]
        latest = (await api.get("/api/prompts/support-bot/labels/latest")).json()
        assert latest["version"] == 7


async def test_an_agent_with_a_prompt_gets_its_text_and_a_run_going_on_keeps_its_version(
    live_server: LiveServer,
) -> None:
    async with client_for(live_server) as api:
        created = (await api.post("/api/prompts", json=FIRST)).json()
        engine, account = live_server.runtime.engine, created["account_id"]
        variables = {"customer": "Cy", "product": "kites"}
        agent = {
            "name": "a",
            "instructions": "ignored",
            "prompt": {"name": "support-bot", "variables": variables},
        }
        started, used = await live_server.arun(apply_prompt(engine, account, agent))
        assert started is not None and started["instructions"] == "You help Cy with kites."
        assert used == {"name": "support-bot", "version": 1}
        await api.post(
            "/api/prompts/support-bot/versions",
            json={"content": "New words for {{ customer }}.", "labels": ["production"]},
        )
        going_on, same = await live_server.arun(apply_prompt(engine, account, agent, used))
        assert going_on is not None and going_on["instructions"] == "You help Cy with kites."
        assert same == used
        fresh, now_used = await live_server.arun(apply_prompt(engine, account, agent))
        assert fresh is not None and fresh["instructions"] == "New words for Cy."
        assert now_used == {"name": "support-bot", "version": 2}
        plain = {"name": "b", "instructions": "Be terse."}
        assert await live_server.arun(apply_prompt(engine, account, plain)) == (plain, None)

        for ref, code in [
            ({"name": "nope"}, "unknown_prompt"),
            ({"name": "support-bot", "label": "canary"}, "unknown_prompt"),
            ({"name": "support-bot", "version": 9}, "unknown_prompt"),
            ({"name": "support-bot", "version": 1}, "missing_variable"),
        ]:
            with pytest.raises(InvalidError) as caught:
                await live_server.arun(check_ref(engine, account, ref))
            assert caught.value.code == code
        await live_server.arun(check_ref(engine, account, agent["prompt"]))
        eve = await outsider(live_server)
        with pytest.raises(InvalidError):  # another account's prompt is not found from here
            await live_server.arun(check_ref(engine, eve.account_id, agent["prompt"]))


async def test_the_openapi_document_describes_prompts_feedback_scores_and_queues(
    live_server: LiveServer,
) -> None:
    async with client_for(live_server) as api:
        spec = (await api.get("/openapi.json")).json()
    paths = spec["paths"]
    for path, method in [
        ("/api/prompts", "post"),
        ("/api/prompts/{name}/versions", "post"),
        ("/api/prompts/{name}/labels/{label}", "put"),
        ("/api/prompts/{name}/history", "get"),
        ("/api/prompts/{name}/diff", "get"),
        ("/api/prompts/{name}/render", "post"),
        ("/api/messages/{message_id}/feedback", "post"),
        ("/api/scores", "post"),
        ("/api/scores/export", "get"),
        ("/api/queues", "post"),
        ("/api/queues/{queue_id}/next", "post"),
        ("/api/queues/{queue_id}/items/{item_id}", "post"),
    ]:
        assert "evaluations" in paths[path][method]["tags"], (path, method)
    assert not any(p in paths for p in ("/prompts", "/playground", "/queues"))  # pages


async def test_concurrent_moves_of_one_label_each_record_where_it_was(
    any_db_server: LiveServer,
) -> None:
    async with client_for(any_db_server) as api:
        await api.post("/api/prompts", json={**FIRST, "labels": []})
        for i in range(3):
            await api.post("/api/prompts/support-bot/versions", json={"content": f"v{i}"})
        targets = [1, 2, 3, 4, 2, 3]
        answers = await asyncio.gather(
            *[
                api.put("/api/prompts/support-bot/labels/staging", json={"version": v})
                for v in targets
            ]
        )
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        moves = (await api.get("/api/prompts/support-bot/history")).json()["moves"]
        chain = [m for m in reversed(moves) if m["label"] == "staging"]
        # each recorded move starts where the one before it left the label
        assert chain[0]["from_version"] is None
        for before, after in itertools.pairwise(chain):
            assert after["from_version"] == before["to_version"]
        final = (await api.get("/api/prompts/support-bot/labels/staging")).json()["version"]
        assert final == chain[-1]["to_version"]


async def test_a_deleted_prompt_is_gone_with_its_versions_and_its_name_free(
    live_server: LiveServer,
) -> None:
    async with client_for(live_server) as api:
        await api.post("/api/prompts", json=FIRST)
        await api.post("/api/prompts/support-bot/versions", json={"content": "v2"})
        assert (await api.delete("/api/prompts/support-bot")).status_code == 204
        assert (await api.get("/api/prompts/support-bot")).status_code == 404
        assert (await api.get("/api/prompts/support-bot/versions/2")).status_code == 404
        assert (await api.get("/api/prompts")).json()["prompts"] == []
        again = (await api.post("/api/prompts", json=FIRST)).json()
        assert [v["version"] for v in again["versions"]] == [1]
