"""The observability pages in Chromium: the dashboard's charts from seeded data, a filter
of the trace list, the waterfall of a two-step run, and a running trace growing live."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from gapless.observe.recorder import Observation, Run, trace_id_of
from gapless.observe.seed import Plan, seed
from gapless.observe.store import DbRecorder
from tests.browser.conftest import SCREENSHOTS, new_context, sign_in
from tests.support.server import LiveServer


@pytest.fixture(scope="module")
def observed(make_server: Callable[..., LiveServer]) -> LiveServer:
    """A server of its own (seeded chats would crowd other tests' sidebars), seeded."""
    live = make_server()
    live.run(seed(live.runtime.engine, Plan(generations=1500, accounts=2, days=25, seed=5)))
    return live


@pytest.fixture
def obs_page(browser: Browser, observed: LiveServer) -> Iterator[Page]:
    context = new_context(browser, observed)
    sign_in(context, observed)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(  # the CSP (style-src 'self') refuses style attributes: none may be refused
        "console",
        lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    yield page
    context.close()
    assert errors == [], f"uncaught errors or CSP violations in the page: {errors}"


def record(live: LiveServer, recorder: DbRecorder, *calls: tuple[str, Any]) -> None:
    """Tell the recorder, on the server's loop, and write it (as its writer would)."""

    async def tell() -> None:
        for method, argument in calls:
            getattr(recorder, method)(*argument)
        await recorder.flush()

    live.run(tell())


def chat_of(live: LiveServer) -> tuple[str, str]:
    import httpx

    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {live.token}"}) as c:
        chat = c.post("/api/chats", json={"title": "traced"}).json()
    return chat["id"], chat["account_id"]


def run_of(live: LiveServer, reply: str) -> Run:
    chat_id, account_id = chat_of(live)
    return Run(
        trace_id=trace_id_of(reply),
        reply_id=reply,
        chat_id=chat_id,
        account_id=account_id,
        user_id=None,
        agent_id=None,
        agent_name="helper",
        model="demo:echo",
        started_at=datetime.now(UTC),
    )


def call(trace: str, obs_id: str, step: int, kind: str = "generation", **attrs: Any) -> Observation:
    name = "chat demo:echo" if kind == "generation" else attrs.pop("tool", "calculator")
    return Observation(
        id=obs_id,
        trace_id=trace,
        kind=kind,
        name=name,  # type: ignore[arg-type]
        started_at=datetime.now(UTC),
        attributes={"step": step, **attrs},
    )


def done(obs: Observation, status: str = "complete", **attrs: Any) -> Observation:
    obs.ended_at = max(datetime.now(UTC), obs.started_at + timedelta(milliseconds=5))
    obs.status = status
    obs.attributes.update(attrs)
    return obs


def test_the_dashboard_draws_its_charts_and_cards_from_seeded_data(
    obs_page: Page, observed: LiveServer
) -> None:
    page = obs_page
    page.goto("/dashboard")
    page.get_by_role("button", name="30 d").click()
    expect(page.locator(".chart canvas")).to_have_count(5, timeout=15_000)
    for name in ("cost", "tokens", "latency", "ttft", "errors"):
        expect(page.locator(f'[data-chart="{name}"] canvas')).to_be_visible()
    expect(page.locator('[data-chart="cost"] .u-legend .u-series')).not_to_have_count(0)
    calls = page.locator('[data-card="Model calls"] .card-value')
    expect(calls).not_to_have_text("0")
    expect(page.locator('[data-top="models"] tbody tr')).to_have_count(6)
    expect(page.locator('[data-top="users"] tbody tr')).not_to_have_count(0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dashboard-30d.png"), full_page=True)
    page.get_by_role("button", name="24 h").click()
    expect(page.locator('[data-card="Model calls"] .card-value')).not_to_have_text(
        calls.text_content() or "", timeout=15_000
    )


def test_a_filter_changes_the_trace_list(obs_page: Page) -> None:
    page = obs_page
    page.goto("/traces")
    rows = page.locator(".traces-table tbody tr")
    expect(rows).to_have_count(50, timeout=15_000)
    statuses = set(rows.evaluate_all("rows => rows.map(r => r.dataset.status)"))
    assert len(statuses) >= 1
    page.get_by_label("Status").select_option("failed")
    expect(rows.first).to_have_attribute("data-status", "failed", timeout=15_000)
    assert set(rows.evaluate_all("rows => rows.map(r => r.dataset.status)")) == {"failed"}
    assert "status=failed" in page.url
    page.get_by_label("Search").fill("tokyo")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator(".traces-table tbody tr .question").first).to_contain_text(
        "Tokyo", timeout=15_000
    )


def test_the_waterfall_nests_a_two_step_run_and_shows_a_calls_content(
    obs_page: Page, observed: LiveServer
) -> None:
    recorder = DbRecorder(observed.runtime.engine, observed.runtime.log)
    run = run_of(observed, "msg_twostep")
    t = run.trace_id
    g1 = call(t, "g1", 1, input=[{"role": "user", "content": "time and 6*7?"}])
    t1 = call(t, "t1", 1, "tool", tool="current_time", arguments='{"zone": "UTC"}')
    t2 = call(t, "t2", 1, "tool", tool="calculator", arguments='{"expression": "6*7"}')
    record(
        observed,
        recorder,
        ("run_started", (run,)),
        ("started", (g1,)),
        ("ended", (done(g1, usage={"input_tokens": 12, "output_tokens": 3}),)),
        ("started", (t1,)),
        ("started", (t2,)),
        ("ended", (done(t1, output="12:00"),)),
        ("ended", (done(t2, output="42"),)),
    )
    g2 = call(t, "g2", 2)
    record(
        observed,
        recorder,
        ("started", (g2,)),
        ("ended", (done(g2, output="It is 12:00; 42."),)),
        ("run_ended", (t, "complete", None, datetime.now(UTC))),
    )
    page = obs_page
    page.goto(f"/traces/{t}")
    rows = page.locator(".waterfall .wf-row:not(.wf-scale)")
    expect(rows).to_have_count(6, timeout=15_000)
    shape = rows.evaluate_all(
        "rows => rows.map(r => [r.dataset.kind, r.dataset.depth, r.dataset.id])"
    )
    assert shape == [
        ["step", "0", "step-1"],
        ["generation", "1", "g1"],
        ["tool", "1", "t1"],
        ["tool", "1", "t2"],
        ["step", "0", "step-2"],
        ["generation", "1", "g2"],
    ]
    bar = page.locator('.wf-row[data-id="g2"] .wf-bar')  # placed on the timeline, not at 0
    assert bar.evaluate("b => parseFloat(getComputedStyle(b).left)") > 0
    page.locator('.wf-row[data-id="t2"]').click()
    expect(page.locator(".trace-detail")).to_contain_text("6*7")
    page.screenshot(path=str(SCREENSHOTS / "trace-waterfall.png"))
    expect(page.locator(".trace-detail")).to_contain_text("42")
    page.locator('.wf-row[data-id="g1"]').click()
    expect(page.locator(".trace-detail")).to_contain_text("time and 6*7?")
    page.get_by_role("link", name="Open chat").click()
    expect(page).to_have_url(f"{observed.url}/chats/{run.chat_id}?message={run.reply_id}")
    expect(page.locator("#page-title")).to_have_text("traced")


def test_a_running_trace_grows_live(obs_page: Page, observed: LiveServer) -> None:
    recorder = DbRecorder(observed.runtime.engine, observed.runtime.log)
    run = run_of(observed, "msg_live")
    t = run.trace_id
    g1 = call(t, "live-g1", 1)
    record(observed, recorder, ("run_started", (run,)), ("started", (g1,)))
    page = obs_page
    page.goto(f"/traces/{t}")
    rows = page.locator(".waterfall .wf-row:not(.wf-scale)")
    expect(rows).to_have_count(2, timeout=15_000)  # step 1 and its running call
    expect(page.locator('.wf-row[data-id="live-g1"]')).to_have_attribute("data-status", "running")
    page.wait_for_function("() => !!document.querySelector('.wf-row')")
    tool = call(t, "live-t1", 1, "tool", tool="calculator")
    record(observed, recorder, ("ended", (done(g1),)), ("started", (tool,)))
    expect(rows).to_have_count(3, timeout=15_000)
    expect(page.locator('.wf-row[data-id="live-g1"]')).to_have_attribute("data-status", "complete")
    record(
        observed,
        recorder,
        ("ended", (done(tool, status="failed"),)),
        ("run_ended", (t, "failed", {"code": "tool", "message": "no"}, datetime.now(UTC))),
    )
    expect(page.locator(".observe-inner.trace")).to_have_attribute(
        "data-status", "failed", timeout=15_000
    )


def test_a_reply_opens_its_trace_and_the_delivery_tab_shows_figures(
    obs_page: Page, observed: LiveServer
) -> None:
    import httpx

    with httpx.Client(
        base_url=observed.url, headers={"Authorization": f"Bearer {observed.token}"}
    ) as client:
        chat = client.post("/api/chats", json={"title": "to trace"}).json()
        reply = client.post(f"/api/chats/{chat['id']}/messages", json={"content": "hi"}).json()
        observed.drain()
        parent = reply["assistant_message"]["id"]
        for n in range(12):  # enough turns below it that the first reply is scrolled away
            more = client.post(
                f"/api/chats/{chat['id']}/messages",
                json={"content": f"and then {n} " + "more words " * 30, "parent_id": parent},
            ).json()
            observed.drain()
            parent = more["assistant_message"]["id"]
    observed.drain()
    observed.run(observed.runtime.recorder.flush())
    reply_id = reply["assistant_message"]["id"]
    page = obs_page
    page.goto(f"/chats/{chat['id']}")
    message = page.locator(f'.msg.assistant[data-id="{reply_id}"]')
    expect(message).to_have_attribute("data-status", "complete", timeout=15_000)
    message.hover()
    message.get_by_role("link", name="Open trace").click()
    expect(page).to_have_url(f"{observed.url}/traces/{trace_id_of(reply_id)}")
    expect(page.locator('.wf-row[data-kind="generation"]')).to_have_count(1, timeout=15_000)
    page.get_by_role("link", name="Open chat").click()  # back to the chat, at that reply
    expect(page).to_have_url(f"{observed.url}/chats/{chat['id']}?message={reply_id}")
    expect(message).to_have_class(re.compile(r"\bfocused\b"), timeout=15_000)
    expect(message).to_be_in_viewport()
    expect(page.locator(f'.msg.assistant[data-id="{parent}"]')).not_to_be_in_viewport()
    page.goto("/dashboard")
    page.get_by_role("tab", name="Delivery").click()
    expect(page.locator('.delivery [data-card="Live subscribers"]')).to_be_visible(timeout=15_000)
    expect(page.locator('.delivery [data-card="Appended / s"] .card-foot')).to_contain_text(
        "in all"
    )


def test_a_judges_trace_links_to_the_evaluators_not_to_a_chat(
    obs_page: Page, observed: LiveServer
) -> None:
    recorder = DbRecorder(observed.runtime.engine, observed.runtime.log)
    account_id = chat_of(observed)[1]
    run = Run(  # as evals/judge.py records it: no reply, its figures under the evaluator
        trace_id="trc_judge1",
        reply_id="",
        chat_id="evl_accuracy",
        account_id=account_id,
        user_id=None,
        agent_id=None,
        agent_name="judge accuracy",
        model="demo:echo",
        started_at=datetime.now(UTC),
    )
    g1 = call(run.trace_id, "jg1", 1)
    record(
        observed,
        recorder,
        ("run_started", (run,)),
        ("started", (g1,)),
        ("ended", (done(g1, output='{"score": 1, "explanation": "right"}'),)),
        ("run_ended", (run.trace_id, "complete", None, datetime.now(UTC))),
    )
    page = obs_page
    page.goto(f"/traces/{run.trace_id}")
    expect(page.locator('.wf-row[data-kind="generation"]')).to_have_count(1, timeout=15_000)
    expect(page.get_by_role("link", name="Open chat")).to_have_count(0)
    page.get_by_role("region", name="Observability").get_by_role("link", name="Evaluators").click()
    expect(page).to_have_url(f"{observed.url}/evaluators")
