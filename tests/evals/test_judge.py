"""The LLM judge: a verdict parsed strictly (a table of answers), and the judge on a real
server against the scripted model answering a valid verdict, invalid ones (prose, score 7,
no explanation) and an error: only a verdict is a score, and every call is a trace of its
own with its tokens and cost."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gapless.evals.judge import FORMAT, VerdictError, parse_verdict
from gapless.providers.base import Usage
from tests.conftest import client_for
from tests.support.scripted import Fail
from tests.support.server import LiveServer
from tests.test_streaming import wait_until

PRICES = {"scripted:default": (1.0, 2.0)}  # USD per million input / output tokens
RUBRIC = {
    "name": "correctness",
    "content": (
        "Question: {{ input }}\nAnswer: {{ output }}\nReference: {{ expected }}\n"
        "Topic: {{ metadata.topic | default('none') }}\nScore 1 when the answer is right."
    ),
    "labels": ["production"],
}

VALID = [
    (
        '{"score": 0.8, "label": "good", "explanation": "Right."}',
        {"score": 0.8, "label": "good", "explanation": "Right."},
    ),
    (
        '  {"score": 1, "explanation": "Exact."}\n',
        {"score": 1.0, "label": None, "explanation": "Exact."},
    ),
    (
        '```json\n{"score": 0, "explanation": "Wrong city."}\n```',
        {"score": 0.0, "label": None, "explanation": "Wrong city."},
    ),
    (
        '```\n{"score": 0.25, "label": null, "explanation": "Partly."}\n```',
        {"score": 0.25, "label": None, "explanation": "Partly."},
    ),
]


@pytest.mark.parametrize(("answer", "verdict"), VALID)
def test_a_verdict_is_read_from_one_json_object(answer: str, verdict: dict[str, Any]) -> None:
    assert parse_verdict(answer) == verdict


INVALID = [
    ("The answer is right. Score: 0.9", "not a JSON object: 'The answer is right. Score: 0.9'"),
    ('Sure! {"score": 1, "explanation": "ok"}', "not a JSON object"),
    ('{"score": 1, "explanation": "ok"} I hope this helps', "not one JSON object (Extra data"),
    ('{"score": 7, "explanation": "very good"}', "score 7 is not from 0 to 1"),
    ('{"score": -0.1, "explanation": "x"}', "score -0.1 is not from 0 to 1"),
    ('{"score": "0.9", "explanation": "x"}', "score is not a number"),
    ('{"score": true, "explanation": "x"}', "score is not a number"),
    ('{"score": NaN, "explanation": "x"}', "NaN is not a number"),
    ('{"explanation": "no score"}', "score is missing"),
    ('{"score": 0.5}', "explanation is missing or not a text"),
    ('{"score": 0.5, "explanation": "  "}', "explanation is missing or not a text"),
    ('{"score": 0.5, "explanation": "x", "label": 3}', "label is not a text"),
    ('{"score": 0.5, "explanation": "x", "confidence": 1}', "unexpected keys confidence"),
    ('{"score": 0.5, "score": 0.9, "explanation": "x"}', "a key given twice"),
    ("[0.5]", "not a JSON object"),
    ('```json\n{"score": 1, "explanation": "x"}', "not one ```json fence"),
    ('```json\n{"score": 1, "explanation": "x"}\n```\n```json\n{}\n```', "not one ```json fence"),
    ("", "not a JSON object: ''"),
]


@pytest.mark.parametrize(("answer", "why"), INVALID)
def test_anything_else_is_not_a_verdict(answer: str, why: str) -> None:
    with pytest.raises(VerdictError) as raised:
        parse_verdict(answer)
    assert why in str(raised.value)


@pytest.fixture
def priced(make_live_server: Any) -> LiveServer:
    server: LiveServer = make_live_server(settings={"prices": PRICES})
    return server


async def a_judge(api: httpx.AsyncClient, **config: Any) -> dict[str, Any]:
    assert (await api.post("/api/prompts", json=RUBRIC)).status_code == 201
    created = await api.post(
        "/api/evaluators",
        json={
            "name": "accuracy",
            "kind": "judge",
            "config": {"prompt": {"name": "correctness"}, "model": "scripted:default", **config},
        },
    )
    assert created.status_code == 201, created.text
    evaluator: dict[str, Any] = created.json()
    return evaluator


async def judge_traces(
    server: LiveServer, api: httpx.AsyncClient, evaluator_id: str, count: int
) -> list[dict[str, Any]]:
    """The judge's traces (its calls add up under the evaluator's id), once all are written."""

    async def read() -> list[dict[str, Any]]:
        await server.arun(server.runtime.recorder.flush())
        found = (await api.get("/api/traces")).json()["traces"]
        return [t for t in found if t["chat_id"] == evaluator_id]

    traces: list[dict[str, Any]] = await wait_until(
        read, lambda t: len(t) == count and all(x["status"] != "running" for x in t)
    )
    return traces


CASE = {
    "output": "Paris",
    "input": "Capital of France?",
    "expected": "Paris",
    "metadata": {"topic": "geography"},
}


async def test_a_valid_verdict_is_a_score_and_its_call_is_traced_and_costed(
    priced: LiveServer,
) -> None:
    async with client_for(priced) as api:
        evaluator = await a_judge(api, **{"pass": 0.7})
        priced.script(
            '{"score": 0.8, "label": "right", "explanation": "Paris is correct."}',
            Usage(input_tokens=100, output_tokens=20),
        )
        tried = await api.post(f"/api/evaluators/{evaluator['id']}/try", json=CASE)
        assert tried.status_code == 200, tried.text
        assert tried.json() == {
            "evaluator_id": evaluator["id"],
            "name": "accuracy",
            "data_type": "numeric",
            "value": 0.8,
            "label": "right",
            "explanation": "Paris is correct.",
            "passed": True,
            "error": None,
        }
        prompt = priced.provider.prompts[-1]
        assert prompt.system == FORMAT
        [turn] = prompt.turns
        assert turn.role == "user" and turn.content == (
            "Question: Capital of France?\nAnswer: Paris\nReference: Paris\n"
            "Topic: geography\nScore 1 when the answer is right."
        )

        [trace] = await judge_traces(priced, api, evaluator["id"], 1)
        assert trace["agent_name"] == "judge accuracy" and trace["status"] == "complete"
        assert (
            trace["model"] == "scripted:default" and trace["account_id"] == evaluator["account_id"]
        )
        assert trace["prompt_name"] == "correctness" and trace["prompt_version"] == 1
        assert trace["input"].startswith("Question: Capital of France?")
        assert trace["cost"] == pytest.approx((100 * 1.0 + 20 * 2.0) / 1e6)
        detail = (await api.get(f"/api/traces/{trace['id']}")).json()
        [call] = detail["observations"]
        assert call["kind"] == "generation" and call["status"] == "complete"
        assert (call["input_tokens"], call["output_tokens"]) == (100, 20)
        assert call["cost"] == pytest.approx(trace["cost"])
        assert trace["output"].startswith('{"score": 0.8')
        nothing = (await api.get("/api/scores", params={"name": "accuracy"})).json()
        assert nothing["scores"] == []  # trying stores nothing


async def test_an_invalid_verdict_or_a_provider_error_is_an_error_never_a_score(
    priced: LiveServer,
) -> None:
    answers = [
        (
            "The answer looks right to me. Score: 0.9",
            "not a verdict: not a JSON object: 'The answer looks right to me. Score: 0.9'",
        ),
        ('{"score": 7, "explanation": "very good"}', "not a verdict: score 7 is not from 0 to 1"),
        ('{"score": 0.5}', "not a verdict: explanation is missing or not a text"),
    ]
    async with client_for(priced) as api:
        evaluator = await a_judge(api)
        for answer, error in answers:
            priced.script(answer, Usage(input_tokens=50, output_tokens=10))
            tried = (await api.post(f"/api/evaluators/{evaluator['id']}/try", json=CASE)).json()
            assert tried["error"] == error
            assert tried["value"] is None and tried["passed"] is None
            assert tried["label"] is None and tried["explanation"] is None
        priced.script(Fail("rate_limited", "slow down"))
        failed = (await api.post(f"/api/evaluators/{evaluator['id']}/try", json=CASE)).json()
        assert failed["error"] == "the judge's model failed: slow down"
        assert failed["value"] is None and failed["passed"] is None

        traces = await judge_traces(priced, api, evaluator["id"], 4)
        statuses = sorted(t["status"] for t in traces)
        assert statuses == ["complete", "complete", "complete", "failed"]
        answered = [t for t in traces if t["status"] == "complete"]
        assert all(t["cost"] == pytest.approx((50 + 10 * 2.0) / 1e6) for t in answered)
        [broken] = [t for t in traces if t["status"] == "failed"]
        assert broken["error"] == {"code": "rate_limited", "message": "slow down"}


async def test_a_judge_whose_prompt_or_model_is_gone_is_an_error(priced: LiveServer) -> None:
    async with client_for(priced) as api:
        evaluator = await a_judge(api)
        assert (await api.delete("/api/prompts/correctness")).status_code == 204
        tried = (await api.post(f"/api/evaluators/{evaluator['id']}/try", json=CASE)).json()
        assert tried["error"] == "the judge cannot start: no prompt named 'correctness'"
        assert tried["value"] is None
