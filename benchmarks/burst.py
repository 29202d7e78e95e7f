"""W9, the burst: S replies posted within 20 ms, every subscriber already connected.

Job: measure how fast a server *starts* replies that all arrive at once (a class
pressing Enter together, a batch job, an experiment fanning out): per reply and
subscriber the start delay, POST sent -> that reply's first delta received, and
the POSTs' own round trips. Each POST has a raw keep-alive connection of its own
(`benchmarks.posters`: a pooled client cannot send 300 requests in 20 ms), and
the S requests are written in one tight loop. Imports the standard library and
`benchmarks.load`, `benchmarks.posters`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from benchmarks import load
from benchmarks import posters as posters_

SPREAD = 0.02  # seconds over which the S POSTs are written


async def first_deltas(subs: list[load.Subscriber], replies: dict[str, str], within: float) -> None:
    """Until every subscriber of an answered reply has its first delta (or `within` s)."""
    deadline = time.monotonic() + within
    waiting = [(s, replies[s.chat_id]) for s in subs if s.chat_id in replies]
    while waiting and time.monotonic() < deadline:
        waiting = [(s, r) for s, r in waiting if not (r in s.tracks and s.tracks[r].first_ns)]
        await asyncio.sleep(0.001)


def cpu_since(probe: load.Probe) -> dict[str, float]:
    """The server's CPU (ms) per process kind since `probe` began (scaled out: `api`,
    `worker`; one process: `other`), and the machine's `postgres` and `redis`."""
    now = load.cpu_by_role(probe.pid) if probe.pid else {}
    spent = {key: ms - probe.roles0.get(key, 0) for key, ms in now.items()}
    engines = {key: ms - probe.engines0[key] for key, ms in load.engines_cpu_ms().items()}
    return {**spent, **engines}


async def burst(
    target: load.Target,
    transport: str,
    streams: int,
    k: int,
    rate: int,
    tokens: int,
    window: contextlib.AbstractContextManager[Any] | None = None,
) -> dict[str, Any]:
    """W9: `streams` chats with `k` subscribers each; one POST per chat, all written within
    `SPREAD`; figures per reply and subscriber. `start` splits the delay at the model's
    first yield (the bench chunk is its clock reading), as W1 does. `window` is entered
    from the first POST to the last final event (the profiler)."""
    async with load.Api(target) as api:
        model = f"bench:r{rate}-n{tokens}"
        chats = await load.gather_limited((api.chat(model) for _ in range(streams)), 16)
        subs = await load.open_subscribers(target, transport, chats, k, [])
        posters = await load.open_posters(target, chats)
        raws = [
            p.request("POST", f"/api/chats/{c}/messages", {"content": "go"})
            for p, c in zip(posters, chats, strict=True)
        ]
        sent: list[int] = []
        answered: list[int] = []
        answers = []
        with load.Probe(target.pid) as probe, window or contextlib.nullcontext(), load.no_gc():
            t0 = time.monotonic()
            for i, (poster, raw) in enumerate(zip(posters, raws, strict=True)):
                due = t0 + SPREAD * i / len(posters)
                if time.monotonic() < due:
                    await asyncio.sleep(due - time.monotonic())
                sent.append(time.time_ns())
                answer = poster.send(raw)
                answer.add_done_callback(lambda _, i=i: answered.append(time.time_ns() - sent[i]))
                answers.append(answer)
            written_ms = (time.monotonic() - t0) * 1000
            done = await asyncio.gather(*answers, return_exceptions=True)
            replies: dict[str, str] = {}
            errors: list[str] = []
            for chat, outcome in zip(chats, done, strict=True):
                try:
                    replies[chat] = posters_.reply_of(outcome)
                except RuntimeError as exc:
                    errors.append(str(exc))
            await first_deltas(subs, replies, within=30)
            started = cpu_since(probe)
            early = sum(len(t.parts) for sub in subs for t in sub.tracks.values())
            await load.wait_all(subs, replies, within=tokens / max(rate, 1) + 30)
            ended = cpu_since(probe)
        load.close_all(subs)
        for poster in posters:
            poster.close()
    posted = dict(zip(chats, sent, strict=True))
    delays, starts = [], []
    for sub in subs:
        track = sub.tracks.get(replies.get(sub.chat_id, ""))
        if track is None or not track.first_ns:
            continue
        delays.append(track.first_ns - posted[sub.chat_id])
        starts.append(int(track.parts[0].split()[0]) - posted[sub.chat_id])
    faults = load.check(subs, replies)
    delivered = sum(len(t.parts) for sub in subs for t in sub.tracks.values())
    engines = list(load.ENGINES.values())
    server = sum(v for k, v in started.items() if k not in engines) if target.pid else None
    split = [key for key in started if key not in ("other", *engines)]  # scaled out only
    return {
        "start_p50_ms": load.percentile(delays, 0.5) / 1e6,
        "start_p99_ms": load.percentile(delays, 0.99) / 1e6,
        "start_max_ms": max(delays, default=0) / 1e6,
        "yield_p50_ms": load.percentile(starts, 0.5) / 1e6,  # POST sent -> the model's first yield
        "yield_p99_ms": load.percentile(starts, 0.99) / 1e6,
        "post_p50_ms": load.percentile(answered, 0.5) / 1e6,
        "post_p99_ms": load.percentile(answered, 0.99) / 1e6,
        "post_max_ms": max(answered, default=0) / 1e6,
        "written_ms": written_ms,
        "samples": len(delays),
        **faults,
        # server CPU from the first POST to the last first delta, per reply: the POST and
        # the reply's start (plus the deltas of replies already streaming by then); scaled
        # out, split between the API processes and the workers, as W2's per 1,000 chunks
        "start_cpu_ms_per_reply": server / streams if server is not None else float("nan"),
        **{f"{key}_start_cpu_ms_per_reply": started[key] / streams for key in split + engines},
        # deltas received by then: the start window's CPU includes streaming them
        "delivered_by_last_start": early,
        # the whole window (the burst and the S streams to their ends), per 1,000 delivered
        "delivered": delivered,
        **{
            f"{key}_cpu_ms_per_1000": ended[key] / delivered * 1000 if delivered else float("nan")
            for key in split + engines
        },
        "cpu_ms_per_1000": probe.server_cpu_ms / delivered * 1000 if delivered else float("nan"),
        "cpu_ms": probe.server_cpu_ms,
        "cpu_pressure": probe.cpu_pressure,
        "post_errors": len(errors),
        **({"first_error": errors[0]} if errors else {}),
    }
