"""pyinstrument in a server process, switched on and off by the benchmark runner's signals.

Job: a profiled process registers itself (`<dir>/pids/<pid>`, holding its tag),
starts a pyinstrument profiler on SIGUSR1 and on SIGUSR2 stops it and writes
`<dir>/<name><tag>.txt` (call tree), `<name><tag>-flat.txt` (self time per
function) and `<name><tag>.html`, the name read from `<dir>/name`, then
`<dir>/done/<pid>`: the runner (`Fleet.profiled`) signals every registered
process of the Gapless under test and waits for each one's `done`. The
one-process service has the tag "" (`serve_bench.py`); scaled out, each API
process and worker tags its files with its role and pid (`profiling/sitecustomize.py`).
py-spy cannot attach in this sandbox, hence signals.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

STOP_WITHIN = 120.0  # seconds the runner waits for a process to write its profile


def registered(folder: Path, pids: list[int]) -> list[int]:
    """Those of `pids` that registered a profiler in `folder`."""
    return [pid for pid in pids if (folder / "pids" / str(pid)).exists()]


def on_signals(folder: Path, tag: str = "") -> None:
    from pyinstrument import Profiler

    state: dict[str, Any] = {"profiler": None, "n": 0}
    pid = os.getpid()

    def start(signum: int, frame: FrameType | None) -> None:
        if state["profiler"] is None:
            profiler = Profiler(interval=0.0005, async_mode="disabled")
            profiler.start()
            state["profiler"] = profiler

    def stop(signum: int, frame: FrameType | None) -> None:
        profiler, state["profiler"] = state["profiler"], None
        if profiler is not None:
            profiler.stop()
            state["n"] += 1
            named = folder / "name"  # the runner names the workload it is about to stop
            name = named.read_text().strip() if named.exists() else str(state["n"])
            out = folder / f"{name}{tag}"
            out.with_name(out.name + ".txt").write_text(
                profiler.output_text(unicode=True, show_all=False)
            )
            out.with_name(out.name + "-flat.txt").write_text(profiler.output_text(flat=True))
            out.with_name(out.name + ".html").write_text(profiler.output_html())
        (folder / "done").mkdir(parents=True, exist_ok=True)
        (folder / "done" / str(pid)).touch()  # tells the runner this process is finished

    (folder / "pids").mkdir(parents=True, exist_ok=True)
    (folder / "pids" / str(pid)).write_text(tag)
    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
