"""The datasets API on a real server: datasets and items by hand, imports that are all or
nothing with their bad lines named, "add to dataset" from a demo-model reply, items a run
used archived instead of deleted, a baseline of the dataset's own runs, and authorisation
(another account's datasets, items and replies are 404)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from gapless.db import accounts as db_accounts
from gapless.observe.recorder import trace_id_of
from gapless.web.routes import datasets as shapes
from tests.conftest import client_for
from tests.evals.conftest import outsider
from tests.evals.test_datasets_storage import a_run
from tests.support.server import LiveServer

GOOD_JSONL = "\n".join(
    json.dumps(row)
    for row in [
        {"input": "What is the tide at noon?", "expected": "High."},
        {
            "input": {
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "Translate {{ word }}"},
                ],
                "variables": {"word": "tide"},
            },
            "metadata": {"source": "support", "difficulty": 2},
        },
        {"input": "No expectation"},
    ]
)


async def a_dataset(api: httpx.AsyncClient, name: str = "tides") -> dict[str, Any]:
    created = await api.post("/api/datasets", json={"name": name, "description": "tide Q&A"})
    assert created.status_code == 201, created.text
    shapes.Dataset.model_validate(created.json())
    return dict(created.json())


async def items_of(api: httpx.AsyncClient, dataset_id: str, archived: bool = False) -> list[Any]:
    found = await api.get(f"/api/datasets/{dataset_id}", params={"archived": archived})
    assert found.status_code == 200, found.text
    shapes.DatasetDetail.model_validate(found.json())  # the answer is the documented one
    assert found.json()["count"] == len(found.json()["items"])
    return list(found.json()["items"])


async def test_a_dataset_is_created_listed_renamed_and_deleted(live_server: LiveServer) -> None:
    async with client_for(live_server) as api:
        dataset = await a_dataset(api)
        me = (await api.get("/api/session")).json()["user"]
        assert dataset["name"] == "tides" and dataset["description"] == "tide Q&A"
        assert dataset["items"] == 0 and dataset["baseline_id"] is None
        assert dataset["account_id"] in me["accounts"] and dataset["created_by"] == me["id"]

        taken = await api.post("/api/datasets", json={"name": "tides"})
        assert taken.status_code == 409 and taken.json()["error"]["code"] == "name_taken"
        await a_dataset(api, "answers")
        nowhere = await api.post("/api/datasets", json={"name": "x", "account_id": "acc_nope"})
        assert nowhere.status_code == 422 and nowhere.json()["error"]["code"] == "no_account"
        listed = (await api.get("/api/datasets")).json()
        shapes.DatasetList.model_validate(listed)
        assert [d["name"] for d in listed["datasets"]] == ["answers", "tides"]

        url = f"/api/datasets/{dataset['id']}"
        renamed = await api.patch(url, json={"name": "tide tables", "description": None})
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["name"] == "tide tables" and renamed.json()["description"] == ""
        clash = await api.patch(url, json={"name": "answers"})
        assert clash.status_code == 409 and clash.json()["error"]["code"] == "name_taken"
        blank = await api.patch(url, json={"name": "   "})
        assert blank.status_code == 422

        assert (await api.delete(url)).status_code == 204
        assert (await api.get(url)).status_code == 404
        assert [d["name"] for d in (await api.get("/api/datasets")).json()["datasets"]] == [
            "answers"
        ]


async def test_items_by_hand_are_checked_and_listed_in_the_order_they_were_added(
    live_server: LiveServer,
) -> None:
    async with client_for(live_server) as api:
        dataset = await a_dataset(api)
        url = f"/api/datasets/{dataset['id']}/items"
        text = await api.post(url, json={"input": "Is it high tide?", "expected": "Yes."})
        assert text.status_code == 201, text.text
        first = text.json()
        assert first["input"] == {
            "messages": [{"role": "user", "content": "Is it high tide?"}],
            "variables": {},
        }
        assert first["expected"] == "Yes." and first["metadata"] == {}
        assert first["status"] == "active" and first["source_reply_id"] is None
        conversation = {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "About {{ place }}?"},
            ],
            "variables": {"place": "Brest"},
        }
        second = await api.post(url, json={"input": conversation, "metadata": {"k": [1, 2]}})
        assert second.status_code == 201, second.text
        assert second.json()["input"] == conversation and second.json()["expected"] is None

        refused = [
            {"input": ""},
            {"input": "   "},
            {"input": {"messages": []}},
            {"input": {"messages": [{"role": "system", "content": "x"}]}},
            {
                "input": {
                    "messages": [
                        {"role": "user", "content": "a"},
                        {"role": "assistant", "content": "b"},
                    ]
                }
            },
            {"input": {"messages": [{"role": "user", "content": "a"}], "variables": {"n": 1}}},
            {"input": "x", "metadata": ["not", "an", "object"]},
            {"input": "x", "expected": 42},
            {"input": "x" * 100_001},
            {"expected": "no input"},
        ]
        for body in refused:
            answer = await api.post(url, json=body)
            assert answer.status_code == 422, (body, answer.text)
        last_is_the_assistant = await api.post(
            url,
            json={
                "input": {
                    "messages": [
                        {"role": "user", "content": "a"},
                        {"role": "assistant", "content": "b"},
                    ]
                }
            },
        )
        assert "last message" in last_is_the_assistant.json()["error"]["message"]

        items = await items_of(api, dataset["id"])
        assert [i["id"] for i in items] == [first["id"], second.json()["id"]]
        assert (await api.get(f"/api/datasets/{dataset['id']}")).json()["count"] == 2
        assert (await api.get("/api/datasets")).json()["datasets"][0]["items"] == 2

        item_url = f"{url}/{first['id']}"
        patched = await api.patch(item_url, json={"expected": None, "metadata": {"tag": "t"}})
        assert patched.status_code == 200, patched.text
        assert patched.json()["expected"] is None and patched.json()["metadata"] == {"tag": "t"}
        assert patched.json()["input"] == first["input"]  # left out: kept
        retyped = await api.patch(item_url, json={"input": "Is it low tide?"})
        assert retyped.json()["input"]["messages"][0]["content"] == "Is it low tide?"
        assert retyped.json()["metadata"] == {"tag": "t"}
        bad = await api.patch(
            item_url, json={"input": {"messages": [{"role": "assistant", "content": "x"}]}}
        )
        assert bad.status_code == 422
        assert (await api.patch(f"{url}/dsi_missing", json={"expected": "x"})).status_code == 404

        assert (await api.delete(item_url)).status_code == 204  # no run used it: gone
        assert [i["id"] for i in await items_of(api, dataset["id"], archived=True)] == [
            second.json()["id"]
        ]


async def test_a_jsonl_import_is_all_or_nothing_and_names_every_bad_line(
    any_db_server: LiveServer,
) -> None:
    async with client_for(any_db_server) as api:
        dataset = await a_dataset(api)
        url = f"/api/datasets/{dataset['id']}/import"
        done = await api.post(url, json={"format": "jsonl", "text": GOOD_JSONL + "\n"})
        assert done.status_code == 201, done.text
        assert done.json()["imported"] == 3
        shapes.Imported.model_validate(done.json())
        items = await items_of(api, dataset["id"])
        assert [i["id"] for i in items] == [i["id"] for i in done.json()["items"]]
        assert items[0]["expected"] == "High."
        assert items[1]["input"]["variables"] == {"word": "tide"}
        assert items[1]["metadata"] == {"source": "support", "difficulty": 2}

        lines = [
            '{"input": "fine"}',
            '{"input": "also fine", "expected": "yes"}',
            '{"input": "broken", ',  # line 3: not JSON
            '{"input": "fine again"}',
        ]
        malformed = await api.post(url, json={"format": "jsonl", "text": "\n".join(lines)})
        assert malformed.status_code == 422, malformed.text
        error = malformed.json()["error"]
        assert error["code"] == "bad_rows" and "line 3" in error["message"]
        assert [d["line"] for d in error["details"]] == [3]
        assert len(await items_of(api, dataset["id"])) == 3  # nothing imported

        many = [
            '{"input": "fine"}',
            "",
            '{"input": ""}',  # line 3: empty input
            '{"input": "x", "metadata": [1]}',  # line 4: metadata not an object
            '"just a string"',  # line 5
            '{"input": "x", "surprise": 1}',  # line 6
            '{"input": {"messages": [{"role": "robot", "content": "x"}]}}',  # line 7
            '{"input": "x", "expected": "\\ud800 alone"}',  # line 8: no column holds it
        ]
        bad = await api.post(url, json={"format": "jsonl", "text": "\n".join(many)})
        assert bad.status_code == 422
        details = bad.json()["error"]["details"]
        assert [d["line"] for d in details] == [3, 4, 5, 6, 7, 8]
        assert "input is empty" in details[0]["message"]
        assert "metadata" in details[1]["message"]
        assert "3, 4, 5, 6, 7, 8" in bad.json()["error"]["message"]
        assert len(await items_of(api, dataset["id"])) == 3

        empty = await api.post(url, json={"format": "jsonl", "text": "\n\n"})
        assert empty.status_code == 422 and empty.json()["error"]["code"] == "bad_rows"
        other = await api.post(url, json={"format": "xml", "text": "<a/>"})
        assert other.status_code == 422


async def test_a_csv_import_needs_an_input_column_and_whole_rows(live_server: LiveServer) -> None:
    async with client_for(live_server) as api:
        dataset = await a_dataset(api)
        url = f"/api/datasets/{dataset['id']}/import"
        missing = await api.post(
            url, json={"format": "csv", "text": "question,expected\nHi,Hello\n"}
        )
        assert missing.status_code == 422, missing.text
        error = missing.json()["error"]
        assert error["code"] == "bad_rows" and error["details"][0]["line"] == 1
        assert "input" in error["details"][0]["message"]

        short = "input,expected,city\nHigh tide?,Noon,Brest\nLow tide?,Six\n,x,Nantes\n"
        refused = await api.post(url, json={"format": "csv", "text": short})
        assert refused.status_code == 422
        details = refused.json()["error"]["details"]
        assert [d["line"] for d in details] == [3, 4]
        assert "2 fields where the header has 3" in details[0]["message"]
        assert "input is empty" in details[1]["message"]
        assert await items_of(api, dataset["id"]) == []

        bad_metadata = 'input,metadata\nA,"{""ok"": 1}"\nB,[1]\nC,not json\n'
        refused = await api.post(url, json={"format": "csv", "text": bad_metadata})
        assert [d["line"] for d in refused.json()["error"]["details"]] == [3, 4]

        good = (
            'input,expected,metadata,city\n"Tide in\nBrest?",Noon,"{""src"": ""csv""}",Brest\n'
            "Tide in Nantes?,,,Nantes\n"
        )
        done = await api.post(url, json={"format": "csv", "text": good})
        assert done.status_code == 201, done.text
        first, second = done.json()["items"]
        assert first["input"] == {
            "messages": [{"role": "user", "content": "Tide in\nBrest?"}],
            "variables": {"city": "Brest"},
        }
        assert first["expected"] == "Noon" and first["metadata"] == {"src": "csv"}
        assert second["expected"] is None and second["metadata"] == {}
        assert second["input"]["variables"] == {"city": "Nantes"}


async def test_an_import_too_large_is_refused_whole(live_server: LiveServer) -> None:
    async with client_for(live_server) as api:
        dataset = await a_dataset(api)
        url = f"/api/datasets/{dataset['id']}/import"
        rows = "\n".join(['{"input":"a"}'] * 5_001)
        answer = await api.post(url, json={"format": "jsonl", "text": rows})
        assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_many_rows"
        long = await api.post(url, json={"format": "csv", "text": "input\n" + "x" * 250_000})
        assert long.status_code == 413 and "250000 characters" in long.json()["error"]["message"]
        assert await items_of(api, dataset["id"]) == []


async def test_add_to_dataset_from_a_demo_reply_takes_its_conversation(
    live_server: LiveServer,
) -> None:
    async with client_for(live_server) as api:
        dataset = await a_dataset(api)
        chat = (await api.post("/api/chats", json={"model": "demo:default"})).json()
        chat_url = f"/api/chats/{chat['id']}/messages"
        first = (await api.post(chat_url, json={"content": "Hello there"})).json()
        await live_server.adrain()
        second = (await api.post(chat_url, json={"content": "What time is it?"})).json()
        await live_server.adrain()
        first_reply = await live_server.amessage(first["assistant_message"]["id"])
        reply = await live_server.amessage(second["assistant_message"]["id"])
        assert reply["status"] == "complete" and reply["content"]

        url = f"/api/datasets/{dataset['id']}/items/from-reply"
        made = await api.post(url, json={"message_id": reply["id"]})
        assert made.status_code == 201, made.text
        item = made.json()
        shapes.Item.model_validate(item)
        assert item["input"] == {
            "messages": [
                {"role": "user", "content": "Hello there"},
                {"role": "assistant", "content": first_reply["content"]},
                {"role": "user", "content": "What time is it?"},
            ],
            "variables": {},
        }
        assert item["expected"] == reply["content"]
        assert item["metadata"] == {
            "chat_id": chat["id"],
            "trace_id": trace_id_of(reply["id"]),
            "model": "demo:default",
        }
        assert item["source_reply_id"] == reply["id"]
        assert [i["id"] for i in await items_of(api, dataset["id"])] == [item["id"]]

        question = await api.post(url, json={"message_id": second["user_message"]["id"]})
        assert question.status_code == 422 and question.json()["error"]["code"] == "not_a_reply"
        unknown = await api.post(url, json={"message_id": "msg_nothing"})
        assert unknown.status_code == 404


async def test_an_item_a_run_used_is_archived_and_the_baseline_is_a_run_of_the_dataset(
    any_db_server: LiveServer,
) -> None:
    server = any_db_server
    async with client_for(server) as api:
        dataset = await a_dataset(api)
        other = await a_dataset(api, "other")
        url = f"/api/datasets/{dataset['id']}/import"
        imported = (await api.post(url, json={"format": "jsonl", "text": GOOD_JSONL})).json()
        ran, kept, spare = (i["id"] for i in imported["items"])
        run = await server.arun(a_run(server.runtime.engine, dataset, [ran]))
        elsewhere = await server.arun(a_run(server.runtime.engine, other, [spare]))

        items_url = f"/api/datasets/{dataset['id']}/items"
        archived = await api.delete(f"{items_url}/{ran}")
        assert archived.status_code == 200, archived.text
        assert archived.json()["id"] == ran and archived.json()["status"] == "archived"
        # a run of another dataset naming the id does not keep this dataset's item
        assert (await api.delete(f"{items_url}/{spare}")).status_code == 204
        assert [i["id"] for i in await items_of(api, dataset["id"])] == [kept]
        everything = await items_of(api, dataset["id"], archived=True)
        assert [(i["id"], i["status"]) for i in everything] == [
            (ran, "archived"),
            (kept, "active"),
        ]
        assert (await api.get(f"/api/datasets/{dataset['id']}")).json()["count"] == 1
        listed = {d["id"]: d["items"] for d in (await api.get("/api/datasets")).json()["datasets"]}
        assert listed[dataset["id"]] == 1

        dataset_url = f"/api/datasets/{dataset['id']}"
        marked = await api.patch(dataset_url, json={"baseline_id": run})
        assert marked.status_code == 200 and marked.json()["baseline_id"] == run
        foreign = await api.patch(dataset_url, json={"baseline_id": elsewhere})
        assert foreign.status_code == 422 and foreign.json()["error"]["code"] == "bad_baseline"
        unknown = await api.patch(dataset_url, json={"baseline_id": "exp_nothing"})
        assert unknown.status_code == 422
        kept_name = await api.patch(dataset_url, json={"description": "still marked"})
        assert kept_name.json()["baseline_id"] == run
        cleared = await api.patch(dataset_url, json={"baseline_id": None})
        assert cleared.status_code == 200 and cleared.json()["baseline_id"] is None

        await server.arun(a_run(server.runtime.engine, other, [], status="running"))
        running = await api.delete(f"/api/datasets/{other['id']}")
        assert running.status_code == 409 and running.json()["error"]["code"] == "running"
        assert (await api.delete(dataset_url)).status_code == 204
        assert (await api.get(dataset_url)).status_code == 404


async def test_another_accounts_datasets_items_and_replies_are_404(
    live_server: LiveServer,
) -> None:
    eve = await outsider(live_server)
    async with client_for(live_server) as api, client_for(live_server, eve.token) as other:
        dataset = await a_dataset(api)
        base = f"/api/datasets/{dataset['id']}"
        item = (await api.post(f"{base}/items", json={"input": "mine"})).json()
        chat = (await api.post("/api/chats", json={"model": "demo:default"})).json()
        posted = await api.post(f"/api/chats/{chat['id']}/messages", json={"content": "Hi"})
        reply_id = posted.json()["assistant_message"]["id"]
        await live_server.adrain()

        assert (await other.get("/api/datasets")).json()["datasets"] == []
        for method, url, body in [
            ("GET", base, None),
            ("GET", f"{base}?archived=true", None),
            ("PATCH", base, {"name": "taken over"}),
            ("DELETE", base, None),
            ("POST", f"{base}/items", {"input": "theirs"}),
            ("POST", f"{base}/import", {"format": "jsonl", "text": '{"input": "x"}'}),
            ("POST", f"{base}/items/from-reply", {"message_id": reply_id}),
            ("PATCH", f"{base}/items/{item['id']}", {"expected": "x"}),
            ("DELETE", f"{base}/items/{item['id']}", None),
        ]:
            answer = await other.request(method, url, json=body)
            assert answer.status_code == 404, (method, url, answer.text)

        # their own dataset cannot take my reply, nor a made-up item id under mine
        theirs = await a_dataset(other, "theirs")
        taken = await other.post(
            f"/api/datasets/{theirs['id']}/items/from-reply", json={"message_id": reply_id}
        )
        assert taken.status_code == 404
        assert (await api.delete(f"{base}/items/{theirs['id']}")).status_code == 404
        assert len(await items_of(api, dataset["id"])) == 1

        # a dataset of another of my accounts cannot take a reply of this account's chat
        me = (await api.get("/api/session")).json()["user"]["id"]

        async def join() -> str:
            engine = live_server.runtime.engine
            account = await db_accounts.create_account(engine, "Second")
            await db_accounts.add_member(engine, account, me)
            return account

        second = await live_server.arun(join())
        created = await api.post("/api/datasets", json={"name": "x", "account_id": second})
        assert created.status_code == 201, created.text
        crossed = await api.post(
            f"/api/datasets/{created.json()['id']}/items/from-reply", json={"message_id": reply_id}
        )
        assert crossed.status_code == 404
        refused = await other.post("/api/datasets", json={"name": "y", "account_id": second})
        assert refused.status_code == 422
