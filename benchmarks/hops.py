"""The POST path and a reply's start, hop by hop: server CPU per reply, measured in-process.

Job: say where a reply's start goes, in ms of CPU, without a sampling profiler's
overhead. The real app (`web.app.create_app` over `runtime.build`, SQLite in a
fresh data dir, the bench model `bench:r0-n1`) is driven over ASGI, one POST
at a time, each followed by its whole reply; each hop is a wrapper that adds
the thread's CPU time (`time.thread_time`) spent inside it (the hops timed do not
suspend on SQLite, which runs on the loop: `db/inline.py`; the job's way from its
start to the provider's first chunk does, and is left out). uvicorn's HTTP parsing and
socket writes are not in these figures (W9's `start_cpu_ms_per_reply` has them).

    .venv/bin/python -m benchmarks.hops --replies 300

Imports `gapless` (the hops it times), httpx.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import httpx

Totals = collections.defaultdict[str, float]


def timed(totals: Totals, owner: Any, name: str, label: str) -> Callable[[], None]:
    """Wrap `owner.name` (a coroutine function) so its thread CPU adds to `totals[label]`;
    the undo."""
    original = getattr(owner, name)

    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return await original(*args, **kwargs)
        finally:
            totals[label] += time.thread_time() - started

    setattr(owner, name, wrapper)
    return lambda: setattr(owner, name, original)


async def measure(replies: int) -> dict[str, float]:
    os.environ["GAPLESS_DATA_DIR"] = tempfile.mkdtemp(prefix="gapless-hops-")
    os.environ["GAPLESS_PROVIDERS"] = '["demo","bench"]'
    os.environ["GAPLESS_RATE_LIMIT"] = os.environ["GAPLESS_RATE_BURST"] = "1000000"
    from gapless import chats, steps
    from gapless.config import Settings
    from gapless.db import accounts as db_accounts
    from gapless.db import agents as db_agents
    from gapless.db import chats as db_chats
    from gapless.db import generations as db_generations
    from gapless.db import replies as db_replies
    from gapless.evals import after as evals_after
    from gapless.runtime import build
    from gapless.web.app import create_app

    runtime = build(Settings())
    created = await runtime.start()
    assert created is not None
    app = create_app(runtime)
    totals: Totals = collections.defaultdict(float)
    hops = [
        (db_accounts, "caller_for_token", "POST: the caller, by its token"),
        (chats.Chats, "post", "POST: Chats.post, the use case (all of it)"),
        (chats.Chats, "chat", "POST:   the chat, read and checked (404)"),
        (db_chats, "create_exchanges", "POST:   both messages inserted, the chat touched"),
        (runtime.log, "append", "log appends, all (POST: 3, job: the delta and the end)"),
        (db_chats, "reply_context", "job: the reply's chat and path, read"),
        (db_replies, "start_replies", "job: the reply taken (lease, position, generation row)"),
        (steps, "generate", "job: the whole reply (start, one delta, end)"),
        (db_replies, "finish_reply", "job end: the final write"),
        (db_generations, "finish_generation", "job end: the generation record"),
        (db_agents, "close_calls", "job end: open tool calls closed"),
        (evals_after, "reply_ended", "job end: the after-reply hook (evals)"),
    ]
    undo = [timed(totals, owner, name, label) for owner, name, label in hops]
    # the one delta of the reply (bench:r0-n1): numbered, appended, tracked for the flusher
    undo.append(timed(totals, steps, "publish", "job: the first delta published"))

    async def app_cpu(scope: Any, receive: Any, send: Any) -> None:
        started = time.thread_time()
        try:
            await app(scope, receive, send)
        finally:
            if scope["type"] == "http" and scope["method"] == "POST":
                totals["POST: all of it, server side (Guard, FastAPI, route)"] += (
                    time.thread_time() - started
                )

    headers = {"Authorization": f"Bearer {created.token}"}
    transport = httpx.ASGITransport(app=app_cpu)
    warm = 20
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://hops", headers=headers
        ) as http:
            chat_ids = [
                (await http.post("/api/chats", json={"model": "bench:r0-n1"})).json()["id"]
                for _ in range(replies + warm)
            ]
            for n, chat_id in enumerate(chat_ids):
                if n == warm:
                    totals.clear()
                answer = await http.post(f"/api/chats/{chat_id}/messages", json={"content": "go"})
                assert answer.status_code == 201, answer.text
                await runtime.runner.drain()
    finally:
        for restore in undo:
            restore()
        await runtime.close()
    return {label: seconds * 1000 / replies for label, seconds in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replies", type=int, default=300)
    args = parser.parse_args()
    figures = asyncio.run(measure(args.replies))
    width = max(map(len, figures))
    for label in sorted(figures):
        print(f"{label:<{width}}  {figures[label]:6.3f} ms per reply")


if __name__ == "__main__":
    main()
