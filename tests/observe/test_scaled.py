"""Scaled out (API process, worker, PostgreSQL, Redis): a worker SIGKILLed mid-run leaves
its trace `interrupted` with every observation closed (by the process that reaps it), and
the OpenTelemetry trace the API process starts goes on in the worker (context carried)."""

from __future__ import annotations

from typing import Any

import pytest

from gapless.observe.recorder import trace_id_of
from tests.observe.test_otel import Receiver, attributes
from tests.scale.cluster import Cluster, until

WAIT = 30.0


async def start(cluster: Cluster, http: Any) -> str:
    chat = (await http.post("/api/chats", json={"title": "scaled"})).json()
    response = await http.post(
        f"/api/chats/{chat['id']}/messages", json={"content": "hello, scaled out"}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["assistant_message"]["id"])


async def test_a_worker_killed_mid_run_leaves_its_trace_interrupted_and_closed(
    cluster: Cluster,
) -> None:
    a = await cluster.api()
    victim = await cluster.worker()
    async with cluster.client(a) as http:
        reply_id = await start(cluster, http)
        url = f"/api/traces/{trace_id_of(reply_id)}"

        async def trace() -> dict[str, Any]:
            response = await http.get(url)
            return response.json() if response.status_code == 200 else {}

        running = await until(trace, lambda t: bool(t.get("observations")), WAIT)
        assert running["status"] == "running"
        assert running["observations"][0]["ended_at"] is None
        victim.kill()
        ended = await until(trace, lambda t: t.get("status") == "interrupted", WAIT)
    assert ended["error"]["code"] == "interrupted"
    assert ended["ended_at"] is not None and ended["duration_ms"] > 0
    [call] = ended["observations"]
    assert (call["kind"], call["status"]) == ("generation", "interrupted")
    assert call["ended_at"] is not None and call["error"]["code"] == "interrupted"
    stored = await cluster.message(reply_id)
    assert stored["status"] == "failed" and stored["error"]["code"] == "interrupted"


async def test_the_trace_the_api_process_starts_goes_on_in_the_worker(
    monkeypatch: pytest.MonkeyPatch, pg_url: str, redis_url: str, tmp_path: Any
) -> None:
    receiver = Receiver()
    for name, value in {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
    }.items():
        monkeypatch.setenv(name, value)
    scaled = Cluster(database_url=pg_url, redis_url=redis_url, tmp=tmp_path)
    try:
        a = await scaled.api()
        await scaled.worker()
        async with scaled.client(a) as http:
            reply_id = await start(scaled, http)

            async def spans() -> list[Any]:
                return list(receiver.spans)

            found = await until(
                spans,
                lambda s: (
                    any(x.name.startswith("invoke_agent") for x in s)
                    and any(x.name == "submit_reply" for x in s)
                    and any(x.name.startswith("chat ") for x in s)
                ),
                WAIT,
            )
    finally:
        await scaled.close()
        receiver.server.shutdown()
    submit = next(s for s in found if s.name == "submit_reply")
    run = next(s for s in found if s.name.startswith("invoke_agent"))
    chat = next(s for s in found if s.name.startswith("chat "))
    assert attributes(submit)["gapless.reply.id"] == reply_id
    assert run.trace_id == submit.trace_id == chat.trace_id
    assert run.parent_span_id == submit.span_id  # across the API process and the worker
    assert chat.parent_span_id == run.span_id
    assert attributes(chat)["gen_ai.request.model"] == "demo:default"
