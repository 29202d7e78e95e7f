"""OpenTelemetry export with the GenAI semantic conventions (off unless configured).

On when a standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`,
`..._METRICS_ENDPOINT`) is set and `OTEL_SDK_DISABLED` is not true; off, nothing
of OpenTelemetry is imported and nothing runs. Exported over OTLP/HTTP by the
official SDK (`OTEL_EXPORTER_OTLP_*` variables: headers, timeouts, protocol).

Spans: `invoke_agent {agent}` per run of a reply, under it `chat {model}` per
model call (CLIENT), `execute_tool {tool}` per tool call, and the waits; their
times are the recorder's, so a span is as long as what it measures. One
OpenTelemetry trace per reply: its trace id is derived from the reply id, so a
run in a worker, a continuation after an approval, and the API process's
`submit_reply` span (whose context the job carries, `observe.carrier`) all join
it. Message content only with `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`.
Metrics: `gen_ai.client.token.usage`, `gen_ai.client.operation.duration`,
`gen_ai.client.operation.time_to_first_chunk`. Imports `observe.recorder`,
`observe.carrier`, `observe.rows`.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gapless.observe import carrier, rows
from gapless.observe.recorder import Observation, Run

SCOPE = "gapless"
_reply_trace: ContextVar[int | None] = ContextVar("gapless_reply_trace", default=None)
_propagator = TraceContextTextMapPropagator()


def trace_id(reply_id: str) -> int:
    """The OpenTelemetry trace of a reply (128 bits of its id's hash; never zero)."""
    return int.from_bytes(hashlib.sha256(reply_id.encode()).digest()[:16], "big") or 1


class ReplyIds(RandomIdGenerator):
    """Random ids, except a new root span's trace id inside `for_reply` (the reply's)."""

    def generate_trace_id(self) -> int:
        return _reply_trace.get() or super().generate_trace_id()

    def is_trace_id_random(self) -> bool:
        return False


def _ns(when: datetime | None) -> int | None:
    return int(rows.aware(when).timestamp() * 1e9) if when is not None else None


class Telemetry:
    """The SDK's providers, built once per process from the environment."""

    def __init__(
        self,
        span_exporter: Any = None,
        metric_exporter: Any = None,
        interval_ms: float | None = None,
    ) -> None:
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", SCOPE)})
        self.tracer_provider = TracerProvider(resource=resource, id_generator=ReplyIds())
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(span_exporter or OTLPSpanExporter())
        )
        reader = PeriodicExportingMetricReader(
            metric_exporter or OTLPMetricExporter(), export_interval_millis=interval_ms
        )
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        self.tracer = self.tracer_provider.get_tracer(SCOPE)
        self.meter = self.meter_provider.get_meter(SCOPE)
        self.content = (
            os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "").lower()
            == "true"
        )

    def flush(self) -> None:
        self.tracer_provider.force_flush()
        self.meter_provider.force_flush()

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


class TracedRunner:
    """A runner whose `submit` is a `submit_reply` span in the reply's trace, its
    context carried with the job (`observe.carrier`)."""

    def __init__(self, inner: Any, telemetry: Telemetry) -> None:
        self.inner, self.telemetry = inner, telemetry

    async def submit(self, reply_id: str, *, key: str | None = None) -> None:
        token = _reply_trace.set(trace_id(reply_id))
        try:
            span = self.telemetry.tracer.start_span(
                "submit_reply",
                context=otel_context.Context(),  # a root: the reply's own trace
                kind=SpanKind.PRODUCER,
                attributes={"gapless.reply.id": reply_id, "gapless.job.key": key or reply_id},
            )
        finally:
            _reply_trace.reset(token)
        headers: dict[str, str] = {}
        _propagator.inject(headers, context=trace.set_span_in_context(span))
        try:
            with carrier.carrying(headers.get("traceparent")):
                await self.inner.submit(reply_id, key=key)
        finally:
            span.end()

    def __getattr__(self, name: str) -> Any:  # stop, close, drain...: the runner's own
        return getattr(self.inner, name)


class OtelRecorder:
    """Implements `observe.recorder.Recorder` as spans and metrics."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.t = telemetry
        self._runs: dict[str, tuple[Any, Run]] = {}  # trace id -> (run span, run)
        self._open: dict[str, tuple[Any, str]] = {}  # observation id -> (span, trace id)
        meter = telemetry.meter
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens used per call"
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="Model call duration"
        )
        self.first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to the first chunk of a streamed model call",
        )

    def run_started(self, run: Run) -> None:
        name = run.agent_name or run.model
        parent = otel_context.Context()
        given = carrier.current()
        if given:
            parent = _propagator.extract({"traceparent": given})
        token = _reply_trace.set(trace_id(run.reply_id))
        try:
            span = self.t.tracer.start_span(
                f"invoke_agent {name}",
                context=parent,
                kind=SpanKind.INTERNAL,
                start_time=_ns(run.started_at),
                attributes=_clean(
                    {
                        "gen_ai.operation.name": "invoke_agent",
                        "gen_ai.provider.name": run.model.partition(":")[0],
                        "gen_ai.agent.name": run.agent_name,
                        "gen_ai.agent.id": run.agent_id,
                        "gen_ai.conversation.id": run.chat_id,
                        "gen_ai.request.model": run.model,
                        "gapless.reply.id": run.reply_id,
                        "gapless.resumed": run.resumed,
                    }
                ),
            )
        finally:
            _reply_trace.reset(token)
        self._runs[run.trace_id] = (span, run)

    def started(self, observation: Observation) -> None:
        found = self._runs.get(observation.trace_id)
        if found is None:
            return  # a run this process did not start (the reaper's): nothing to nest in
        run_span, run = found
        parent = trace.set_span_in_context(run_span)
        a = observation.attributes
        if observation.kind == "generation":
            settings = a.get("settings") or {}
            model = a.get("model") or run.model
            name = f"chat {model}"
            kind = SpanKind.CLIENT
            attributes = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": a.get("provider") or model.partition(":")[0],
                "gen_ai.request.model": model,
                "gen_ai.request.temperature": settings.get("temperature"),
                "gen_ai.request.max_tokens": settings.get("max_tokens"),
                "gen_ai.conversation.id": run.chat_id,
                "gapless.step": a.get("step"),
            }
        elif observation.kind == "tool":
            tool = a.get("tool") or observation.name.removeprefix("execute_tool ")
            name, kind = f"execute_tool {tool}", SpanKind.INTERNAL
            attributes = {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": tool,
                "gen_ai.tool.call.id": a.get("call_id"),
                "gen_ai.tool.type": "function",
                "gen_ai.conversation.id": run.chat_id,
                "gapless.step": a.get("step"),
            }
            if self.t.content and a.get("arguments"):
                attributes["gen_ai.tool.call.arguments"] = str(a["arguments"])
        else:
            name, kind = observation.name, SpanKind.INTERNAL
            attributes = {"gapless.wait": a.get("what") or observation.name}
        span = self.t.tracer.start_span(
            name,
            context=parent,
            kind=kind,
            start_time=_ns(observation.started_at),
            attributes=_clean(attributes),
        )
        self._open[observation.id] = (span, observation.trace_id)

    def ended(self, observation: Observation) -> None:
        found = self._open.pop(observation.id, None)
        if found is None:
            return
        span = found[0]
        a = observation.attributes
        if observation.kind == "generation":
            self._model_call(span, observation)
        elif observation.kind == "tool" and self.t.content and a.get("output") is not None:
            output = a["output"]
            span.set_attribute(
                "gen_ai.tool.call.result", output if isinstance(output, str) else json.dumps(output)
            )
        _status(span, observation.status, observation.error)
        span.end(end_time=_ns(observation.ended_at))

    def _model_call(self, span: Any, observation: Observation) -> None:
        a = observation.attributes
        usage = a.get("usage") or {}
        model = a.get("model") or ""
        common = _clean(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": a.get("provider") or model.partition(":")[0],
                "gen_ai.request.model": model,
                "gen_ai.response.model": model,
                "error.type": (observation.error or {}).get("code"),
            }
        )
        span.set_attributes(
            _clean(
                {
                    "gen_ai.response.model": model,
                    "gen_ai.response.finish_reasons": [a["finish_reason"]]
                    if a.get("finish_reason")
                    else None,
                    "gen_ai.usage.input_tokens": usage.get("input_tokens"),
                    "gen_ai.usage.output_tokens": usage.get("output_tokens"),
                    "gen_ai.usage.cache_read.input_tokens": usage.get("cached_tokens"),
                    "gapless.cost_usd": a.get("cost"),
                }
            )
        )
        if self.t.content:
            given = rows.messages(a.get("input"))
            if given is not None:
                span.set_attribute("gen_ai.input.messages", json.dumps(given, default=str))
            if a.get("output") is not None:
                span.set_attribute("gen_ai.output.messages", json.dumps(a["output"], default=str))
        for kind in ("input", "output"):
            if usage.get(f"{kind}_tokens") is not None:
                self.tokens.record(usage[f"{kind}_tokens"], {**common, "gen_ai.token.type": kind})
        took = rows.ms_between(observation.started_at, observation.ended_at)
        if took is not None:
            self.duration.record(took / 1000, common)
        first = rows.ms_between(observation.started_at, a.get("first_chunk_at"))
        if first is not None:
            self.first_chunk.record(first / 1000, common)

    def run_ended(
        self, trace_id: str, status: str, error: dict[str, str] | None, ended_at: datetime
    ) -> None:
        found = self._runs.pop(trace_id, None)
        for obs_id in [i for i, (_, t) in self._open.items() if t == trace_id]:
            span = self._open.pop(obs_id)[0]
            _status(span, status, error)
            span.end(end_time=_ns(ended_at))
        if found is not None:
            span, _ = found
            _status(span, "complete" if status == "requires_action" else status, error)
            span.set_attribute("gapless.status", status)
            span.end(end_time=_ns(ended_at))


def _status(span: Any, status: str, error: dict[str, str] | None) -> None:
    if status in rows.ERRORS or status == "denied":
        span.set_attribute("error.type", (error or {}).get("code") or status)
        span.set_status(Status(StatusCode.ERROR, (error or {}).get("message") or status))
    elif status == "cancelled":
        span.set_attribute("gapless.cancelled", True)


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def watch_delivery(telemetry: Telemetry, tally: Any) -> None:
    """The delivery figures (`observe.delivery.Tally`) as observable metrics, read when the
    SDK collects (nothing between collections)."""
    from opentelemetry.metrics import CallbackOptions, Observation

    meter = telemetry.meter

    def counter(name: str, read: Any, description: str) -> None:
        def observe(options: CallbackOptions) -> list[Observation]:
            return [Observation(read())]

        meter.create_observable_counter(name, callbacks=[observe], description=description)

    def subscribers(options: CallbackOptions) -> list[Observation]:
        return [Observation(n, {"gapless.transport": t}) for t, n in tally.subscribers.items()]

    def resets(options: CallbackOptions) -> list[Observation]:
        return [Observation(n, {"gapless.reset.reason": r}) for r, n in tally.resets.items()]

    def lag(ring: Any, scale: float) -> Any:
        def observe(options: CallbackOptions) -> list[Observation]:
            found = tally.percentiles(ring)
            return [
                Observation(v / scale, {"quantile": q}) for q, v in found.items() if v is not None
            ]

        return observe

    meter.create_observable_up_down_counter(
        "gapless.delivery.subscribers", callbacks=[subscribers], description="Live subscriptions"
    )
    counter("gapless.delivery.events_appended", lambda: tally.appended, "Events appended")
    counter("gapless.delivery.events_delivered", lambda: tally.delivered, "Events delivered")
    counter("gapless.delivery.replays", lambda: tally.replays, "Resumes that replayed events")
    counter("gapless.delivery.replayed_events", lambda: tally.replayed, "Events replayed")
    counter("gapless.delivery.slow_subscribers_ended", lambda: tally.slow_ended, "Slow ended")
    counter("gapless.delivery.reconnects", lambda: tally.reconnects, "Resumed subscriptions")
    meter.create_observable_counter(
        "gapless.delivery.resets", callbacks=[resets], description="Resets by reason"
    )
    meter.create_observable_gauge(
        "gapless.delivery.lag_events", callbacks=[lag(tally.lag_events, 1.0)], unit="{event}"
    )
    meter.create_observable_gauge(
        "gapless.delivery.lag", callbacks=[lag(tally.lag_ms, 1000.0)], unit="s"
    )
