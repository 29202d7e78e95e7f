"""`python -m benchmarks.fanout`: what Gapless's guarantees cost, beside a bare fan-out.

Job: start the real service (`gapless serve`, uvicorn, SQLite on disk, the
bench provider) and the two ceilings (`ceiling_sse`, `ceiling_ws`) as separate
processes pinned with `taskset -c 0`, pin this process (the load generator) to
core 1, run the workloads W1-W7 against each through the public API only,
interleaving Gapless and the ceiling inside every run so they share the same
noise, and print every figure as median [min-max] of the runs with the ratio
Gapless / ceiling. Writes everything, runs included, to
`benchmarks/results/<timestamp>.json`. With `--scaled`, the Gapless under test
is the scaled-out set (`benchmarks/scaled.py`). See `benchmarks/README.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks import burst, load, profiler
from benchmarks.load import Target

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
W2_FULL = [(10, 3, 50), (100, 3, 50), (100, 10, 50), (200, 3, 100)]
W3_LADDER = [25, 50, 100, 150, 200, 300, 400, 500, 600, 800, 1000]
DEBOUNCES = [0.0, 0.1, 0.2, 1.0]
GOOD_P99_MS = 100.0
W9_SIZES = (100, 300)
W9_SECONDS = 1.0  # W9's streams: the burst is about starting them


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


NICE = [0]  # set from --nice before any server starts; servers inherit it via preexec


def raise_nofile() -> None:
    """Room for W6's thousands of sockets (the `ulimit -n` of the issue), and the priority."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if NICE[0]:
        os.setpriority(os.PRIO_PROCESS, 0, NICE[0])


def pin(cores: list[int] | None) -> list[str]:
    return ["taskset", "-c", ",".join(map(str, cores))] if cores and shutil.which("taskset") else []


class Server:
    """A server process: started pinned, its output kept in a log, stopped gracefully."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        ready: str,
        logdir: Path,
        cores: list[int] | None,
    ) -> None:
        self.name = name
        self.argv = [*pin(cores), *argv]
        self.env = {**os.environ, **env}
        self.ready = ready
        self.log = logdir / f"{name}.log"
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None

    def start(self, within: float = 60) -> None:
        self.lines = []
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=raise_nofile,
            cwd=ROOT,
            start_new_session=True,  # its own process group: `stop` can end all it started
        )
        seen = threading.Event()

        def drain() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            with self.log.open("a") as log:
                for line in self.proc.stdout:
                    self.lines.append(line.rstrip("\n"))
                    log.write(line)
                    log.flush()
                    if self.ready in line:
                        seen.set()
            seen.set()

        threading.Thread(target=drain, daemon=True).start()
        if not seen.wait(within) or self.proc.poll() is not None:
            tail = "\n".join(self.lines[-20:])
            self.stop()
            raise RuntimeError(f"{self.name} did not start ({' '.join(self.argv)}):\n{tail}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def line(self, prefix: str, within: float = 5) -> str:
        end = time.monotonic() + within
        while time.monotonic() < end:
            for line in self.lines:
                if line.strip().startswith(prefix):
                    return line.strip()[len(prefix) :].strip()
            time.sleep(0.05)
        return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            # Too slow to stop (scaled.sh waits for its worker's grace): kill the whole
            # group, or its API processes and worker would outlive the run.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@dataclass
class Fleet:
    """Every server of the run, and the targets they make."""

    logdir: Path
    server_cores: list[int] | None
    debounce: float = 0.2
    servers: dict[str, Server] = field(default_factory=dict)
    targets: dict[tuple[str, str], Target] = field(default_factory=dict)
    data_dirs: list[Path] = field(default_factory=list)

    launcher: str = ""
    profile: Path | None = None  # pyinstrument output folder (forces the serve_bench launcher)
    scaled: str = ""  # the job queue's engine when Gapless runs scaled out, else ""
    concurrency: int = 256  # the scaled-out worker's runs at once
    api_processes: int = 2  # the scaled-out set's API processes
    workers: int = 1  # and its workers
    finalizers: list[Callable[[], None]] = field(default_factory=list)

    def start_gapless(self, debounce: float | None = None) -> None:
        """`gapless serve` with the bench provider on; falls back to the stop-gap launcher."""
        self.stop("gapless")
        if self.scaled:
            from benchmarks.scaled import start_scaled

            return start_scaled(self, debounce, self.scaled, self.concurrency)
        gapless = shutil.which("gapless", path=str(Path(sys.executable).parent)) or "gapless"
        launchers = [
            ([gapless], "demo,bench"),
            ([gapless], '["demo","bench"]'),  # pydantic-settings may want JSON for a tuple
            ([sys.executable, "-m", "benchmarks.serve_bench"], '["demo","bench"]'),
        ]
        if self.profile is not None:
            launchers = launchers[2:]
        errors = []
        for argv, providers in launchers:
            port = free_port()
            data = Path(tempfile.mkdtemp(prefix="gapless-bench-"))
            self.data_dirs.append(data)
            env = {
                "GAPLESS_DATA_DIR": str(data),
                "GAPLESS_PROVIDERS": providers,
                "GAPLESS_DEBOUNCE": str(self.debounce if debounce is None else debounce),
                # the load generator is one user posting hundreds of messages at once
                "GAPLESS_RATE_LIMIT": "1000000",
                "GAPLESS_RATE_BURST": "1000000",
                "GAPLESS_MAX_STREAMS": "1000000",  # and follows thousands of streams
            }
            if self.profile is not None:
                env["GAPLESS_BENCH_PROFILE"] = str(self.profile)
            server = Server(
                "gapless",
                [*argv, "serve", "--host", "127.0.0.1", "--port", str(port)],
                env,
                "Gapless is running",
                self.logdir,
                self.server_cores,
            )
            try:
                server.start()
            except RuntimeError as e:
                errors.append(str(e))
                continue
            token = server.line("token:")
            if not token or " " in token:
                token = subprocess.run(
                    [*argv, "token"],
                    env=server.env,
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=ROOT,
                ).stdout.split()[-1]
            models = wait_http(f"http://127.0.0.1:{port}/api/models", token)
            if "bench:" not in models:
                server.stop()
                errors.append(
                    f"{' '.join(argv)} with GAPLESS_PROVIDERS={providers}: no bench model"
                )
                continue
            self.launcher = f"{' '.join(argv)} serve (GAPLESS_PROVIDERS={providers})"
            self.servers["gapless"] = server
            api, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/api/ws"
            for transport in ("sse", "ws"):
                self.targets["gapless", transport] = Target("gapless", api, ws, token, server.pid)
            return
        raise RuntimeError("could not start Gapless with the bench provider:\n" + "\n".join(errors))

    def start_ceiling(self) -> None:
        self.stop("ceiling_sse")
        self.stop("ceiling_ws")
        sse, ws, ws_http = free_port(), free_port(), free_port()
        py = sys.executable
        a = Server(
            "ceiling_sse",
            [py, "-m", "benchmarks.ceiling_sse", "--port", str(sse)],
            {},
            "ceiling sse on",
            self.logdir,
            self.server_cores,
        )
        b = Server(
            "ceiling_ws",
            [py, "-m", "benchmarks.ceiling_ws", "--port", str(ws), "--http-port", str(ws_http)],
            {},
            "ceiling ws on",
            self.logdir,
            self.server_cores,
        )
        a.start()
        b.start()
        self.servers["ceiling_sse"], self.servers["ceiling_ws"] = a, b
        self.targets["ceiling", "sse"] = Target("ceiling", f"http://127.0.0.1:{sse}", "", "", a.pid)
        self.targets["ceiling", "ws"] = Target(
            "ceiling", f"http://127.0.0.1:{ws_http}", f"ws://127.0.0.1:{ws}/api/ws", "", b.pid
        )

    @contextlib.contextmanager
    def profiled(self, target: str, name: str) -> Iterator[None]:
        """Profile every Gapless process while the block runs (with `--profile` only): the
        one-process server, or scaled out each API process and the worker."""
        server = self.servers.get("gapless")
        if self.profile is None or target != "gapless" or server is None:
            yield
            return
        pids = profiler.registered(self.profile, load.family(server.pid))
        if not pids:
            raise RuntimeError(f"no Gapless process registered a profiler in {self.profile}")
        for pid in pids:
            (self.profile / "done" / str(pid)).unlink(missing_ok=True)
            os.kill(pid, signal.SIGUSR1)
        try:
            yield
        finally:
            (self.profile / "name").write_text(name)
            for pid in pids:
                os.kill(pid, signal.SIGUSR2)
            end = time.monotonic() + profiler.STOP_WITHIN
            done = self.profile / "done"
            while time.monotonic() < end and not all((done / str(p)).exists() for p in pids):
                time.sleep(0.2)  # blocking on purpose: nothing else should run meanwhile
            (self.profile / "name").unlink(missing_ok=True)

    def restart(self, target: str) -> None:
        self.start_gapless() if target == "gapless" else self.start_ceiling()

    def stop(self, name: str | None = None) -> None:
        for key in [name] if name else list(self.servers):
            server = self.servers.pop(key, None) if key else None
            if server is not None:
                server.stop()

    def cleanup(self) -> None:
        self.stop()
        for finalize in self.finalizers:
            finalize()
        for data in self.data_dirs:
            shutil.rmtree(data, ignore_errors=True)


def wait_http(url: str, token: str, within: float = 30) -> str:
    end = time.monotonic() + within
    while True:
        try:
            response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
            if response.status_code == 200:
                return response.text
        except httpx.HTTPError:
            pass
        if time.monotonic() > end:
            raise RuntimeError(f"{url} never answered 200")
        time.sleep(0.2)


# --- runs and their summaries --------------------------------------------------------------


@dataclass
class Case:
    """One measured cell: a workload with its parameters, on one transport and target."""

    workload: str
    config: str
    transport: str
    target: str
    runs: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, float]]:
        keys = {k for run in self.runs for k, v in run.items() if isinstance(v, int | float)}
        out = {}
        for key in sorted(keys):
            values = [float(r[key]) for r in self.runs if isinstance(r.get(key), int | float)]
            values = [v for v in values if v == v]  # drop NaN
            if values:
                out[key] = {
                    "median": statistics.median(values),
                    "min": min(values),
                    "max": max(values),
                    "n": len(values),
                }
        return out


class Book:
    """All cases of the run, in order."""

    def __init__(self) -> None:
        self.cases: dict[tuple[str, str, str, str], Case] = {}

    def add(
        self, workload: str, config: str, transport: str, target: str, run: dict[str, Any]
    ) -> None:
        key = (workload, config, transport, target)
        case = self.cases.get(key)
        if case is None:
            case = self.cases[key] = Case(workload, config, transport, target)
        case.runs.append(run)
        print(
            f"  {workload} {config} {transport:<3} {target:<8} "
            + " ".join(f"{k}={fmt(v)}" for k, v in run.items() if k in SHOW),
            flush=True,
        )


# W1's figures: time to first token, and its split at the model's first yield
W1_FIGURES = [
    "ttft_p50_ms",
    "ttft_p99_ms",
    "post_p50_ms",
    "start_p50_ms",
    "start_p99_ms",
    "deliver_p50_ms",
    "deliver_p99_ms",
]
# W9's: start delay per reply and subscriber, its split at the model's first yield, the POSTs
W9_FIGURES = [
    "start_max_ms",
    "yield_p50_ms",
    "yield_p99_ms",
    "post_p99_ms",
    "post_max_ms",
    "written_ms",
    "start_cpu_ms_per_reply",
    # scaled out, split by process kind (`load.role`); and the machine's PostgreSQL and
    # Redis processes (anyone's, not pinned)
    "api_start_cpu_ms_per_reply",
    "worker_start_cpu_ms_per_reply",
    "postgres_start_cpu_ms_per_reply",
    "redis_start_cpu_ms_per_reply",
    "delivered_by_last_start",
    "postgres_cpu_ms_per_1000",
    "redis_cpu_ms_per_1000",
]
SHOW = (
    "error",
    "post_errors",
    "first_error",
    "mismatch_detail",
    *W1_FIGURES,
    "chunks_per_s",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "steady_p50_ms",
    "steady_p99_ms",
    "late_p99_ms",
    "first_p99_ms",
    "lost",
    "dup",
    "ooo",
    "mismatch",
    "resets",
    "unfinished",
    "cpu_ms_per_1000",
    "api_cpu_ms_per_1000",
    "worker_cpu_ms_per_1000",
    "postgres_cpu_ms_per_1000",
    "redis_cpu_ms_per_1000",
    "peak_rss_mb",
    "client_cpu",
    "cpu_pressure",
    *W9_FIGURES,
    "largest_good_s",
    "delivered_share",
    "ttl_p50_ms",
    "ttl_p99_ms",
    "replayed_kb_p50",
    "kb_per_sub_1000",
    "kb_per_sub_5000",
    "writes_per_s",
    "flushes",
    "bound",
    "final_ok",
)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


FAULTS = ("lost", "dup", "ooo", "mismatch", "resets", "unfinished", "post_errors")


def good(run: dict[str, Any], late: str = "p99_ms") -> bool:
    """No fault, and p99 lateness (`late`: from the yield, or `late_p99_ms` from the POST)
    within `GOOD_P99_MS`."""
    if "error" in run:
        return False
    faults = sum(int(run.get(k, 0)) for k in FAULTS)
    return faults == 0 and float(run.get(late, float("inf"))) <= GOOD_P99_MS


async def attempt(coro: Any) -> dict[str, Any]:
    """One run; a failure (the server answered 500, a subscription broke) is a result too."""
    try:
        result: dict[str, Any] = await coro
        return result
    except Exception as e:  # recorded in the JSON and the table, not hidden
        return {"error": f"{type(e).__name__}: {e}"[:500]}


# --- the workloads, each for one run -------------------------------------------------------


def orders(targets: list[str], run: int) -> list[str]:
    """Alternate who goes first, so drift (a teammate's build) hits both alike."""
    return targets if run % 2 == 0 else targets[::-1]


async def w3_climb(
    target: Target,
    transport: str,
    start: int,
    seconds: float,
    trace: Callable[[int, dict[str, Any]], None],
    late: str = "p99_ms",
) -> int:
    """Raise S at K=3, R=50 from ladder index `start` until not good (`good(run, late)`);
    the largest good S."""
    if late != "p99_ms":  # counted from the POST: a cold server's first requests are not it
        await attempt(load.steady(target, transport, 10, 1, 50, 10))
    i = start
    best = 0
    walking_down = False
    while 0 <= i < len(W3_LADDER):
        s = W3_LADDER[i]
        # counted from the POST: the POSTs on raw connections, so they leave on time
        raw = late != "p99_ms"
        run = await attempt(
            load.steady(target, transport, s, 3, 50, int(50 * seconds), raw_posts=raw)
        )
        trace(s, run)
        if good(run, late):
            best = s
            if walking_down:
                break  # the step above was already not good
            i += 1
        elif best:
            break  # just went past the edge
        else:
            walking_down = True  # the starting step was already too much
            i -= 1
    return best


async def w7_debounce(target: Target, runs: int, seconds: float) -> list[dict[str, Any]]:
    """W7: debounced DB writes per streaming reply per second, and the stored text checked."""
    out = []
    tokens = int(50 * seconds)
    async with load.Api(target) as api:
        for _ in range(runs):
            latencies: list[int] = []
            chat = await api.chat(f"bench:r50-n{tokens}")
            (sub,) = await load.open_subscribers(target, "sse", [chat], 1, latencies)
            reply = await api.post(chat)
            await asyncio.wait_for(sub.wait_final(reply), seconds + 60)
            sub.conn.close() if sub.conn else None
            track = sub.tracks[reply]
            text = "".join(track.parts)
            await asyncio.sleep(0.3)  # a final write may follow the final event
            state = await api.call("GET", f"/api/chats/{chat}")
            stored = next(m for m in state["messages"] if m["id"] == reply)
            stamps = [int(t) for t in text.split()]
            duration = (stamps[-1] - stamps[0]) / 1e9 if len(stamps) > 1 else float("nan")
            flushes = await count_flushes(api, chat, reply)
            out.append(
                {
                    "flushes": flushes,
                    "writes_per_s": flushes / duration if flushes >= 0 else float("nan"),
                    "duration_s": duration,
                    "final_ok": int(
                        stored["content"] == text == track.final["content"]  # type: ignore[index]
                        and load.well_formed(text, tokens)
                    ),
                    "lost": track.lost(),
                    "dup": track.dup,
                }
            )
    return out


async def count_flushes(api: load.Api, chat: str, reply: str) -> int:
    """Debounced writes of one reply, from `GET /api/generations?chat_id=` (-1 if not exposed)."""
    try:
        answer = await api.call("GET", f"/api/generations?chat_id={chat}")
    except RuntimeError:
        return -1
    items = (
        answer.get("generations", answer.get("items", [])) if isinstance(answer, dict) else answer
    )
    for item in items or []:
        if item.get("message_id", item.get("id")) == reply and "flushes" in item:
            return int(item["flushes"])
    for item in items or []:
        if "flushes" in item:
            return int(item["flushes"])
    return -1


# --- the plan ------------------------------------------------------------------------------


@dataclass
class Plan:
    runs: int
    seconds: float
    w1_samples: int
    w2: list[tuple[int, int, int]]
    w3_seconds: float
    w6_counts: list[int]
    workloads: list[str]
    transports: list[str]
    targets: list[str]
    tool_deltas: bool = False  # W2's Gapless streams are one tool call's arguments
    w9: tuple[int, ...] = W9_SIZES  # W9's burst sizes S (K=3, R=50)
    w9_seconds: float = W9_SECONDS  # and its streams' length (0.02: one delta, no streaming)
    w3_late: str = "p99_ms"  # W3's lateness: from the model's yield, or `late_p99_ms` (POST)
    raw_posts: bool = False  # W2's POSTs on raw connections (W3's are when counted from POST)


def plan(args: argparse.Namespace) -> Plan:
    quick = args.quick
    return Plan(
        runs=args.runs or 3,
        seconds=args.seconds or (2.0 if quick else 4.0),
        w1_samples=20 if quick else 50,
        w2=[(100, 3, 50)] if quick else W2_FULL,
        w3_seconds=args.seconds or (2.0 if quick else 3.0),
        w6_counts=[1000] if quick else [1000, 5000],
        workloads=args.only.split(",")
        if args.only
        else (
            ["W1", "W2", "W3"] if quick else ["W1", "W2", "W3", "W9", "W4", "W5", "W8", "W6", "W7"]
        ),
        transports=args.transports.split(","),
        targets=args.targets.split(","),
    )


async def execute(p: Plan, fleet: Fleet, book: Book) -> None:
    t = fleet.targets
    if "W1" in p.workloads:
        print("W1 added time to first token (S=1, K=1, bench:r0-n3)", flush=True)
        for r in range(p.runs):
            for transport in p.transports:
                for name in orders(p.targets, r):
                    with fleet.profiled(name, f"W1-{transport}-run{r}"):
                        run = await attempt(
                            load.first_token(t[name, transport], transport, p.w1_samples)
                        )
                    book.add("W1", "S=1 K=1", transport, name, run)
    if "W2" in p.workloads:
        print(f"W2 steady fan-out ({p.seconds:g} s streams)", flush=True)
        for r in range(p.runs):
            for s, k, rate in p.w2:
                for transport in p.transports:
                    for name in orders(p.targets, r):
                        window = fleet.profiled(name, f"W2-{s}x{k}x{rate}-{transport}-run{r}")
                        run = await attempt(
                            load.steady(
                                t[name, transport],
                                transport,
                                s,
                                k,
                                rate,
                                int(rate * p.seconds),
                                window=window,
                                tool_deltas=p.tool_deltas and name == "gapless",
                                raw_posts=p.raw_posts,
                            )
                        )
                        label = f"S={s} K={k} R={rate}" + (" tool" if p.tool_deltas else "")
                        book.add("W2", label, transport, name, run)
    if "W3" in p.workloads:
        print(
            f"W3 saturation (K=3, R=50, {p.w3_seconds:g} s streams; good = 0 faults and "
            f"p99 <= {GOOD_P99_MS:g} ms, lateness counted from the "
            f"{'POST' if p.w3_late == 'late_p99_ms' else 'model yield'})",
            flush=True,
        )
        first: dict[tuple[str, str], int] = {}
        for r in range(p.runs):
            for transport in p.transports:
                for name in orders(p.targets, r):
                    steps: list[dict[str, Any]] = []

                    def trace(
                        s: int,
                        run: dict[str, Any],
                        steps: list[dict[str, Any]] = steps,
                        name: str = name,
                        transport: str = transport,
                    ) -> None:
                        steps.append({"s": s, **run})
                        print(
                            f"    W3 {transport} {name} S={s}: p99={fmt(run.get('p99_ms'))} ms "
                            f"from POST={fmt(run.get('late_p99_ms'))} ms "
                            f"lost={run.get('lost')} chunks/s={fmt(run.get('chunks_per_s'))} "
                            f"client_cpu={fmt(run.get('client_cpu'))} {run.get('error', '')}"
                            f"{'good' if good(run, p.w3_late) else 'NOT good'}",
                            flush=True,
                        )

                    # later runs start one step below the first run's answer, to save time
                    known = first.get((name, transport), 0)
                    start = max(0, W3_LADDER.index(known) - 1) if known else 0
                    with fleet.profiled(name, f"W3-{transport}-run{r}"):
                        best = await w3_climb(
                            t[name, transport], transport, start, p.w3_seconds, trace, p.w3_late
                        )
                    first.setdefault((name, transport), best)
                    at_best = next((x for x in steps if x["s"] == best), {})
                    book.add(
                        "W3",
                        "K=3 R=50",
                        transport,
                        name,
                        {
                            "largest_good_s": best,
                            "chunks_per_s": at_best.get("chunks_per_s", 0.0),
                            # of the S x 3 x 50 chunks/s asked: the bench model stamps a
                            # chunk when it yields it, so a server that falls behind
                            # stretches the streams and p99 alone does not show it
                            "delivered_share": (
                                at_best.get("chunks_per_s", 0.0) / (best * 150) if best else 0.0
                            ),
                            "p99_ms": at_best.get("p99_ms", float("nan")),
                            "late_p99_ms": at_best.get("late_p99_ms", float("nan")),
                            "first_p99_ms": at_best.get("first_p99_ms", float("nan")),
                            "steps": steps,
                        },
                    )
    if "W9" in p.workloads:
        print(
            f"W9 burst (S replies posted within {burst.SPREAD * 1000:g} ms, K=3, R=50, "
            f"{p.w9_seconds:g} s streams, subscribers connected first)",
            flush=True,
        )
        for r in range(p.runs):
            for s in p.w9:
                for transport in p.transports:
                    for name in orders(p.targets, r):
                        window = fleet.profiled(name, f"W9-{s}-{transport}-run{r}")
                        run = await attempt(
                            burst.burst(
                                t[name, transport],
                                transport,
                                s,
                                3,
                                50,
                                max(1, int(50 * p.w9_seconds)),
                                window=window,
                            )
                        )
                        book.add("W9", f"S={s} K=3 R=50", transport, name, run)
    if "W4" in p.workloads:
        print("W4 late joiners (S=20 streams, 5 joiners each at random offsets, R=50)", flush=True)
        for r in range(p.runs):
            for transport in p.transports:
                for name in orders(p.targets, r):
                    run = await attempt(
                        load.late_joiners(
                            t[name, transport], transport, 20, 5, 50, int(50 * p.seconds)
                        )
                    )
                    book.add("W4", "S=20 J=5 R=50", transport, name, run)
    if "W5" in p.workloads:
        print("W5 reconnect storm (S=50, K=3, R=50; all drop at 50%, 0.2 s offline)", flush=True)
        for r in range(p.runs):
            for transport in p.transports:
                for name in orders(p.targets, r):
                    run = await attempt(
                        load.steady(
                            t[name, transport],
                            transport,
                            50,
                            3,
                            50,
                            int(50 * p.seconds),
                            reconnect=0.2,
                        )
                    )
                    book.add("W5", "S=50 K=3 R=50", transport, name, run)
    if "W8" in p.workloads:
        print("W8 slow subscribers (S=20, K=3, R=50, then +5 that stop reading)", flush=True)
        for r in range(p.runs):
            for transport in p.transports:
                for name in orders(p.targets, r):
                    for slow in (0, 5):
                        run = await attempt(
                            load.steady(
                                t[name, transport],
                                transport,
                                20,
                                3,
                                50,
                                int(50 * p.seconds),
                                slow=slow,
                            )
                        )
                        book.add("W8", f"S=20 K=3 R=50 +{slow} slow", transport, name, run)
    if "W6" in p.workloads:
        print(f"W6 idle subscribers {p.w6_counts} (fresh server per run)", flush=True)
        for r in range(p.runs):
            for transport in p.transports:
                for name in orders(p.targets, r):
                    fleet.restart(name)
                    run = await attempt(
                        load.idle(fleet.targets[name, transport], transport, p.w6_counts)
                    )
                    book.add("W6", "idle", transport, name, run)
            t = fleet.targets
    if "W7" in p.workloads and "gapless" in p.targets:
        print("W7 database writes per streaming reply per second (R=50, one reply)", flush=True)
        for debounce in DEBOUNCES:
            fleet.start_gapless(debounce)
            try:
                runs = await w7_debounce(fleet.targets["gapless", "sse"], p.runs, p.seconds)
            except Exception as e:  # recorded, not hidden
                runs = [{"error": f"{type(e).__name__}: {e}"[:500]}]
            for run in runs:
                run["bound"] = (1 / debounce + 2) if debounce else float("inf")
                book.add("W7", f"debounce={debounce:g}s", "sse", "gapless", run)
        fleet.start_gapless()


# --- the table -----------------------------------------------------------------------------

COLUMNS = {
    "W1": W1_FIGURES,
    "W2": [
        "chunks_per_s",
        "p50_ms",
        "p99_ms",
        "max_ms",
        "steady_p50_ms",
        "steady_p99_ms",
        "late_p99_ms",
        "lost",
        "dup",
        "ooo",
        "mismatch",
        "cpu_ms_per_1000",
        "api_cpu_ms_per_1000",
        "worker_cpu_ms_per_1000",
        "postgres_cpu_ms_per_1000",
        "redis_cpu_ms_per_1000",
        "peak_rss_mb",
        "client_cpu",
        "cpu_pressure",
    ],
    "W9": [
        "start_p50_ms",
        "start_p99_ms",
        *W9_FIGURES,
        "post_p50_ms",
        "cpu_ms_per_1000",
        "api_cpu_ms_per_1000",
        "worker_cpu_ms_per_1000",
        "lost",
        "cpu_pressure",
    ],
    "W3": ["largest_good_s", "chunks_per_s", "delivered_share", "p99_ms", "late_p99_ms"],
    "W4": ["ttl_p50_ms", "ttl_p99_ms", "replayed_kb_p50", "lost", "dup", "ooo", "mismatch"],
    "W5": [
        "ttl_p50_ms",
        "ttl_p99_ms",
        "replayed_kb_p50",
        "lost",
        "dup",
        "ooo",
        "mismatch",
        "resets",
    ],
    "W6": ["kb_per_sub_1000", "kb_per_sub_5000"],
    "W8": ["p50_ms", "p99_ms", "max_ms", "lost", "dup", "unfinished", "peak_rss_mb"],
    "W7": ["writes_per_s", "bound", "flushes", "final_ok", "lost", "dup"],
}


def rows(book: Book) -> Iterator[list[str]]:
    by_cell: dict[tuple[str, str, str], dict[str, Case]] = {}
    for (w, config, transport, target), case in book.cases.items():
        by_cell.setdefault((w, config, transport), {})[target] = case
    for (w, config, transport), cases in by_cell.items():
        g = cases.get("gapless")
        c = cases.get("ceiling")
        gs = g.summary() if g else {}
        cs = c.summary() if c else {}
        for metric in COLUMNS.get(w, []):
            if metric not in gs and metric not in cs:
                continue
            ratio = ""
            if metric in gs and metric in cs and cs[metric]["median"]:
                ratio = f"{gs[metric]['median'] / cs[metric]['median']:.2f}"
            yield [w, config, transport, metric, cell(gs.get(metric)), cell(cs.get(metric)), ratio]


def cell(stat: dict[str, float] | None) -> str:
    if not stat:
        return ""
    med, lo, hi = (fmt(stat[k]) for k in ("median", "min", "max"))
    return med if lo == hi else f"{med} [{lo}-{hi}]"


HEADER = [
    "workload",
    "config",
    "transport",
    "metric",
    "gapless median [min-max]",
    "ceiling median [min-max]",
    "ratio g/c",
]


def print_table(book: Book) -> str:
    table = list(rows(book))
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(title="Gapless vs bare fan-out ceiling")
        for name in HEADER:
            t.add_column(name)
        for row in table:
            t.add_row(*row)
        Console(width=160).print(t)
    except ImportError:
        pass
    markdown = "| " + " | ".join(HEADER) + " |\n|" + "---|" * len(HEADER) + "\n"
    markdown += "".join("| " + " | ".join(row) + " |\n" for row in table)
    if not sys.stdout.isatty():
        print(markdown)
    return markdown


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "loadavg": os.getloadavg(),
        "commit": commit,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fanout", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="W1-W3 only, short streams (~3 min)")
    parser.add_argument("--runs", type=int, default=0, help="runs per figure (default 3)")
    parser.add_argument("--seconds", type=float, default=0, help="length of each stream")
    parser.add_argument("--only", default="", help="comma-separated workloads, e.g. W2,W3")
    parser.add_argument("--transports", default="sse,ws")
    parser.add_argument("--targets", default="gapless,ceiling")
    parser.add_argument("--w2", default="", help="W2 configs as S:K:R,S:K:R (e.g. 2:2:50)")
    parser.add_argument("--w9", default="", help="W9 burst sizes S, comma-separated (100,300)")
    parser.add_argument(
        "--w9-seconds",
        type=float,
        default=W9_SECONDS,
        help="W9's streams in seconds (0.02: a single delta, so the start window's CPU is the "
        "POSTs, starts and ends alone)",
    )
    parser.add_argument(
        "--from-post",
        action="store_true",
        help="W3: count each delta's lateness from its reply's POST (the start delay included)",
    )
    parser.add_argument(
        "--tool-deltas",
        action="store_true",
        help="W2: Gapless streams each reply as one tool call's arguments (bench model's -t)",
    )
    parser.add_argument(
        "--raw-posts",
        action="store_true",
        help="W2: each POST on a warm raw connection of its own (W3 --from-post always is)",
    )
    parser.add_argument("--debounce", type=float, default=0.2, help="GAPLESS_DEBOUNCE for W1-W6")
    parser.add_argument(
        "--profile",
        default="",
        help="pyinstrument the server into this folder "
        "during W1-W3 (figures then carry the profiler's overhead)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run servers and generator at this nice value (e.g. -5 on a shared machine: "
        "both targets get it, so the comparison stays fair)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin server/generator cores")
    parser.add_argument(
        "--scaled",
        action="store_true",
        help="Gapless scaled out: scripts/scaled.sh, 2 API processes + 1 worker (--api-processes, "
        "--workers) on PostgreSQL and Redis, all pinned like the one-process service",
    )
    parser.add_argument("--queue", default="redis", choices=["redis", "postgresql"])
    parser.add_argument("--concurrency", type=int, default=256, help="scaled worker's runs")
    parser.add_argument(
        "--api-processes", type=int, default=2, help="scaled: API processes (default 2)"
    )
    parser.add_argument("--workers", type=int, default=1, help="scaled: workers (default 1)")
    parser.add_argument(
        "--out", default="", help="JSON path (default: benchmarks/results/<UTC time>.json)"
    )
    args = parser.parse_args(argv)
    p = plan(args)
    if args.w2:
        p.w2 = [tuple(int(x) for x in c.split(":")) for c in args.w2.split(",")]  # type: ignore[misc]
    if args.w9:
        p.w9 = tuple(int(x) for x in args.w9.split(","))
    p.w9_seconds = args.w9_seconds
    if args.from_post:
        p.w3_late = "late_p99_ms"
    p.tool_deltas = args.tool_deltas
    p.raw_posts = args.raw_posts
    NICE[0] = args.nice
    raise_nofile()
    cpus = sorted(os.sched_getaffinity(0))
    server_cores = generator_cores = None
    if not args.no_pin and len(cpus) >= 2:
        server_cores, generator_cores = [cpus[0]], [cpus[1]]
        os.sched_setaffinity(0, set(generator_cores))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = Path(args.out) if args.out else RESULTS / f"{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    logdir = Path(tempfile.mkdtemp(prefix="gapless-bench-logs-"))
    meta = {
        "command": " ".join(["python -m benchmarks.fanout", *(argv or sys.argv[1:])]),
        "started": stamp,
        "nice": args.nice,
        "server_cores": server_cores,
        "generator_cores": generator_cores,
        "plan": p.__dict__,
        "machine": machine(),
        "logs": str(logdir),
    }
    print(
        f"server pinned to cores {server_cores}, load generator to {generator_cores}; "
        f"{p.runs} runs per figure; logs in {logdir}",
        flush=True,
    )
    fleet = Fleet(logdir, server_cores, debounce=args.debounce)
    if args.scaled:
        fleet.scaled, fleet.concurrency = args.queue, args.concurrency
        fleet.api_processes, fleet.workers = args.api_processes, args.workers
        meta["scaled"] = {
            "queue": args.queue,
            "concurrency": args.concurrency,
            "api_processes": args.api_processes,
            "workers": args.workers,
        }
    if args.profile:
        fleet.profile = Path(args.profile).resolve()
        meta["profiled"] = str(fleet.profile)
    book = Book()
    started = time.monotonic()
    try:
        if "gapless" in p.targets:
            fleet.start_gapless()
        if "ceiling" in p.targets:
            fleet.start_ceiling()
        meta["launcher"] = fleet.launcher
        run_loop(execute(p, fleet, book))
    finally:
        fleet.cleanup()
        meta["seconds"] = round(time.monotonic() - started, 1)
        meta["machine_after"] = {"loadavg": os.getloadavg()}
        markdown = print_table(book)
        out.write_text(
            json.dumps(
                {
                    "meta": meta,
                    "table": markdown,
                    "cases": [
                        {
                            "workload": c.workload,
                            "config": c.config,
                            "transport": c.transport,
                            "target": c.target,
                            "summary": c.summary(),
                            "runs": c.runs,
                        }
                        for c in book.cases.values()
                    ],
                },
                indent=1,
                default=str,
            )
        )
        print(f"wrote {out} in {meta['seconds']} s", flush=True)
    return 0


def run_loop(coro: Any) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


if __name__ == "__main__":
    sys.exit(main())
