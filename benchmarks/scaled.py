"""`python -m benchmarks.fanout --scaled`: the Gapless under test is the scaled-out set.

Job: start `scripts/scaled.sh` (the documented command, so the benchmark measures
what an operator runs) with 2 API processes on one port and 1 worker (`--api-processes`,
`--workers` change the counts), state in a
fresh PostgreSQL database, the event log in a Redis database of the run's own
(claimed like the scaled tests claim theirs, flushed afterwards), the job queue in
Redis or PostgreSQL (`--queue`), and the bench provider on. scaled.sh runs under
`taskset` with the server cores, so every Gapless process (uvicorn's parent, both
API processes, the worker) shares core 0 with nothing else, as the one-process
service and the ceilings do; the load generator keeps core 1. (Four processes on one core
show the set's CPU per reply and per chunk, not what it does with a core each.) PostgreSQL and Redis
are the machine's services and are not pinned: "server CPU" sums the Gapless
processes only, and the engines may use core 1 too (the JSON's meta says so).
With `--profile`, `profiling/sitecustomize.py` gives each API process and the
worker a profiler, and the runner switches them all on and off together.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from redis import Redis

if TYPE_CHECKING:
    from benchmarks.fanout import Fleet

REDIS = "redis://127.0.0.1:6379"
POSTGRES = "postgres@127.0.0.1:5432"
CLAIM = "gapless:scale:claimed"  # the scaled tests' claim: neither takes the other's database
ROOT = Path(__file__).resolve().parent.parent
PYTHONPATH = os.environ.get("PYTHONPATH", "")
NOTE = (
    "scaled.sh under taskset with the server cores ({api} API processes + {workers} "
    "worker(s)); PostgreSQL and Redis unpinned, their CPU not in server CPU"
)


def claim_redis() -> int:
    """A Redis database number among 2..15 that is empty, claimed for an hour."""
    mine = uuid.uuid4().hex
    for number in range(2, 16):
        client = Redis.from_url(f"{REDIS}/{number}")
        try:
            if client.dbsize() == 0 and client.set(CLAIM, mine, nx=True, ex=3600):
                return number
        finally:
            client.close()
    raise RuntimeError("no free Redis database number among 2..15")


def release_redis(number: int) -> None:
    client = Redis.from_url(f"{REDIS}/{number}")
    try:
        client.flushdb()  # this run's own database only, never FLUSHALL
    finally:
        client.close()


def drop_database(name: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc",
         f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
        check=False, capture_output=True,
    )  # fmt: skip


def start_scaled(fleet: Fleet, debounce: float | None, queue: str, concurrency: int) -> None:
    """Start a fresh scaled-out set as the fleet's `gapless` server, and its targets."""
    from benchmarks import load
    from benchmarks.fanout import Server, free_port, wait_http

    number = claim_redis()
    database = f"gapless_bench_{uuid.uuid4().hex[:10]}"
    fleet.finalizers += [lambda: release_redis(number), lambda: drop_database(database)]
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="gapless-bench-"))
    fleet.data_dirs.append(data)
    database_url = f"postgresql+asyncpg://{POSTGRES}/{database}"
    env = {
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "API_PROCESSES": str(fleet.api_processes),
        "WORKERS": str(fleet.workers),
        "CONCURRENCY": str(concurrency),
        "SCALED_DB": database,
        "REDIS_DB": str(number),
        "GAPLESS_DATA_DIR": str(data),
        "GAPLESS_DATABASE_URL": database_url,
        "GAPLESS_EVENTS_URL": f"{REDIS}/{number}",
        "GAPLESS_QUEUE_URL": f"{REDIS}/{number}" if queue == "redis" else database_url,
        "GAPLESS_PROVIDERS": '["demo","bench"]',
        "GAPLESS_DEBOUNCE": str(fleet.debounce if debounce is None else debounce),
        "GAPLESS_RATE_LIMIT": "1000000",  # one user posting hundreds of messages at once
        "GAPLESS_MAX_STREAMS": "1000000",  # and follows thousands of streams
        "GAPLESS_RATE_BURST": "1000000",
    }
    if fleet.profile is not None:  # every API process and the worker register a profiler
        hook = ROOT / "benchmarks" / "profiling"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook), str(ROOT), PYTHONPATH]))
        env["GAPLESS_BENCH_PROFILE"] = str(fleet.profile)
    server = Server(
        "gapless", ["bash", str(ROOT / "scripts" / "scaled.sh")], env, "scaled out:",
        fleet.logdir, fleet.server_cores,
    )  # fmt: skip
    server.start(within=120)
    tokens = [line.split()[-1] for line in server.lines if line.startswith("token: gl_")]
    if not tokens:
        server.stop()
        raise RuntimeError("scripts/scaled.sh printed no token:\n" + "\n".join(server.lines))
    token = tokens[-1]
    models = wait_http(f"http://127.0.0.1:{port}/api/models", token)
    if "bench:" not in models:
        server.stop()
        raise RuntimeError("the scaled-out set offers no bench model")
    note = NOTE.format(api=fleet.api_processes, workers=fleet.workers)
    fleet.launcher = f"scripts/scaled.sh (queue {queue}, concurrency {concurrency}; {note})"
    fleet.servers["gapless"] = server
    api, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/api/ws"
    for transport in ("sse", "ws"):
        fleet.targets["gapless", transport] = load.Target("gapless", api, ws, token, server.pid)
