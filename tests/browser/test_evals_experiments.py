"""Experiments as a team runs them: a dataset's run started from its page moves live on the
run's page (the scripted model holds each item at a gate, so every step of the progress is
seen), and two runs of two prompt versions compared side by side show the item that got
worse, filterable, until the baseline moves."""

from __future__ import annotations

import time
import uuid
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import Api, assistant, screenshot, wait_final
from tests.support.scripted import Gate
from tests.support.server import LiveServer

ITEMS = [("Capital of France?", "Paris"), ("2+2?", "4"), ("Colour of grass?", "green")]

# Every text the run's progress showed, in order (the page must move through each).
PROGRESS = """
window.__progress = [];
new MutationObserver(() => {
  const text = document.querySelector('#experiment-progress')?.textContent;
  if (text && window.__progress.at(-1) !== text) window.__progress.push(text);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def a_dataset(api: Api, suffix: str) -> dict[str, Any]:
    dataset = api.call("POST", "/api/datasets", json={"name": f"quiz {suffix}"})
    for question, answer in ITEMS:
        api.call(
            "POST",
            f"/api/datasets/{dataset['id']}/items",
            json={"input": question, "expected": answer},
        )
    return dict(dataset)


def an_evaluator(api: Api, suffix: str) -> dict[str, Any]:
    body = {"name": f"exact-{suffix}", "kind": "exact", "config": {}}
    return dict(api.call("POST", "/api/evaluators", json=body))


def until_ended(api: Api, experiment_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        found = api.call("GET", f"/api/experiments/{experiment_id}")
        if found["status"] in ("completed", "stopped"):
            return dict(found)
        assert time.monotonic() < deadline, f"the run never ended: {found}"
        time.sleep(0.05)


def test_a_runs_progress_moves_live_on_its_page(page: Page, server: LiveServer, api: Api) -> None:
    suffix = uuid.uuid4().hex[:6]
    dataset = a_dataset(api, suffix)
    evaluator = an_evaluator(api, suffix)
    agent = api.call(
        "POST",
        "/api/agents",
        json={"name": f"Quiz master {suffix}", "model": "scripted:default"},
    )
    gates = [Gate(), Gate(), Gate()]
    for gate, answer in zip(gates, ("Paris", "4", "blue"), strict=True):
        server.script(gate, answer)

    page.add_init_script(PROGRESS)
    streams: list[str] = []  # the account stream's connections the tab opens
    page.on("request", lambda r: streams.append(r.url) if r.url.endswith("/api/events") else None)
    page.goto(f"/datasets/{dataset['id']}")
    expect(page.locator("#page-title")).to_have_text(f"quiz {suffix}")
    form = page.get_by_role("form", name="New experiment")
    form.get_by_label("Name", exact=True).fill("first try")
    form.get_by_label("Concurrency", exact=True).fill("1")
    form.get_by_label("An agent (with its tools)").check()
    form.get_by_label("Agent", exact=True).select_option(agent["id"])
    form.locator(f'[data-evaluator="exact-{suffix}"]').check()
    form.get_by_role("button", name="Run experiment").click()

    expect(page.locator("#page-title")).to_have_text("first try")
    progress = page.locator("#experiment-progress")
    assert gates[0].reached.wait(30), "the first item never reached the model"
    expect(progress).to_have_text("0 / 3 done")
    page.evaluate("window.__same = true")  # gone if the page reloads
    rows = page.locator(".experiment-items tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_have_attribute("data-status", "running")

    gates[0].set()
    expect(progress).to_have_text("1 / 3 done")
    expect(rows.nth(0)).to_have_attribute("data-status", "done")
    expect(rows.nth(0).locator(".item-output")).to_have_text("Paris")
    expect(rows.nth(0).locator(f'[data-score="exact-{suffix}"]')).to_have_attribute(
        "data-kind", "pass"
    )
    assert gates[1].reached.wait(30)
    expect(rows.nth(1)).to_have_attribute("data-status", "running")
    screenshot(page, "experiment-live")

    gates[1].set()
    expect(progress).to_have_text("2 / 3 done")
    gates[2].set()
    expect(progress).to_have_text("3 / 3 done")
    expect(page.locator("#experiment-status")).to_have_text("completed")
    expect(page.locator(".experiment .figures")).to_contain_text("Passed2 / 3 (66.7%)")
    expect(rows.nth(2).locator(".item-output")).to_have_text("blue")
    expect(rows.nth(2).locator(f'[data-score="exact-{suffix}"]')).to_have_attribute(
        "data-kind", "fail"
    )
    assert page.evaluate("window.__same") is True
    assert page.evaluate("window.__progress") == [
        "0 / 3 done",
        "1 / 3 done",
        "2 / 3 done",
        "3 / 3 done",
    ]
    experiment_id = page.url.rsplit("/", 1)[-1]
    stored = api.call("GET", f"/api/experiments/{experiment_id}")
    assert stored["target"]["agent_id"] == agent["id"]
    assert [e for e in stored["evaluators"]] == [evaluator["id"]]

    rows.nth(1).get_by_role("link", name="Trace").click()
    expect(page).to_have_url(f"{server.url}/traces/{stored['items'][1]['trace_id']}")
    expect(page.locator(".waterfall .wf-row").first).to_be_visible()
    # the dataset's, the run's and the trace's pages all followed the shell's one connection
    assert len(streams) == 1, streams


def test_a_datasets_runs_move_live_on_its_page(page: Page, server: LiveServer, api: Api) -> None:
    suffix = uuid.uuid4().hex[:6]
    dataset = a_dataset(api, suffix)
    agent = api.call(
        "POST", "/api/agents", json={"name": f"Runner {suffix}", "model": "scripted:default"}
    )
    gates = [Gate(), Gate(), Gate()]
    for gate, answer in zip(gates, ("Paris", "4", "blue"), strict=True):
        server.script(gate, answer)
    run = api.call(
        "POST",
        "/api/experiments",
        json={"dataset_id": dataset["id"], "target": {"agent_id": agent["id"]}, "concurrency": 1},
    )
    try:
        assert gates[0].reached.wait(30), "the first item never reached the model"
        page.goto(f"/datasets/{dataset['id']}")
        row = page.locator(f'tr[data-experiment="{run["id"]}"]')
        expect(row.locator('[data-cell="done"]')).to_have_text("0 / 3")
        page.evaluate("window.__same = true")  # gone if the page reloads
        gates[0].set()
        expect(row.locator('[data-cell="done"]')).to_have_text("1 / 3")
        gates[1].set()
        gates[2].set()
        expect(row.locator('[data-cell="done"]')).to_have_text("3 / 3")
        expect(row.locator('[data-cell="status"]')).to_contain_text("completed")
        assert page.evaluate("window.__same") is True
    finally:
        for gate in gates:
            gate.set()


def test_the_comparison_shows_the_item_that_got_worse(
    page: Page, server: LiveServer, api: Api
) -> None:
    suffix = uuid.uuid4().hex[:6]
    dataset = a_dataset(api, suffix)
    evaluator = an_evaluator(api, suffix)
    prompt = f"quiz-{suffix}"
    api.call("POST", "/api/prompts", json={"name": prompt, "content": "Answer briefly."})
    api.call("POST", f"/api/prompts/{prompt}/versions", json={"content": "Answer in words."})
    runs = []
    for version, answers in ((1, ("Paris", "4", "blue")), (2, ("Paris", "four", "green"))):
        for answer in answers:
            server.script(answer)
        created = api.call(
            "POST",
            "/api/experiments",
            json={
                "dataset_id": dataset["id"],
                "name": f"{prompt} v{version}",
                "target": {
                    "prompt": {"name": prompt, "version": version},
                    "model": "scripted:default",
                },
                "evaluators": [evaluator["id"]],
                "concurrency": 1,
            },
        )
        runs.append(until_ended(api, created["id"]))

    page.goto(f"/datasets/{dataset['id']}")
    page.get_by_label(f"Compare {prompt} v1").check()
    page.get_by_label(f"Compare {prompt} v2").check()
    screenshot(page, "dataset-runs")
    page.get_by_role("button", name="Compare 2").click()
    expect(page).to_have_url(f"{server.url}/compare?ids={runs[0]['id']},{runs[1]['id']}")
    expect(page.locator("#compare-reference")).to_have_text(
        f"Outputs are diffed against {prompt} v1."
    )
    table = page.locator(".compare-runs")
    expect(table.locator(f'tr[data-experiment="{runs[0]["id"]}"] .pass-rate')).to_have_text(
        "66.7% (2/3)"
    )
    items = page.locator(".compare-item")
    expect(items).to_have_count(3)
    worse = page.locator(".compare-item.regressed")
    expect(worse).to_have_count(1)
    expect(worse.locator(".compare-input")).to_have_text("2+2?")
    cell = worse.locator(f'.compare-cell[data-experiment="{runs[1]["id"]}"]')
    expect(cell).to_have_attribute("data-regressed", "true")
    expect(cell.locator(".compare-output del")).to_have_text("4")
    expect(cell.locator(".compare-output ins")).to_have_text("four")
    expect(cell.locator(f'[data-score="exact-{suffix}"]')).to_have_attribute("data-kind", "fail")
    better = page.locator(".compare-item[data-item] .compare-cell.improved")
    expect(better).to_have_count(1)
    screenshot(page, "compare")

    page.get_by_label("Only regressed items (1)").check()
    expect(items).to_have_count(1)
    expect(items.locator(".compare-input")).to_have_text("2+2?")
    page.get_by_label("Only regressed items (1)").uncheck()
    expect(items).to_have_count(3)

    page.get_by_role("button", name=f"Mark {prompt} v2 as baseline").click()
    expect(page.locator("#compare-reference")).to_have_text(
        f"Outputs are diffed against {prompt} v2 (the baseline)."
    )
    expect(worse).to_have_count(1)
    expect(worse.locator(".compare-input")).to_have_text("Colour of grass?")
    assert api.call("GET", f"/api/datasets/{dataset['id']}")["baseline_id"] == runs[1]["id"]


def test_a_reply_goes_to_a_dataset_from_the_chat_and_items_are_added_and_imported(
    page: Page, server: LiveServer, api: Api
) -> None:
    name = f"tides {uuid.uuid4().hex[:6]}"
    dataset = api.call("POST", "/api/datasets", json={"name": name})
    chat = api.chat("Tides")
    server.script("High tide ", "is at 3 am.")
    reply_id = api.send(chat["id"], "When is high tide?")["assistant_message"]["id"]
    server.drain()
    page.goto(f"/chats/{chat['id']}")
    wait_final(page, reply_id)
    reply = assistant(page, reply_id)
    reply.get_by_role("button", name="Add to dataset").click()
    reply.get_by_label("Dataset", exact=True).select_option(dataset["id"])
    reply.get_by_role("button", name="Add", exact=True).click()
    expect(reply.locator(".dataset-pick-note")).to_have_text(f"Added to {name}")
    reply.get_by_role("link", name=name).click()

    expect(page.locator("#page-title")).to_have_text(name)
    rows = page.locator(".dataset-items tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text("When is high tide?")
    expect(rows.nth(0)).to_contain_text("High tide is at 3 am.")
    expect(rows.nth(0)).to_contain_text("from a reply")

    form = page.get_by_role("form", name="Add an item")
    form.get_by_label("Input (the user's message)").fill("And low tide?")
    form.get_by_label("Expected output").fill("At 9 am.")
    form.get_by_label("Variables (JSON object)").fill('{"place": "Brest"}')
    form.get_by_role("button", name="Add item").click()
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("place=Brest")

    imports = page.get_by_role("form", name="Import items")
    imports.get_by_label("Lines").fill('{"input": "fine"}\nnot json\n{"expected": "no input"}')
    imports.get_by_role("button", name="Import").click()
    expect(page.locator("#import-error")).to_be_visible()
    expect(page.locator("#import-error")).to_contain_text("2")
    lines = page.locator("#import-error .import-errors li")  # each refused line, listed
    expect(lines).to_have_count(2)
    expect(lines.first).to_contain_text("Line 2")
    expect(lines.nth(1)).to_contain_text("Line 3")
    expect(rows).to_have_count(2)  # nothing imported
    imports.get_by_label("Lines").fill('{"input": "one"}\n{"input": "two", "expected": "2"}')
    imports.get_by_role("button", name="Import").click()
    expect(rows).to_have_count(4)
    expect(rows.nth(3)).to_contain_text("two")
    screenshot(page, "dataset")
    assert api.call("GET", f"/api/datasets/{dataset['id']}")["count"] == 4


def test_an_evaluator_is_created_by_kind_and_tried_on_its_page(
    page: Page, server: LiveServer, api: Api
) -> None:
    name = f"one-word-{uuid.uuid4().hex[:6]}"
    page.goto("/evaluators")
    expect(page.locator("#page-title")).to_have_text("Evaluators")
    page.get_by_role("button", name="New evaluator").click()
    form = page.get_by_role("form", name="New evaluator")
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_label("Kind", exact=True).select_option("regex")
    form.get_by_label("Pattern", exact=True).fill(r"^\w+$")
    form.get_by_role("button", name="Create evaluator").click()
    expect(page.locator(".evaluators-table")).to_contain_text(name)
    created = [e for e in api.call("GET", "/api/evaluators")["evaluators"] if e["name"] == name]
    assert [(e["kind"], e["config"]["pattern"]) for e in created] == [("regex", r"^\w+$")]

    trying = page.get_by_role("form", name="Try an evaluator")
    trying.get_by_label("Evaluator", exact=True).select_option(label=f"{name} (regex)")
    trying.get_by_label("Output", exact=True).fill("hello")
    trying.get_by_role("button", name="Try").click()
    expect(trying.locator(f'.try-result [data-score="{name}"]')).to_have_attribute(
        "data-kind", "pass"
    )
    trying.get_by_label("Output", exact=True).fill("two words")
    trying.get_by_role("button", name="Try").click()
    expect(trying.locator(f'.try-result [data-score="{name}"]')).to_have_attribute(
        "data-kind", "fail"
    )
    screenshot(page, "evaluators")
