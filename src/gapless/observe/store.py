"""`DbRecorder`: the recorder that stores traces, writing in the background, in batches.

The job's calls only append to a list (no lock, no I/O, no allocation beyond a
shallow copy of the observation). A writer task wakes when something was told,
waits `every` seconds to gather more, and writes the batch in one transaction:
runs, observations (a start and its end in one batch are one row), observations
a dead run left open (closed with the run's status), the hourly roll-ups and
each chat's totals (additive upserts), and each touched trace's totals
(recomputed, so nothing counts twice). After the commit it appends
`trace.updated` to the account's stream, so an open trace page grows live.
Imports `db`, `log`, `events`, `observe.rows`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from datetime import datetime, timedelta
from typing import Any

from gapless import events
from gapless.db import Connection, Engine
from gapless.db import traces as db
from gapless.db import usage as db_usage
from gapless.log.base import EventLog, account_stream
from gapless.observe import rows
from gapless.observe.recorder import Observation, Recorder, Run

logger = logging.getLogger("gapless.observe")
# Traces per transaction. On SQLite a transaction holds the loop (`db/inline.py`) and every
# delta waits behind it: 20 traces held it ~1.8 ms (median; 5 ms at worst) in W2's burst of
# ends, 5 hold it ~0.7 ms, for ~0.25 ms more CPU per extra transaction (benchmarks/README.md).
CHUNK = 5
ROLL_UPS = 25  # roll-up rows (hourly, per chat) per transaction
PAUSED = "requires_action"  # a run waiting for approval: its open observations stay open
CHAT_KEYS = ("chat_id",)
CHAT_SUMMED = frozenset(db_usage.CHAT_SUMS)


@dataclasses.dataclass
class _Batch:
    runs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    observations: dict[str, Observation] = dataclasses.field(default_factory=dict)
    ended: list[str] = dataclasses.field(default_factory=list)  # observation ids, in order
    unstarted: set[str] = dataclasses.field(default_factory=set)  # ends whose start is elsewhere
    run_ends: dict[str, tuple[str, dict[str, str] | None, datetime]] = dataclasses.field(
        default_factory=dict
    )


class DbRecorder:
    """Implements `observe.recorder.Recorder` over the database (and the account stream)."""

    def __init__(
        self,
        engine: Engine,
        log: EventLog | None = None,
        *,
        content: bool = True,
        every: float = 0.25,
        forward: Recorder | None = None,
        on: bool = True,
    ) -> None:
        self.on = on  # off (GAPLESS_OBSERVE=false): every call returns at once
        self.engine, self.log, self.content, self.every = engine, log, content, every
        self.forward = forward  # told everything first (the OpenTelemetry recorder)
        self._ops: list[tuple[Any, ...]] = []
        self._open: dict[str, Observation] = {}  # started here, not ended yet
        self._runs: dict[str, dict[str, Any]] = {}  # who and where of this process's runs
        # Totals of runs whose every observation this process saw (else: recomputed in SQL).
        self._totals: dict[str, dict[str, Any]] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.written = 0  # batches committed (tests wait on `flush`, never on this)

    # ---- the Recorder protocol: never blocks, never raises ---------------------

    def run_started(self, run: Run) -> None:
        if not self.on:
            return
        if self.forward is not None:
            _quietly(self.forward.run_started, run)
        self._push(("run", dataclasses.replace(run)))

    def started(self, observation: Observation) -> None:
        if not self.on:
            return
        if self.forward is not None:
            _quietly(self.forward.started, observation)
        self._push(("start", _copy(observation)))

    def ended(self, observation: Observation) -> None:
        if not self.on:
            return
        if self.forward is not None:
            _quietly(self.forward.ended, observation)
        self._push(("end", _copy(observation)))

    def run_ended(
        self, trace_id: str, status: str, error: dict[str, str] | None, ended_at: datetime
    ) -> None:
        if not self.on:
            return
        if self.forward is not None:
            _quietly(self.forward.run_ended, trace_id, status, error, ended_at)
        self._push(("run_end", trace_id, status, error, ended_at))

    def _push(self, op: tuple[Any, ...]) -> None:
        self._ops.append(op)
        if self._task is None:
            try:
                self._task = asyncio.get_running_loop().create_task(self._run())
            except RuntimeError:
                return  # no loop (a synchronous caller): `flush` writes it later
        self._wake.set()

    # ---- the writer ------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.every)  # gather a batch
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                logger.exception("writing traces failed; the batch is dropped")

    async def flush(self) -> None:
        """Write what was told so far (the writer does this every `every` seconds)."""
        async with self._lock:
            ops, self._ops = self._ops, []
            usage: dict[tuple[Any, ...], dict[str, Any]] = {}
            chats: dict[tuple[Any, ...], dict[str, Any]] = {}
            for part in _parts(ops, CHUNK):
                touched = await self._write(self._batch(part), usage, chats)
                self.written += 1
                await self._announce(touched)
                await asyncio.sleep(0)  # SQLite writes on the loop: let the streams run between
            # Summed over the whole batch: one upsert per roll-up row, in parts as above.
            hourly, totals = list(usage.values()), list(chats.values())
            for start in range(0, max(len(hourly), len(totals)), ROLL_UPS):
                if start:
                    await asyncio.sleep(0)
                async with self.engine.begin() as conn:
                    await db_usage.add_usage(conn, hourly[start : start + ROLL_UPS])
                    await db_usage.add_chat_usage(conn, totals[start : start + ROLL_UPS])

    async def close(self) -> None:
        telemetry = getattr(self.forward, "t", None)
        if telemetry is not None:  # spans and metrics still buffered go out now
            await asyncio.to_thread(telemetry.shutdown)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.flush()

    def _batch(self, ops: list[tuple[Any, ...]]) -> _Batch:
        batch = _Batch()
        for op in ops:
            if op[0] == "run":
                run: Run = op[1]
                row = rows.run_row(run)
                if not run.resumed:  # a resumed run's start (and earlier steps) are stored
                    self._runs[run.trace_id] = row
                    self._totals[run.trace_id] = rows.zero_totals()
                batch.runs.append(row)
            elif op[0] == "start":
                self._open[op[1].id] = op[1]
                batch.observations[op[1].id] = op[1]
            elif op[0] == "end":
                start = self._open.pop(op[1].id, None)
                if start is None and op[1].id not in batch.observations:
                    batch.unstarted.add(op[1].id)
                obs = rows.merged(start or batch.observations.get(op[1].id), op[1])
                batch.observations[obs.id] = obs
                batch.ended.append(obs.id)
            else:
                _, trace_id, status, error, ended_at = op
                batch.run_ends[trace_id] = (status, error, ended_at)
        return batch

    async def _write(
        self,
        batch: _Batch,
        usage: dict[tuple[Any, ...], dict[str, Any]],
        chats: dict[tuple[Any, ...], dict[str, Any]],
    ) -> dict[str, dict[str, Any]]:
        name = db.dialect(self.engine)
        async with self.engine.begin() as conn:
            wanted = {o.trace_id for o in batch.observations.values()} | set(batch.run_ends)
            who = {k: v for k, v in self._runs.items() if k in wanted}
            if missing := wanted - set(who):
                who.update(await db.trace_info(conn, missing))
            unknown = {r["reply_id"]: r for r in batch.runs if r["user_id"] is None}
            for reply_id, user_id in (await db.askers(conn, unknown)).items():
                unknown[reply_id]["user_id"] = user_id  # the same dict `_runs` holds
            await db.save_runs(conn, name, batch.runs)
            for obs_id, started in (await db.starts(conn, batch.unstarted)).items():
                batch.observations[obs_id].started_at = started  # told by another process
            await self._close_open(conn, batch)
            found = [o for o in batch.observations.values() if o.trace_id in who]
            saved = {
                o.id: rows.observation_row(o, who[o.trace_id]["account_id"], self.content)
                for o in found
            }
            await db.save_observations(conn, name, list(saved.values()))
            touched = await self._roll_up(conn, batch, saved, who, usage, chats)
            await db.end_runs(conn, self._ends(batch, who))
        for trace_id, (status, _, _) in batch.run_ends.items():
            self._totals.pop(trace_id, None)  # a continuation elsewhere recomputes them
            if status != PAUSED:
                self._runs.pop(trace_id, None)
        return {trace_id: who[trace_id] for trace_id in touched if trace_id in who}

    async def _close_open(self, conn: Connection, batch: _Batch) -> None:
        """A run that ended leaves nothing open: its observations end with its status."""
        closing = {t: end for t, end in batch.run_ends.items() if end[0] != PAUSED}
        if not closing:
            return
        stored = {row["id"]: _observation(row) for row in await db.open_observations(conn, closing)}
        here = {o.id: o for o in self._open.values() if o.trace_id in closing}
        for obs_id, obs in {**stored, **here, **batch.observations}.items():
            if obs.trace_id in closing and obs.ended_at is None and obs_id not in batch.ended:
                status, error, ended_at = closing[obs.trace_id]
                obs.status, obs.error, obs.ended_at = status, error, ended_at
                self._open.pop(obs_id, None)
                batch.observations[obs_id] = obs
                batch.ended.append(obs_id)

    async def _roll_up(
        self,
        conn: Connection,
        batch: _Batch,
        saved: dict[str, dict[str, Any]],
        who: dict[str, dict[str, Any]],
        usage: dict[tuple[Any, ...], dict[str, Any]],
        chats: dict[tuple[Any, ...], dict[str, Any]],
    ) -> set[str]:
        """Roll-ups of what ended; the traces touched (to announce). A trace's totals are
        recomputed only when one of its observations or the run itself ended."""
        texts: dict[str, tuple[str | None, str | None]] = {}
        ended = set(batch.ended)
        for obs_id, row in saved.items():
            obs = batch.observations[obs_id]
            place = who[obs.trace_id]
            question, answer = texts.get(obs.trace_id, (None, None))
            if obs.kind == "generation" and self.content:
                question = question or rows.question(obs)
                if obs.ended_at is not None:
                    answer = rows.answer(obs) or answer
            if obs_id in ended or question is not None:
                texts[obs.trace_id] = (question, answer)
            if obs_id not in ended or obs.kind == "span":
                continue
            if obs.trace_id in self._totals:
                rows.add_totals(self._totals[obs.trace_id], row)
            if obs.kind == "generation":
                rows.add_into(
                    usage, rows.usage_rows(row, place), db_usage.USAGE_KEYS, db_usage.SUMMED
                )
            rows.add_into(chats, [_chat_row(place, row, obs.kind)], CHAT_KEYS, CHAT_SUMMED)
        for trace_id, (status, _, ended_at) in batch.run_ends.items():
            if status != PAUSED and trace_id in who:
                row = _chat_row(who[trace_id], None, "trace")
                row["duration_ms"] = rows.ms_between(who[trace_id]["started_at"], ended_at) or 0
                rows.add_into(chats, [row], CHAT_KEYS, CHAT_SUMMED)
            texts.setdefault(trace_id, (None, None))
        known = {t: v for t, v in texts.items() if t in who and t in self._totals}
        await db.set_totals(
            conn,
            [
                {**self._totals[t], "b_id": t, "b_input": q, "b_output": a}
                for t, (q, a) in known.items()
            ],
        )
        await db.roll_up(
            conn, {t: v for t, v in texts.items() if t in who and t not in self._totals}
        )
        return {o.trace_id for o in batch.observations.values()} | set(batch.run_ends)

    def _ends(self, batch: _Batch, who: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        ends = []
        for trace_id, (status, error, ended_at) in batch.run_ends.items():
            paused = status == PAUSED
            started = who.get(trace_id, {}).get("started_at")
            ends.append(
                {
                    "b_id": trace_id,
                    "b_status": status,
                    "b_code": (error or {}).get("code"),
                    "b_message": (error or {}).get("message"),
                    "b_ended": None if paused else ended_at,
                    "b_duration": None if paused else rows.ms_between(started, ended_at),
                }
            )
        return ends

    async def _announce(self, touched: dict[str, dict[str, Any]]) -> None:
        if self.log is None:
            return
        for trace_id, place in touched.items():
            event = events.make("trace.updated", {"id": trace_id, "chat_id": place.get("chat_id")})
            with contextlib.suppress(Exception):  # a live view misses one update, no more
                await self.log.append(account_stream(place["account_id"]), event)


def _parts(ops: list[tuple[Any, ...]], traces: int) -> list[list[tuple[Any, ...]]]:
    """The ops in groups of at most `traces` traces, each trace's ops in order (a trace's
    writes never depend on another's, so each group is a transaction of its own)."""
    groups: dict[str, list[tuple[Any, ...]]] = {}
    for op in ops:
        key = op[1].trace_id if op[0] != "run_end" else op[1]
        groups.setdefault(key, []).append(op)
    ordered = list(groups.values())
    return [
        [op for group in ordered[i : i + traces] for op in group]
        for i in range(0, len(ordered), traces)
    ]


def _quietly(call: Any, *args: Any) -> None:
    """A recorder never raises into the job: what fails here is logged, and skipped."""
    try:
        call(*args)
    except Exception:
        logger.exception("a forwarded recorder failed")


def _copy(observation: Observation) -> Observation:
    return dataclasses.replace(observation, attributes=dict(observation.attributes))


def _observation(row: dict[str, Any]) -> Observation:
    """A stored open observation, enough of it to end it (the end's upsert rewrites its row)."""
    attributes = json.loads(row["attributes"]) if row.get("attributes") else {}
    for column in ("provider", "model", "step", "finish_reason", "cost"):
        if row.get(column) is not None:
            attributes[column] = row[column]
    started = rows.aware(row["started_at"])
    if row.get("ttft_ms") is not None:
        attributes["first_chunk_at"] = started + timedelta(milliseconds=row["ttft_ms"])
    tokens = ("input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens")
    if any(row.get(k) is not None for k in tokens):
        attributes["usage"] = {k: row[k] for k in tokens if row.get(k) is not None}
    if row.get("input") is not None:
        if row["kind"] == "tool":
            attributes["arguments"] = row["input"]
        else:
            with contextlib.suppress(ValueError):
                attributes["input"] = json.loads(row["input"])
    if row.get("output") is not None:
        attributes["output"] = row["output"]
    return Observation(
        id=row["id"],
        trace_id=row["trace_id"],
        kind=row["kind"],
        name=row["name"],
        started_at=started,
        parent_id=row["parent_id"],
        attributes=attributes,
    )


def _chat_row(place: dict[str, Any], row: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    row = row or {}
    return {
        "chat_id": place["chat_id"],
        "account_id": place["account_id"],
        "traces": 1 if kind == "trace" else 0,
        "generations": 1 if kind == "generation" else 0,
        "tools": 1 if kind == "tool" else 0,
        "input_tokens": row.get("input_tokens") or 0,
        "output_tokens": row.get("output_tokens") or 0,
        "cost": row.get("cost") or 0.0,
        "duration_ms": 0.0,
        "last_at": row.get("ended_at"),
    }
