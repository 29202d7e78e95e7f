"""Launcher: `gapless serve` with the bench provider forced in, and optional profiling.

Job: (1) until the service wires `BenchProvider` behind
`GAPLESS_PROVIDERS=...,bench`, the runner falls back to this, which is
`gapless serve` exactly (same CLI, same uvicorn, same database) with the bench
provider added to whatever `runtime.build_providers` returns; the runner
records which launcher it used. (2) With `GAPLESS_BENCH_PROFILE=<dir>`, a
pyinstrument profiler (`benchmarks/profiler.py`) starts on SIGUSR1 and on
SIGUSR2 stops and writes `<dir>/<name>.txt`, `<name>-flat.txt` and
`<name>.html`, so the runner profiles exactly one workload.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import gapless.runtime as runtime
from benchmarks import profiler
from gapless.config import Settings
from gapless.providers.base import Provider
from gapless.providers.bench import BenchProvider

_build = runtime.build_providers


def with_bench(settings: Settings) -> dict[str, Provider]:
    found = _build(settings)
    found.setdefault("bench", BenchProvider())
    return found


if __name__ == "__main__":
    runtime.build_providers = with_bench
    if os.environ.get("GAPLESS_BENCH_PROFILE"):
        profiler.on_signals(Path(os.environ["GAPLESS_BENCH_PROFILE"]))
    from gapless.cli import main

    sys.argv = ["gapless", *sys.argv[1:]]
    main()
