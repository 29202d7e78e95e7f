"""The benchmark still runs: a tiny, untimed `python -m benchmarks.fanout` end to end.

Speed is proven by the benchmark itself, never here; this only keeps it from
rotting. It starts the real service and both ceilings as subprocesses, streams
20 tokens to 2 chats x 2 subscribers over SSE and WebSocket (W2), posts a burst
of 3 replies to 3 chats x 3 subscribers (W9), and checks that nothing was lost
or repeated and that the JSON report was written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EVERY_CASE = {("sse", "gapless"), ("ws", "gapless"), ("sse", "ceiling"), ("ws", "ceiling")}
FAULTS = ("lost", "dup", "ooo", "mismatch", "resets", "unfinished")


def fanout(out: Path, *args: str) -> list[dict[str, Any]]:
    """Run the benchmark once, unpinned; the cases of its JSON report."""
    command = [sys.executable, "-m", "benchmarks.fanout", *args, "--runs", "1", "--no-pin"]
    done = subprocess.run(
        [*command, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    cases: list[dict[str, Any]] = json.loads(out.read_text())["cases"]
    assert {(c["transport"], c["target"]) for c in cases} == EVERY_CASE
    return cases


@pytest.mark.parametrize(
    "flags", [[], ["--tool-deltas"], ["--raw-posts"]], ids=["text", "tool-deltas", "raw-posts"]
)
def test_tiny_fanout_run_loses_nothing_and_writes_json(tmp_path: Path, flags: list[str]) -> None:
    """`tool-deltas`: Gapless's streams are one tool call's arguments, checked the same;
    `raw-posts`: the POSTs go on raw connections of their own (as W3's from the POST)."""
    out = tmp_path / "result.json"
    cases = fanout(out, "--only", "W2", "--w2", "2:2:20", "--seconds", "1", *flags)
    for case in cases:
        (run,) = case["runs"]
        assert run["delivered"] == 2 * 2 * 20, case
        for fault in FAULTS:
            assert run[fault] == 0, (fault, case)


def test_tiny_burst_run_starts_every_reply_and_writes_json(tmp_path: Path) -> None:
    """W9 with S=3: every reply posted in the burst starts, every subscriber sees it whole."""
    for case in fanout(tmp_path / "burst.json", "--only", "W9", "--w9", "3"):
        (run,) = case["runs"]
        assert "error" not in run, case
        assert run["samples"] == 3 * 3, case  # each reply's first delta, at each subscriber
        for fault in (*FAULTS, "post_errors"):
            assert run[fault] == 0, (fault, case)
