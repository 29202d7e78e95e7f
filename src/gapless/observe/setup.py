"""The recorder a process uses, built from settings, and the janitor's retention.

`build_recorder` returns the database recorder, and with OpenTelemetry
configured (`OTEL_EXPORTER_OTLP_*`) also the exporter's, behind one `Recorder`.
Imports `config`, `db`, `log`, `observe.*`.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import TypeVar

from gapless.config import Settings
from gapless.db import Engine
from gapless.db import traces as db_traces
from gapless.db.rows import now
from gapless.log.base import EventLog
from gapless.observe.delivery import CountingLog
from gapless.observe.store import DbRecorder

R = TypeVar("R")
EXPIRE_EVERY = 3600.0  # seconds between the janitor's retention passes


def counted(log: EventLog, on: bool = True) -> EventLog:
    """The process's event log, counting what streams (`observe.delivery`); as it is when
    observability is off (GAPLESS_OBSERVE=false)."""
    return CountingLog(log) if on else log


def build_recorder(settings: Settings, engine: Engine, log: EventLog) -> DbRecorder:
    """What `runtime.build` puts in the job's `Context` (`close()` it with the runtime);
    with OpenTelemetry configured it tells the exporter's recorder too."""
    forward = None
    if not settings.observe:
        return DbRecorder(engine, log, on=False)
    if otel_configured():
        from gapless.observe import otel  # the SDK is imported only when export is on

        forward = otel.OtelRecorder(otel.Telemetry())
        if isinstance(log, CountingLog):
            otel.watch_delivery(forward.t, log.tally)
    return DbRecorder(engine, log, content=settings.trace_content, forward=forward)


def traced(runner: R, recorder: DbRecorder) -> R:
    """The runner, whose submits carry the trace context to the run when exporting."""
    telemetry = getattr(recorder.forward, "t", None)
    if telemetry is None:
        return runner
    from gapless.observe import otel

    found: R = otel.TracedRunner(runner, telemetry)  # type: ignore[assignment]
    return found


def otel_configured() -> bool:
    """`observe.otel.configured` without importing the SDK."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return any(
        os.environ.get(f"OTEL_EXPORTER_OTLP{n}_ENDPOINT") for n in ("", "_TRACES", "_METRICS")
    )


async def expire(engine: Engine, days: float) -> int:
    """Delete traces (and their content) older than `days`; the roll-ups stay. The count."""
    await db_traces.optimize(engine)  # hourly, with retention: the planner's statistics
    if days <= 0:
        return 0
    return await db_traces.delete_before(engine, now() - timedelta(days=days))
