"""The database recorder stores exactly the tree the job told it, with its roll-ups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gapless.db import Engine
from gapless.db import traces as db_traces
from gapless.db import usage as db_usage
from gapless.db.tables import HISTOGRAM_BUCKETS
from gapless.observe import histogram
from gapless.observe.recorder import Observation, Run, trace_id_of
from gapless.observe.store import CHUNK, DbRecorder

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def at(ms: float) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def run(reply: str = "msg_abc", **fields: Any) -> Run:
    values: dict[str, Any] = dict(
        trace_id=trace_id_of(reply),
        reply_id=reply,
        chat_id="cht_1",
        account_id="acc_1",
        user_id="usr_1",
        agent_id="agt_1",
        agent_name="helper",
        model="demo:echo",
        started_at=T0,
    )
    values.update(fields)
    return Run(**values)


def generation(obs_id: str, trace: str, step: int, start: float, **attributes: Any) -> Observation:
    return Observation(
        id=obs_id,
        trace_id=trace,
        kind="generation",
        name="chat demo:echo",
        started_at=at(start),
        attributes={"provider": "demo", "model": "demo:echo", "step": step, **attributes},
    )


def ended(obs: Observation, end: float, status: str = "complete", **attributes: Any) -> Observation:
    obs.ended_at, obs.status = at(end), status
    obs.attributes.update(attributes)
    return obs


def test_histogram_columns_match_the_tables() -> None:
    assert HISTOGRAM_BUCKETS == histogram.BUCKETS


async def test_two_steps_with_two_parallel_tools_are_one_tree_with_roll_ups(engine: Engine) -> None:
    recorder = DbRecorder(engine)
    r = run()
    t = r.trace_id
    recorder.run_started(r)
    g1 = generation("obs_g1", t, 1, 5, input=[{"role": "user", "content": "time and 2+2?"}])
    recorder.started(g1)
    recorder.ended(
        ended(
            g1,
            400,
            first_chunk_at=at(105),
            output="",
            finish_reason="tool_calls",
            usage={"input_tokens": 10, "output_tokens": 4},
            cost=0.001,
        )
    )
    await recorder.flush()  # a batch boundary between the start and end of what follows
    tools = []
    for i, name in enumerate(("current_time", "calculator")):
        tool = Observation(
            id=f"obs_t{i}",
            trace_id=t,
            kind="tool",
            name=name,
            started_at=at(410),
            parent_id=None,
            attributes={"call_id": f"c{i}", "step": 1, "arguments": '{"x": 1}'},
        )
        recorder.started(tool)
        tools.append(tool)
    await recorder.flush()
    recorder.ended(ended(tools[0], 420, output="12:00"))
    recorder.ended(ended(tools[1], 430, status="failed"))
    g2 = generation("obs_g2", t, 2, 440)
    recorder.started(g2)
    recorder.ended(
        ended(
            g2,
            900,
            first_chunk_at=at(500),
            output="It is noon; 4.",
            usage={"input_tokens": 30, "output_tokens": 6},
            cost=0.002,
        )
    )
    recorder.run_ended(t, "complete", None, at(905))
    await recorder.flush()

    trace = await db_traces.get_trace(engine, t)
    assert trace is not None
    assert trace["status"] == "complete" and trace["duration_ms"] == 905.0
    assert (trace["generations"], trace["tools"], trace["steps"]) == (2, 2, 2)
    assert (trace["input_tokens"], trace["output_tokens"]) == (40, 10)
    assert abs(trace["cost"] - 0.003) < 1e-9
    assert trace["ttft_ms"] == 100.0
    assert trace["input"] == "time and 2+2?" and trace["output"] == "It is noon; 4."
    shape = [(o["id"], o["kind"], o["status"]) for o in trace["observations"]]
    assert shape == [
        ("obs_g1", "generation", "complete"),
        ("obs_t0", "tool", "complete"),
        ("obs_t1", "tool", "failed"),
        ("obs_g2", "generation", "complete"),
    ]
    assert trace["observations"][1]["input"] == {"x": 1}
    chat = await db_usage.chat_totals(engine, "cht_1")
    assert chat is not None
    assert (chat["traces"], chat["generations"], chat["tools"], chat["output_tokens"]) == (
        1,
        2,
        2,
        10,
    )
    hour = int(T0.timestamp() // 3600)
    rows = await db_usage.hourly(
        engine, None, dim="model", since_hour=hour, until_hour=hour + 1, bucket_hours=1
    )
    assert [(r["key"], r["count"], r["errors"], r["output_tokens"]) for r in rows] == [
        ("demo:echo", 2, 0, 10)
    ]


async def test_a_run_that_died_closes_its_open_observations_with_its_status(
    engine: Engine,
) -> None:
    worker = DbRecorder(engine)
    r = run("msg_dead")
    worker.run_started(r)
    g = generation("obs_dead", r.trace_id, 1, 0)
    worker.started(g)
    await worker.flush()
    # The worker is gone; the reaper, in another process, ends the run.
    reaper = DbRecorder(engine)
    reaper.run_ended(r.trace_id, "interrupted", {"code": "interrupted", "message": "gone"}, at(50))
    await reaper.flush()
    trace = await db_traces.get_trace(engine, r.trace_id)
    assert trace is not None and trace["status"] == "interrupted"
    assert trace["error"] == {"code": "interrupted", "message": "gone"}
    [obs] = trace["observations"]
    assert (obs["status"], obs["ended_at"] is not None, obs["error"]["code"]) == (
        "interrupted",
        True,
        "interrupted",
    )
    hour = int(T0.timestamp() // 3600)
    [row] = await db_usage.hourly(
        engine, ["acc_1"], dim="all", since_hour=hour, until_hour=hour + 1, bucket_hours=1
    )
    assert (row["count"], row["errors"]) == (1, 1)


async def test_content_capture_off_stores_no_messages_arguments_or_outputs(engine: Engine) -> None:
    recorder = DbRecorder(engine, content=False)
    r = run("msg_quiet")
    recorder.run_started(r)
    g = generation(
        "obs_q",
        r.trace_id,
        1,
        0,
        input=[{"role": "user", "content": "secret"}],
        tool_calls=[{"id": "c1", "name": "calculator", "arguments": '{"e": 1}'}],
    )
    recorder.started(g)
    recorder.ended(ended(g, 10, output="also secret"))
    recorder.run_ended(r.trace_id, "complete", None, at(20))
    await recorder.flush()
    trace = await db_traces.get_trace(engine, r.trace_id)
    assert trace is not None
    assert "secret" not in repr(trace)
    assert trace["observations"][0]["attributes"]["tool_calls"] == [
        {"id": "c1", "name": "calculator"}
    ]


async def test_retention_deletes_old_traces_and_their_content_but_keeps_the_roll_ups(
    engine: Engine,
) -> None:
    from gapless.observe.setup import expire

    recorder = DbRecorder(engine)
    for reply, when in (("msg_old", T0 - timedelta(days=400)), ("msg_new", datetime.now(UTC))):
        r = run(reply, started_at=when)
        recorder.run_started(r)
        g = Observation(
            id=f"obs_{reply}",
            trace_id=r.trace_id,
            kind="generation",
            name="chat",
            started_at=when,
            attributes={"model": "demo:echo", "input": "hi"},
        )
        recorder.started(g)
        g.ended_at, g.status = when + timedelta(seconds=1), "complete"
        recorder.ended(g)
        recorder.run_ended(r.trace_id, "complete", None, when + timedelta(seconds=1))
    await recorder.flush()
    assert await expire(engine, 30) == 1
    assert await db_traces.get_trace(engine, trace_id_of("msg_old")) is None
    assert await db_traces.get_trace(engine, trace_id_of("msg_new")) is not None
    old_hour = int((T0 - timedelta(days=400)).timestamp() // 3600)
    [kept] = await db_usage.hourly(
        engine, None, dim="all", since_hour=old_hour, until_hour=old_hour + 1, bucket_hours=1
    )
    assert kept["count"] == 1
    chat = await db_usage.chat_totals(engine, "cht_1")
    assert chat is not None and chat["traces"] == 2


async def test_a_batch_of_many_runs_is_written_in_parts_and_loses_none(engine: Engine) -> None:
    recorder = DbRecorder(engine)
    for n in range(47):  # over several parts of CHUNK traces
        r = run(f"msg_many{n}")
        recorder.run_started(r)
        g = generation(f"obs_many{n}", r.trace_id, 1, 0)
        recorder.started(g)
        recorder.ended(ended(g, 10, usage={"input_tokens": 1, "output_tokens": 2}))
        recorder.run_ended(r.trace_id, "complete", None, at(12))
    await recorder.flush()
    assert recorder.written == -(-47 // CHUNK)  # one transaction per part
    hour = int(T0.timestamp() // 3600)
    [row] = await db_usage.hourly(
        engine, None, dim="all", since_hour=hour, until_hour=hour + 1, bucket_hours=1
    )
    assert (row["count"], row["output_tokens"]) == (47, 94)
    for n in (0, 20, 46):
        trace = await db_traces.get_trace(engine, trace_id_of(f"msg_many{n}"))
        assert trace is not None and trace["status"] == "complete" and trace["output_tokens"] == 2
