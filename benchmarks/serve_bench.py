"""Launcher: `gapless serve` with the bench provider forced in, and optional profiling.

Job: (1) until the service wires `BenchProvider` behind
`GAPLESS_PROVIDERS=...,bench`, the runner falls back to this, which is
`gapless serve` exactly (same CLI, same uvicorn, same database) with the bench
provider added to whatever `runtime.build_providers` returns; the runner
records which launcher it used. (2) With `GAPLESS_BENCH_PROFILE=<dir>`, a
pyinstrument profiler (py-spy cannot attach in this sandbox) starts on SIGUSR1
and on SIGUSR2 stops and writes `<dir>/<name>.txt` (call tree), `<name>-flat.txt`
(self time per function) and `<name>.html`, the name read from `<dir>/name`, so
the runner profiles exactly one workload.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import gapless.runtime as runtime
from gapless.config import Settings
from gapless.providers.base import Provider
from gapless.providers.bench import BenchProvider

_build = runtime.build_providers


def with_bench(settings: Settings) -> dict[str, Provider]:
    found = _build(settings)
    found.setdefault("bench", BenchProvider())
    return found


def profile_on_signals(folder: Path) -> None:
    from pyinstrument import Profiler

    state: dict[str, Any] = {"profiler": None, "n": 0}

    def start(signum: int, frame: FrameType | None) -> None:
        if state["profiler"] is None:
            profiler = Profiler(interval=0.0005, async_mode="disabled")
            profiler.start()
            state["profiler"] = profiler

    def stop(signum: int, frame: FrameType | None) -> None:
        profiler = state.pop("profiler", None)
        state["profiler"] = None
        if profiler is None:
            return
        profiler.stop()
        state["n"] += 1
        folder.mkdir(parents=True, exist_ok=True)
        named = folder / "name"  # the runner names the workload it is about to stop
        name = named.read_text().strip() if named.exists() else str(state["n"])
        (folder / f"{name}.txt").write_text(profiler.output_text(unicode=True, show_all=False))
        (folder / f"{name}-flat.txt").write_text(profiler.output_text(flat=True))
        (folder / f"{name}.html").write_text(profiler.output_html())
        (folder / "name").unlink(missing_ok=True)  # tells the runner the files are complete

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


if __name__ == "__main__":
    runtime.build_providers = with_bench
    if os.environ.get("GAPLESS_BENCH_PROFILE"):
        profile_on_signals(Path(os.environ["GAPLESS_BENCH_PROFILE"]))
    from gapless.cli import main

    sys.argv = ["gapless", *sys.argv[1:]]
    main()
