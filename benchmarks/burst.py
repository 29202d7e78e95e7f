"""W9, the burst: S replies posted within 20 ms, every subscriber already connected.

Job: measure how fast a server *starts* replies that all arrive at once (a class
pressing Enter together, a batch job, an experiment fanning out): per reply and
subscriber the start delay, POST sent -> that reply's first delta received, and
the POSTs' own round trips. A pooled HTTP client cannot send 300 requests in
20 ms from one Python process (httpx costs ~0.3 ms of the generator's CPU per
request), so each POST has a raw keep-alive HTTP/1.1 connection of its own,
opened and warmed with a `GET /api/chats/{id}` first, and the S
requests are written in one tight loop. Imports the standard library and
`benchmarks.load`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any
from urllib.parse import urlsplit

from benchmarks import load

SPREAD = 0.02  # seconds over which the S POSTs are written


class Poster(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that sends one request at a time."""

    def __init__(self, target: load.Target) -> None:
        self.target = target
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError(f"closed: {exc}"))

    def request(self, method: str, path: str, body: Any = None) -> bytes:
        netloc = urlsplit(self.target.api).netloc
        payload = json.dumps(body).encode() if body is not None else b""
        headers = "".join(f"{k}: {v}\r\n" for k, v in self.target.headers().items())
        return (
            f"{method} {path} HTTP/1.1\r\nHost: {netloc}\r\n{headers}"
            f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
        ).encode() + payload

    def send(self, raw: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None and (self.answer is None or self.answer.done())
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.answer

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(rest) < length:
            return
        self.buffer = rest[length:]
        if self.answer is not None and not self.answer.done():
            self.answer.set_result((int(head.split(b" ", 2)[1]), rest[:length]))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_poster(target: load.Target) -> Poster:
    url = urlsplit(target.api)
    loop = asyncio.get_running_loop()
    _, poster = await loop.create_connection(
        lambda: Poster(target), url.hostname or "127.0.0.1", url.port or 80
    )
    return poster


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
        posters = await load.gather_limited((open_poster(target) for _ in chats), 64)
        for poster, chat in zip(posters, chats, strict=True):  # warm: the connection is open
            status, _ = await poster.send(poster.request("GET", f"/api/chats/{chat}"))
            if status != 200:
                raise RuntimeError(f"GET /api/chats/{chat} -> {status}")
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
                if isinstance(outcome, BaseException):
                    errors.append(f"{type(outcome).__name__}: {outcome}"[:300])
                elif outcome[0] >= 400:
                    errors.append(f"{outcome[0]} {outcome[1][:200]!r}")
                else:
                    replies[chat] = str(json.loads(outcome[1])["assistant_message"]["id"])
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
