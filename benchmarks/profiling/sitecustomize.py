"""Profiling the scaled-out set: `--scaled --profile DIR` puts this folder on PYTHONPATH.

Python imports `sitecustomize` at the start of every interpreter, so each process
that `scripts/scaled.sh` starts (the API processes uvicorn spawns, the worker)
registers a profiler with `benchmarks.profiler` without any change to the
service or the script. Only the processes doing Gapless's work register; the
others (uvicorn's supervisor, `gapless token`, multiprocessing's helpers) keep
the default SIGUSR1/SIGUSR2 and are never signalled. Does nothing without
GAPLESS_BENCH_PROFILE.
"""

import os
import sys
from pathlib import Path


def _role() -> str:
    """The process's role: `api`, `worker`, or "" (not profiled)."""
    if "--multiprocessing-fork" in sys.argv:
        return "api"  # uvicorn --workers spawns its processes through multiprocessing
    if len(sys.argv) > 1 and Path(sys.argv[0]).name == "gapless" and sys.argv[1] == "worker":
        return "worker"
    return ""


if os.environ.get("GAPLESS_BENCH_PROFILE") and _role():
    from benchmarks import profiler

    profiler.on_signals(Path(os.environ["GAPLESS_BENCH_PROFILE"]), f"-{_role()}-{os.getpid()}")
