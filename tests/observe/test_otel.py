"""OpenTelemetry export: the real SDK over OTLP/HTTP to a receiver this test starts,
which decodes the protobuf (opentelemetry-proto): span names, GenAI attributes, parent
links from the API's submit to the run and its calls, and the GenAI metrics."""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gapless.observe.recorder import trace_id_of
from gapless.providers.base import Usage
from tests.conftest import client_for
from tests.support.scripted import Call, Fail
from tests.support.server import LiveServer
from tests.test_agent_loop import agent_chat
from tests.test_streaming import send, start_chat, wait_until


class Receiver:
    """An OTLP/HTTP endpoint: every request decoded and kept."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.metrics: list[Any] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest.FromString(body)
                    for resource in request.resource_spans:
                        for scope in resource.scope_spans:
                            receiver.spans.extend(scope.spans)
                elif self.path == "/v1/metrics":
                    metrics = ExportMetricsServiceRequest.FromString(body)
                    for resource in metrics.resource_metrics:
                        for scope in resource.scope_metrics:
                            receiver.metrics.extend(scope.metrics)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    found = Receiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", found.url)
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gapless-test")
    yield found
    found.server.shutdown()


def attributes(span: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for kv in span.attributes:
        value = kv.value
        kind = value.WhichOneof("value")
        if kind == "array_value":
            found[kv.key] = [v.string_value for v in value.array_value.values]
        else:
            found[kv.key] = getattr(value, kind)
    return found


async def flushed(server: LiveServer) -> None:
    await server.adrain()
    await server.arun(server.runtime.recorder.flush())
    telemetry = server.runtime.recorder.forward.t  # type: ignore[union-attr]
    telemetry.flush()


async def test_an_agent_run_exports_genai_spans_linked_from_submit_to_each_call(
    receiver: Receiver, make_live_server: Any
) -> None:
    server: LiveServer = make_live_server()
    assert server.runtime.recorder.forward is not None
    server.script(
        "Checking. ",
        Call("c1", "echo", ('{"text": "a"}',)),
        Usage(input_tokens=20, output_tokens=5),
    )
    server.script("Done.", Usage(input_tokens=40, output_tokens=2))
    async with client_for(server) as http:
        chat_id = await agent_chat(http)
        reply_id = await send(http, chat_id, "use the tool")
        await flushed(server)
        trace = (await http.get(f"/api/traces/{trace_id_of(reply_id)}")).json()
    assert trace["status"] == "complete"
    spans = await wait_until(_now(receiver.spans), lambda s: len(s) >= 5)
    by_name: dict[str, list[Any]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    assert sorted(by_name) == [
        "chat scripted:default",
        "execute_tool echo",
        "invoke_agent helper",
        "submit_reply",
    ]
    assert len(by_name["chat scripted:default"]) == 2
    [submit] = by_name["submit_reply"]
    [agent] = by_name["invoke_agent helper"]
    chats = next(v for k, v in by_name.items() if k.startswith("chat "))
    [tool] = by_name["execute_tool echo"]
    expected = hashlib.sha256(reply_id.encode()).digest()[:16]
    assert {s.trace_id for s in spans} == {expected}  # one trace per reply
    assert agent.parent_span_id == submit.span_id  # the job carried the API's context
    assert all(c.parent_span_id == agent.span_id for c in [*chats, tool])
    a = attributes(agent)
    assert a["gen_ai.operation.name"] == "invoke_agent" and a["gen_ai.agent.name"] == "helper"
    assert a["gen_ai.conversation.id"] == chat_id
    first = attributes(min(chats, key=lambda s: s.start_time_unix_nano))
    assert first["gen_ai.operation.name"] == "chat"
    assert first["gen_ai.provider.name"] == "scripted"
    assert first["gen_ai.request.model"] == "scripted:default"
    assert first["gen_ai.response.model"] == "scripted:default"
    assert (first["gen_ai.usage.input_tokens"], first["gen_ai.usage.output_tokens"]) == (20, 5)
    assert "use the tool" in first["gen_ai.input.messages"]
    assert "Checking." in first["gen_ai.output.messages"]
    t = attributes(tool)
    assert (t["gen_ai.tool.name"], t["gen_ai.tool.call.id"]) == ("echo", "c1")
    assert t["gen_ai.operation.name"] == "execute_tool"
    names = await wait_until(_now([m.name for m in receiver.metrics]), lambda n: len(n) >= 3)
    assert {
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.duration",
        "gen_ai.client.operation.time_to_first_chunk",
    } <= set(names)
    usage = next(m for m in receiver.metrics if m.name == "gen_ai.client.token.usage")
    kinds = {
        next(kv.value.string_value for kv in p.attributes if kv.key == "gen_ai.token.type"): p.sum
        for p in usage.histogram.data_points
    }
    assert kinds == {"input": 60, "output": 7}


async def test_a_failed_model_call_is_an_error_span_with_its_type(
    receiver: Receiver, make_live_server: Any
) -> None:
    server: LiveServer = make_live_server()
    server.script("x", Fail("upstream_down", "down"))
    async with client_for(server) as http:
        await send(http, await start_chat(http), "hi")
        await flushed(server)
    spans = await wait_until(_now(receiver.spans), lambda s: len(s) >= 3)
    chat = next(s for s in spans if s.name.startswith("chat "))
    assert attributes(chat)["error.type"] == "upstream_down"
    assert chat.status.code == 2  # STATUS_CODE_ERROR
    run = next(s for s in spans if s.name.startswith("invoke_agent"))
    assert run.status.code == 2


async def test_without_an_endpoint_nothing_is_exported(make_live_server: Any) -> None:
    server: LiveServer = make_live_server()
    assert server.runtime.recorder.forward is None


def _now(value: Any) -> Any:
    async def read() -> Any:
        return value

    return read
