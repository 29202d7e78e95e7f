"""The load generator: many subscribers in one asyncio process, checking every chunk.

Job: drive a server (Gapless or a ceiling) only through its public API and
transports, and measure what a client outside it sees. Each subscriber is a
raw `asyncio.Protocol` (an SSE reader that de-chunks HTTP/1.1, or a minimal
RFC 6455 client: handshake, unmasked server frames, masked client frames,
pong), because one Python process must read 60,000 frames per second on one
core without becoming the bottleneck it is measuring; a library client per
subscriber (a task and a queue each) costs several times more per frame.

Every delta's content is a bench provider clock reading (`"<ns> "`), so its
latency is `receipt - yield` on the same clock. Every subscriber checks
per-message `seq` continuity (lost, duplicated, out of order) and that the
text it assembled is byte-identical to the final message. Imports the
standard library, httpx and `benchmarks.posters`; no timing is asserted here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import os
import random
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from benchmarks import posters

FINAL = frozenset({"message.completed", "message.failed", "message.cancelled"})
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Target:
    """A server under test: where its REST API and WebSocket are, and its process."""

    name: str
    api: str  # http://host:port
    ws: str  # ws://host:port/api/ws
    token: str = ""
    pid: int = 0

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


# --- per-message bookkeeping -------------------------------------------------------------


@dataclass(eq=False)
class Track:
    """What one subscriber has of one message: seq continuity and the text, checked."""

    base: int = 0  # seq of the state it started from (late joiners)
    last: int = 0
    missing: set[int] = field(default_factory=set)
    dup: int = 0
    ooo: int = 0
    overlap: int = 0  # replayed deltas already in the state: dropped by the rules, not a fault
    parts: list[str] = field(default_factory=list)
    final: dict[str, Any] | None = None
    first_ns: int = 0

    def add(self, seq: int, content: str) -> bool:
        """Apply the reducer's rules; True when the delta is new text."""
        if seq == self.last + 1:
            self.last = seq
            self.parts.append(content)
            return True
        if seq <= self.last:
            if seq in self.missing:
                self.missing.discard(seq)
                self.ooo += 1
                self.parts.append(content)  # out of order: counted; text check will fail
                return True
            if seq <= self.base and self.last == self.base:
                self.overlap += 1
            else:
                self.dup += 1
            return False
        self.missing.update(range(self.last + 1, seq))
        self.last = seq
        self.parts.append(content)
        return True

    def lost(self) -> int:
        final_seq = int(self.final["seq"]) if self.final else self.last
        return len(self.missing) + max(final_seq - self.last, 0)


class Subscriber:
    """One client following one chat, across reconnects."""

    def __init__(self, chat_id: str, latencies: list[int], stamps: list[int] | None = None) -> None:
        self.chat_id = chat_id
        self.latencies = latencies
        self.stamps = stamps  # when given: each latency's yield time, in the same order
        self.tracks: dict[str, Track] = {}
        self.cursor: str | None = None
        self.resets = 0
        self.bytes = 0
        self.last_ns = 0  # receipt of the newest delta
        self.waiters: dict[str, asyncio.Future[None]] = {}
        self.conn: Conn | None = None
        # reconnect storm / late join: the drop point and time to live
        self.drop_at = 0
        self.dropped = False
        self.live_since = 0  # ns: a delta yielded after this is live
        self.live_ns = 0
        self.bytes_at_live = 0
        self.bytes_at_join = 0
        self.reconnect: Any = None  # callable scheduled at the drop point

    def track(self, message_id: str) -> Track:
        track = self.tracks.get(message_id)
        if track is None:
            track = self.tracks[message_id] = Track()
        return track

    def wait_final(self, message_id: str) -> asyncio.Future[None]:
        track = self.track(message_id)
        future = self.waiters.get(message_id)
        if future is None:
            future = self.waiters[message_id] = asyncio.get_running_loop().create_future()
            if track.final is not None:
                future.set_result(None)
        return future

    def on_event(self, type: str, data: Any, cursor: str | None, now: int) -> bool:
        """Handle one event; False stops reading this connection (a planned drop)."""
        if cursor:
            self.cursor = cursor
        if type == "message.delta":
            track = self.track(data["message_id"])
            content = data.get("content", "") or stamps_of(data.get("tool"))
            if not track.add(data["seq"], content):
                return True
            if not track.first_ns:
                track.first_ns = now
            self.last_ns = now
            stamp = 0
            for token in content.split():
                stamp = int(token)
                self.latencies.append(now - stamp)
                if self.stamps is not None:
                    self.stamps.append(stamp)
            if self.live_since and not self.live_ns and stamp >= self.live_since:
                self.live_ns = now
                self.bytes_at_live = self.bytes
            if self.drop_at and not self.dropped and data["seq"] >= self.drop_at:
                self.dropped = True
                self.reconnect()
                return False
        elif type in FINAL:
            track = self.track(data["id"])
            track.final = data
            future = self.waiters.get(data["id"])
            if future is not None and not future.done():
                future.set_result(None)
        elif type == "reset":
            self.resets += 1
            for future in self.waiters.values():
                if not future.done():
                    future.set_exception(ConnectionError("reset"))
        return True


# --- transports ------------------------------------------------------------------------------


class Conn(asyncio.Protocol):
    """Common part of the two readers: connect, wait until subscribed, close."""

    def __init__(self, sub: Subscriber, target: Target) -> None:
        self.sub = sub
        self.target = target
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        transport.write(self.request())  # type: ignore[attr-defined]

    def request(self) -> bytes:
        raise NotImplementedError

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before subscribed: {exc}"))

    def fail(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.goodbye()
            self.transport.close()

    def goodbye(self) -> None:
        """What a polite client says before closing (the WebSocket close frame)."""

    def split_head(self, data: bytes) -> bytes | None:
        """Accumulate the response head; the rest of `data` once it is complete."""
        self.head += data
        head, sep, rest = self.head.partition(b"\r\n\r\n")
        if not sep:
            return None
        self.head = head + sep
        return rest


class SseConn(Conn):
    """`GET /api/chats/{id}/events?cursor=`, HTTP/1.1, chunked or not, `\\n` or `\\r\\n`."""

    def __init__(self, sub: Subscriber, target: Target) -> None:
        super().__init__(sub, target)
        self.started = False
        self.chunked = False
        self.raw = b""  # chunked body not yet de-chunked
        self.left = 0  # bytes left in the current chunk (payload)
        self.crlf = 0  # bytes of the chunk's trailing CRLF still to skip
        self.text = b""  # SSE text not yet split into events

    def request(self) -> bytes:
        url = urlsplit(self.target.api)
        path = f"/api/chats/{self.sub.chat_id}/events"
        if self.sub.cursor:
            path += f"?cursor={quote(self.sub.cursor)}"
        headers = "".join(f"{k}: {v}\r\n" for k, v in self.target.headers().items())
        return (
            f"GET {path} HTTP/1.1\r\nHost: {url.netloc}\r\nAccept: text/event-stream\r\n"
            f"{headers}\r\n"
        ).encode()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        now = time.time_ns()
        self.sub.bytes += len(data)
        if not self.started:
            rest = self.split_head(data)
            if rest is None:
                return
            status = self.head.split(b" ", 2)[1]
            if status != b"200":
                self.fail(f"SSE answered {status.decode()}: {self.head[:200]!r}")
                return
            self.chunked = b"transfer-encoding: chunked" in self.head.lower()
            self.started = True
            self.ready.set_result(None)
            data = rest
        if self.chunked:
            data = self.dechunk(data)
        text = self.text + data if self.text else data
        if b"\r" in text:
            text = text.replace(b"\r\n", b"\n")
        start = 0
        while True:
            end = text.find(b"\n\n", start)
            if end < 0:
                break
            if not self.event(text[start:end], now):
                self.close()
                return
            start = end + 2
        self.text = text[start:]

    def dechunk(self, data: bytes) -> bytes:
        raw = self.raw + data if self.raw else data
        out = []
        i = 0
        n = len(raw)
        while i < n:
            if self.crlf:
                skip = min(self.crlf, n - i)
                self.crlf -= skip
                i += skip
                continue
            if self.left:
                take = min(self.left, n - i)
                out.append(raw[i : i + take])
                self.left -= take
                i += take
                if not self.left:
                    self.crlf = 2
                continue
            j = raw.find(b"\r\n", i)
            if j < 0:
                break
            size = int(raw[i:j].split(b";", 1)[0], 16)
            i = j + 2
            if size == 0:
                self.closed = True
                break
            self.left = size
        self.raw = raw[i:] if i < n and not self.left and not self.crlf else b""
        return b"".join(out)

    def event(self, block: bytes, now: int) -> bool:
        type = "message"
        cursor = None
        data = []
        for line in block.split(b"\n"):
            if line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line.startswith(b"event:"):
                type = line[6:].strip().decode()
            elif line.startswith(b"id:"):
                cursor = line[3:].strip().decode()
        if not data:
            return True
        if type != "message.delta" and type not in FINAL and type != "reset":
            if cursor:
                self.sub.cursor = cursor
            return True
        return self.sub.on_event(type, json.loads(b"\n".join(data)), cursor, now)


class WsConn(Conn):
    """`/api/ws`: one socket per subscriber, subscribed to one chat."""

    def __init__(self, sub: Subscriber, target: Target) -> None:
        super().__init__(sub, target)
        self.open = False
        self.buf = b""
        self.fragments: list[bytes] = []

    def request(self) -> bytes:
        url = urlsplit(self.target.ws)
        key = base64.b64encode(os.urandom(16)).decode()
        headers = "".join(f"{k}: {v}\r\n" for k, v in self.target.headers().items())
        # Offers per-message deflate, as every browser does (a server that accepted it
        # would keep a compressor per socket, W6); both targets decline it.
        return (
            f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            f"Sec-WebSocket-Version: 13\r\n{headers}\r\n"
        ).encode()

    def send(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        key = os.urandom(4)
        mask = (key * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")
        self.transport.write(head + key + masked)

    def goodbye(self) -> None:
        if self.open and self.transport is not None and not self.transport.is_closing():
            self.send(0x8, (1000).to_bytes(2, "big"))

    def subscribe(self) -> None:
        op: dict[str, Any] = {"op": "subscribe", "chat_id": self.sub.chat_id}
        if self.sub.cursor:
            op["cursor"] = self.sub.cursor
        self.send(0x1, json.dumps(op).encode())

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        now = time.time_ns()
        self.sub.bytes += len(data)
        if not self.open:
            rest = self.split_head(data)
            if rest is None:
                return
            if self.head.split(b" ", 2)[1] != b"101":
                self.fail(f"WebSocket answered {self.head[:200]!r}")
                return
            if b"sec-websocket-extensions" in self.head.lower():
                self.fail("the server accepted an extension: this reader parses plain frames")
                return
            self.open = True
            self.subscribe()
            data = rest
        buf = self.buf + data if self.buf else data
        i = 0
        n = len(buf)
        while n - i >= 2:
            b0 = buf[i]
            length = buf[i + 1] & 0x7F
            head = 2
            if length == 126:
                if n - i < 4:
                    break
                length = int.from_bytes(buf[i + 2 : i + 4], "big")
                head = 4
            elif length == 127:
                if n - i < 10:
                    break
                length = int.from_bytes(buf[i + 2 : i + 10], "big")
                head = 10
            if n - i < head + length:
                break
            payload = buf[i + head : i + head + length]
            i += head + length
            opcode = b0 & 0x0F
            if opcode == 0x9:
                self.send(0xA, payload)
            elif opcode == 0x8:
                self.open = False  # the server's close: answer nothing more, just close
                self.close()
                return
            elif opcode in (0x0, 0x1, 0x2):
                if not b0 & 0x80:
                    self.fragments.append(payload)
                    continue
                if self.fragments:
                    payload = b"".join([*self.fragments, payload])
                    self.fragments = []
                if not self.frame(payload, now):
                    self.close()
                    return
        self.buf = buf[i:]

    def frame(self, payload: bytes, now: int) -> bool:
        message = json.loads(payload)
        op = message.get("op")
        if op is not None:
            if op == "subscribed" and not self.ready.done():
                self.ready.set_result(None)
            elif op == "error":
                self.fail(f"WebSocket error: {message}")
            return True
        return self.sub.on_event(message["type"], message["data"], message.get("cursor"), now)


async def connect(
    sub: Subscriber, target: Target, transport: str, within: float = 30, slow: bool = False
) -> Conn:
    """Open one subscription and wait until the server says it is established.

    `slow`: a subscriber that stops reading once subscribed, behind a 4 KB receive
    buffer, so the server meets backpressure at once (a phone in a tunnel).
    """
    url = urlsplit(target.api if transport == "sse" else target.ws)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    cls = SseConn if transport == "sse" else WsConn
    loop = asyncio.get_running_loop()
    if slow:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, port))
        _, conn = await loop.create_connection(lambda: cls(sub, target), sock=sock)
    else:
        _, conn = await loop.create_connection(lambda: cls(sub, target), host, port)
    await asyncio.wait_for(conn.ready, within)
    if slow and conn.transport is not None:
        conn.transport.pause_reading()
    sub.conn = conn
    return conn


async def gather_limited(coros: Iterable[Any], limit: int) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with semaphore:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


# --- the server's process, seen from /proc -------------------------------------------------


def family(pid: int) -> list[int]:
    """`pid` and its descendants (a server may fork workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def role(pid: int) -> str:
    """What a server process does, from its command line: scaled out, `api` (a process
    uvicorn spawned) or `worker` (`gapless worker`); anything else is `other`."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return "other"
    if b"--multiprocessing-fork" in argv:
        return "api"
    return "worker" if b"worker" in argv[1:3] else "other"


def cpu_by_role(pid: int) -> dict[str, float]:
    """CPU ms used so far by `pid` and its descendants, summed per `role`."""
    totals: dict[str, float] = {}
    for p in family(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        key = role(p)
        totals[key] = totals.get(key, 0) + (int(fields[11]) + int(fields[12])) * 1000 / TICK
    return totals


ENGINES = {"postgres": "postgres", "redis-server": "redis"}  # process name -> figure's name


def engines_cpu_ms() -> dict[str, float]:
    """CPU ms used so far by the machine's PostgreSQL and Redis processes (anyone's: a
    teammate's queries count too), by process name. A backend that exited is counted in
    its parent's children's time (the postmaster reaps it), so a sum never goes back."""
    totals = dict.fromkeys(ENGINES.values(), 0.0)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                name, fields = f.read().split("(", 1)[1].rsplit(")", 1)
        except OSError:
            continue
        if name in ENGINES:
            parts = fields.split()
            ticks = sum(int(t) for t in parts[11:15])  # utime, stime, cutime, cstime
            totals[ENGINES[name]] += ticks * 1000 / TICK
    return totals


def memory_kb(pid: int, field_name: str = "VmRSS") -> int:
    total = 0
    for p in family(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(field_name + ":"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def reset_peak(pid: int) -> None:
    for p in family(pid):
        try:
            with open(f"/proc/{p}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


# --- the API ---------------------------------------------------------------------------------


class Api:
    """The REST calls the workloads need, over one pooled httpx client."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.errors: list[str] = []  # failed POSTs that started a stream
        self.recovered: list[str] = []  # POSTs whose answer was lost, found in the chat
        self.http = httpx.AsyncClient(
            base_url=target.api,
            headers=target.headers(),
            timeout=60,
            limits=httpx.Limits(
                max_connections=64, max_keepalive_connections=64, keepalive_expiry=2.0
            ),  # under uvicorn's 5 s keep-alive: never reuse a socket it is closing
        )

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.http.request(method, path, json=body)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> {response.status_code} {response.text[:300]}")
        return response.json()

    async def chat(self, model: str) -> str:
        return str((await self.call("POST", "/api/chats", {"model": model}))["id"])

    async def post(self, chat_id: str, content: str = "go") -> str:
        answer = await self.call("POST", f"/api/chats/{chat_id}/messages", {"content": content})
        return str(answer["assistant_message"]["id"])


# --- figures ---------------------------------------------------------------------------------


def percentile(values: list[int] | list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return float(ordered[index])


def check(subs: list[Subscriber], replies: dict[str, str]) -> dict[str, Any]:
    """Lost, duplicated, out of order, text mismatches, resets, unfinished: all must be 0.

    The first mismatch is described (`mismatch_detail`) so it can be chased.
    """
    out: dict[str, Any] = {
        "lost": 0,
        "dup": 0,
        "ooo": 0,
        "mismatch": 0,
        "resets": 0,
        "unfinished": 0,
        "overlap": 0,
    }
    for sub in subs:
        out["resets"] += sub.resets
        track = sub.tracks.get(replies.get(sub.chat_id, ""))
        if track is None or track.final is None:
            out["unfinished"] += 1
            continue
        out["lost"] += track.lost()
        out["dup"] += track.dup
        out["ooo"] += track.ooo
        out["overlap"] += track.overlap
        text = "".join(track.parts)
        final = track.final
        expected = final["content"] or final_stamps(final)
        tokens = int(final["seq"]) if final["content"] else len(expected.split())
        if text != expected or not well_formed(text, tokens):
            out["mismatch"] += 1
            if "mismatch_detail" not in out:
                out["mismatch_detail"] = describe(text, final)
    return out


def stamps_of(tool: Any) -> str:
    """A tool delta's clock readings (the bench model's `-t`): its arguments when they are
    one `"<ns> "`; the call's start and its JSON's opening and closing pieces carry none."""
    text = str((tool or {}).get("arguments", ""))
    return text if text[:-1].isdigit() else ""


def final_stamps(final: dict[str, Any]) -> str:
    """The clock readings of a final `-t` reply: its one call's arguments, unwrapped."""
    calls = [p for p in final.get("parts") or [] if p.get("type") == "tool"]
    if not calls:
        return ""
    arguments = str(calls[0]["arguments"])
    return arguments.removeprefix('{"stamps": "').removesuffix('"}')


def describe(text: str, final: dict[str, Any]) -> str:
    """Where the received text and the final message part ways."""
    stored = str(final.get("content", ""))
    at = next(
        (i for i, (a, b) in enumerate(zip(text, stored, strict=False)) if a != b),
        min(len(text), len(stored)),
    )
    return (
        f"{final.get('id')} status={final.get('status')} seq={final.get('seq')} "
        f"error={final.get('error')} received {len(text)} chars, final {len(stored)}, "
        f"first difference at {at}: {text[at : at + 40]!r} vs {stored[at : at + 40]!r}; "
        f"received tokens={len(text.split())}"
    )


def well_formed(text: str, tokens: int) -> bool:
    """Exactly `tokens` bench clock readings, each followed by one space, never going back."""
    stamps = text.split(" ")
    if stamps[-1] != "" or len(stamps) - 1 != tokens:
        return False
    values = [int(s) for s in stamps[:-1] if s.isdigit()]
    return len(values) == tokens and values == sorted(values)


def stalled_us() -> int:
    """Microseconds some task on this machine waited for a CPU (PSI), 0 if unknown."""
    try:
        with open("/proc/pressure/cpu") as f:
            return int(f.readline().rsplit("total=", 1)[1])
    except (OSError, IndexError, ValueError):
        return 0


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """No cyclic GC pause in the generator while it measures (it frees nothing cyclic)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Probe:
    """CPU and memory of the server and of this process over a measured window.

    `cpu_pressure` is the share of the window in which some task of the machine
    (a teammate's build, say) waited for a CPU: the noise behind the figure.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __enter__(self) -> Probe:
        if self.pid:
            reset_peak(self.pid)
            self.roles0 = cpu_by_role(self.pid)
        self.engines0 = engines_cpu_ms()
        self.own0 = os.times()
        self.stall0 = stalled_us()
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.monotonic() - self.t0
        self.cpu_pressure = (stalled_us() - self.stall0) / 1e6 / self.elapsed
        own = os.times()
        self.client_cpu = (own.user + own.system - self.own0.user - self.own0.system) / self.elapsed
        # per role (scaled out: the API processes, the worker), from their own counters
        self.roles_cpu_ms: dict[str, float] = {}
        if self.pid:
            for key, ms in cpu_by_role(self.pid).items():
                self.roles_cpu_ms[key] = ms - self.roles0.get(key, 0)
        self.server_cpu_ms = sum(self.roles_cpu_ms.values()) if self.pid else float("nan")
        # beside it, not in it: the machine's PostgreSQL and Redis (scaled out, the set's)
        self.engines_cpu_ms = {k: ms - self.engines0[k] for k, ms in engines_cpu_ms().items()}
        self.peak_rss_mb = memory_kb(self.pid, "VmHWM") / 1024 if self.pid else float("nan")


# --- workloads -------------------------------------------------------------------------------


def steady_figures(
    subs: list[Subscriber], latencies: list[int], stamps: list[int]
) -> dict[str, float]:
    """Latency while every stream runs: deltas yielded after the last stream's first delta
    and before the first stream's last one. The whole-run figures also hold the ramp (S
    replies posted within 0.2 s, each a request and a job start) and the ends."""
    firsts = [t.first_ns for s in subs for t in s.tracks.values() if t.first_ns]
    lasts = [s.last_ns for s in subs if s.last_ns]
    if not firsts or not lasts or len(stamps) != len(latencies):
        return {}
    start, end = max(firsts), min(lasts)
    window = [lat for lat, at in zip(latencies, stamps, strict=True) if start <= at <= end]
    if not window:
        return {}
    return {
        "steady_p50_ms": percentile(window, 0.5) / 1e6,
        "steady_p99_ms": percentile(window, 0.99) / 1e6,
        "steady_share": len(window) / len(latencies),
    }


def late_figures(
    subs: list[Subscriber],
    replies: dict[str, str],
    sent: dict[str, int],
    latencies: list[int],
    stamps: list[int],
) -> dict[str, float]:
    """Lateness counted from the POST: each delta against when it would have come had its reply
    started at its POST (`receipt - (POST sent + (yield - first yield))`, i.e. its latency plus
    its reply's start delay); and the start delay itself, POST sent to first delta received."""
    first_yield: dict[str, int] = {}
    of_stamp: dict[int, str] = {}
    firsts: list[int] = []
    for sub in subs:
        track = sub.tracks.get(replies.get(sub.chat_id, ""))
        if track is None or not track.parts or sub.chat_id not in sent:
            continue
        firsts.append(track.first_ns - sent[sub.chat_id])
        stamped = next((part for part in track.parts if part.strip()), None)
        if stamped is not None and sub.chat_id not in first_yield:
            first_yield[sub.chat_id] = int(stamped.split()[0])
            of_stamp.update((int(t), sub.chat_id) for part in track.parts for t in part.split())
    late = [
        latency + first_yield[chat] - sent[chat]
        for latency, stamp in zip(latencies, stamps, strict=True)
        if (chat := of_stamp.get(stamp)) is not None
    ]
    if not late:
        return {}
    return {
        "late_p50_ms": percentile(late, 0.5) / 1e6,
        "late_p99_ms": percentile(late, 0.99) / 1e6,
        "first_p99_ms": percentile(firsts, 0.99) / 1e6,
    }


async def open_subscribers(
    target: Target,
    transport: str,
    chats: list[str],
    k: int,
    latencies: list[int],
    stamps: list[int] | None = None,
) -> list[Subscriber]:
    subs = [Subscriber(chat, latencies, stamps) for chat in chats for _ in range(k)]
    await gather_limited((connect(s, target, transport) for s in subs), 64)
    return subs


async def open_posters(target: Target, chats: list[str]) -> list[posters.Poster]:
    """A warm raw connection per chat (`benchmarks.posters`), in the order of `chats`."""
    opened = await gather_limited(
        (posters.open_poster(target.api, target.headers()) for _ in chats), 64
    )
    return await gather_limited(
        (posters.warm(p, c) for p, c in zip(opened, chats, strict=True)), 64
    )


async def start_streams(
    api: Api,
    chats: list[str],
    spread: float,
    sent: dict[str, int] | None = None,
    raw: list[posters.Poster] | None = None,
) -> dict[str, str]:
    """POST one message per chat, spread evenly over `spread` seconds (streams are not in step);
    `sent`: when each POST was sent (ns), by chat; `raw`: each chat's warm raw connection
    (the POSTs then leave the generator on time, whatever its load: W3 `--from-post`)."""
    replies: dict[str, str] = {}
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    prepared = (
        [
            p.request("POST", f"/api/chats/{c}/messages", {"content": "go"})
            for p, c in zip(raw, chats, strict=True)
        ]
        if raw is not None
        else []
    )

    async def one(i: int, chat: str) -> None:
        await asyncio.sleep(max(0.0, t0 + spread * i / len(chats) - loop.time()))
        if sent is not None:
            sent[chat] = time.time_ns()
        if raw is not None:
            try:
                outcome: tuple[int, bytes] | BaseException = await raw[i].send(prepared[i])
            except (ConnectionError, OSError) as exc:
                outcome = exc
            try:
                replies[chat] = posters.reply_of(outcome)
            except RuntimeError as e:
                api.errors.append(str(e))
            return
        try:
            replies[chat] = await api.post(chat)
        except httpx.TransportError as e:
            # The answer was lost on the way (a reset socket): do what a client does, look at
            # the chat; post again only if the message never arrived.
            api.recovered.append(f"{type(e).__name__}: {e}"[:300])
            try:
                state = await api.call("GET", f"/api/chats/{chat}")
                made = [m["id"] for m in state["messages"] if m["role"] == "assistant"]
                replies[chat] = made[-1] if made else await api.post(chat)
            except (RuntimeError, httpx.HTTPError) as again:
                api.errors.append(f"{type(again).__name__}: {again}"[:300])
        except RuntimeError as e:
            api.errors.append(f"{type(e).__name__}: {e}"[:300])  # its subscribers: unfinished

    await asyncio.gather(*(one(i, c) for i, c in enumerate(chats)))
    return replies


async def wait_all(subs: list[Subscriber], replies: dict[str, str], within: float) -> None:
    futures = [s.wait_final(replies[s.chat_id]) for s in subs if s.chat_id in replies]
    if not futures:
        return
    done, _ = await asyncio.wait(futures, timeout=within)
    for future in done:
        future.exception()  # resets are counted by `check`


def close_all(subs: list[Subscriber]) -> None:
    for sub in subs:
        if sub.conn is not None:
            sub.conn.close()


async def steady(
    target: Target,
    transport: str,
    streams: int,
    k: int,
    rate: int,
    tokens: int,
    reconnect: float | None = None,
    slow: int = 0,
    window: contextlib.AbstractContextManager[Any] | None = None,
    tool_deltas: bool = False,
    raw_posts: bool = False,
) -> dict[str, Any]:
    """W2/W3 (W5 with `reconnect`, W8 with `slow`): S streams x K subscribers x R tokens/s
    (`tool_deltas`: each stream is one tool call's arguments, the bench model's `-t`;
    `raw_posts`: each POST on a warm raw connection of its own, `start_streams`).

    Every subscriber is checked. `slow` more subscribers, one on each of the first
    `slow` streams, stop reading: they are left out of the figures (the others').
    `window` is entered while the streams run, setup excluded (the profiler).
    """
    latencies: list[int] = []
    stamps: list[int] = []
    async with Api(target) as api:
        model = f"bench:r{rate}-n{tokens}" + ("-t" if tool_deltas else "")
        chats = await gather_limited((api.chat(model) for _ in range(streams)), 16)
        subs = await open_subscribers(target, transport, chats, k, latencies, stamps)
        laggards = [Subscriber(chat, []) for chat in chats[:slow]]
        for laggard in laggards:
            await connect(laggard, target, transport, slow=True)
        live: list[int] = []
        replayed: list[int] = []
        tasks: set[asyncio.Task[None]] = set()
        if reconnect is not None:
            for sub in subs:
                sub.drop_at = max(1, tokens // 2)
                sub.reconnect = _reconnector(sub, target, transport, reconnect, tasks)
        sent: dict[str, int] = {}
        raw = await open_posters(target, chats) if raw_posts else None
        with Probe(target.pid) as probe, window or contextlib.nullcontext(), no_gc():
            spread = min(1.0, max(0.2, 1 / max(rate, 1)))
            replies = await start_streams(api, chats, spread, sent, raw)
            await wait_all(subs, replies, within=tokens / max(rate, 1) + 10)
            close_all(laggards)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        for sub in subs:
            # live: the first delta yielded after the reconnect began (seen by `on_event`)
            if sub.live_ns:
                live.append(sub.live_ns - sub.live_since)
                replayed.append(sub.bytes_at_live - sub.bytes_at_join)
        close_all(subs)
        for poster in raw or []:
            poster.close()
    faults = check(subs, replies)
    delivered = len(latencies)
    first = min((t.first_ns for s in subs for t in s.tracks.values() if t.first_ns), default=0)
    last = max((s.last_ns for s in subs), default=0)
    result: dict[str, Any] = {
        "delivered": delivered,
        # the delivery rate while streams ran: first delta received to last delta received
        "chunks_per_s": delivered / ((last - first) / 1e9) if last > first else float("nan"),
        "p50_ms": percentile(latencies, 0.5) / 1e6,
        "p99_ms": percentile(latencies, 0.99) / 1e6,
        "max_ms": max(latencies, default=0) / 1e6,
        **steady_figures(subs, latencies, stamps),
        **late_figures(subs, replies, sent, latencies, stamps),
        **faults,
        "cpu_ms_per_1000": probe.server_cpu_ms / delivered * 1000 if delivered else float("nan"),
        **{
            f"{key}_cpu_ms_per_1000": ms / delivered * 1000 if delivered else float("nan")
            for key, ms in probe.roles_cpu_ms.items()
            if key != "other"  # scaled out only: the API processes', the worker's share
        },
        **{
            f"{key}_cpu_ms_per_1000": ms / delivered * 1000 if delivered else float("nan")
            for key, ms in probe.engines_cpu_ms.items()
        },
        "peak_rss_mb": probe.peak_rss_mb,
        "client_cpu": probe.client_cpu,
        "cpu_pressure": probe.cpu_pressure,
        "post_errors": len(api.errors),
        "post_recovered": len(api.recovered),
    }
    if api.errors:
        result["first_error"] = api.errors[0]
    if reconnect is not None:
        result["reconnected"] = len(live)
        result["ttl_p50_ms"] = percentile(live, 0.5) / 1e6
        result["ttl_p99_ms"] = percentile(live, 0.99) / 1e6
        result["replayed_kb_p50"] = percentile(replayed, 0.5) / 1024
        result["replayed_kb_total"] = sum(replayed) / 1024
    return result


def _reconnector(
    sub: Subscriber,
    target: Target,
    transport: str,
    offline: float,
    tasks: set[asyncio.Task[None]],
) -> Any:
    async def again() -> None:
        await asyncio.sleep(offline)
        sub.live_since = time.time_ns()
        sub.bytes_at_join = sub.bytes
        await connect(sub, target, transport)

    def schedule() -> None:
        if sub.conn is not None:
            sub.conn.close()
        task = asyncio.ensure_future(again())
        tasks.add(task)

    return schedule


async def first_token(target: Target, transport: str, samples: int) -> dict[str, Any]:
    """W1: POST -> first delta received, one subscriber, a zero-latency model.

    Split at the model's first yield (the bench chunk is its clock reading):
    `start` is POST -> first yield (the POST, the job's way to a worker and its
    start), `deliver` first yield -> received (the append, the log's reader, the
    transport); `post` is the POST's own round trip.
    """
    values: list[int] = []
    starts: list[int] = []
    posts: list[int] = []
    async with Api(target) as api:
        chat = await api.chat("bench:r0-n3")
        (sub,) = await open_subscribers(target, transport, [chat], 1, [])
        for _ in range(samples + 2):
            t0 = time.time_ns()
            reply = await api.post(chat)
            posts.append(time.time_ns() - t0)
            await asyncio.wait_for(sub.wait_final(reply), 30)
            track = sub.tracks[reply]
            values.append(track.first_ns - t0)
            starts.append(int(track.parts[0].split()[0]) - t0)
        close_all([sub])
    values, starts, posts = values[2:], starts[2:], posts[2:]  # warm-up
    delivers = [v - s for v, s in zip(values, starts, strict=True)]
    return {
        "ttft_p50_ms": percentile(values, 0.5) / 1e6,
        "ttft_p99_ms": percentile(values, 0.99) / 1e6,
        "post_p50_ms": percentile(posts, 0.5) / 1e6,
        "start_p50_ms": percentile(starts, 0.5) / 1e6,
        "start_p99_ms": percentile(starts, 0.99) / 1e6,
        "deliver_p50_ms": percentile(delivers, 0.5) / 1e6,
        "deliver_p99_ms": percentile(delivers, 0.99) / 1e6,
        "samples": len(values),
    }


async def late_joiners(
    target: Target, transport: str, streams: int, joiners: int, rate: int, tokens: int
) -> dict[str, Any]:
    """W4: subscribers join running streams at random offsets from `GET /api/chats/{id}`."""
    latencies: list[int] = []
    live: list[int] = []
    replayed: list[int] = []
    faults = {
        "lost": 0,
        "dup": 0,
        "ooo": 0,
        "mismatch": 0,
        "resets": 0,
        "unfinished": 0,
        "overlap": 0,
    }
    subs: list[Subscriber] = []
    duration = tokens / rate
    async with Api(target) as api:
        chats = await gather_limited(
            (api.chat(f"bench:r{rate}-n{tokens}") for _ in range(streams)), 16
        )
        replies = await start_streams(api, chats, spread=0.5)

        async def join(chat: str) -> None:
            await asyncio.sleep(random.uniform(0.2, duration * 0.9))
            sub = Subscriber(chat, latencies)
            sub.live_since = time.time_ns()
            state = await api.call("GET", f"/api/chats/{chat}")
            reply = next(m for m in state["messages"] if m["id"] == replies[chat])
            track = sub.track(reply["id"])
            track.base = track.last = int(reply["seq"])
            track.parts.append(reply["content"])
            sub.cursor = state["cursor"]
            if reply["status"] in ("complete", "failed", "cancelled"):
                track.final = reply
            await connect(sub, target, transport)
            subs.append(sub)
            await asyncio.wait_for(sub.wait_final(reply["id"]), duration + 60)
            if sub.live_ns:
                live.append(sub.live_ns - sub.live_since)
                replayed.append(sub.bytes_at_live)

        with Probe(target.pid):
            await asyncio.gather(
                *(join(c) for c in chats for _ in range(joiners)), return_exceptions=True
            )
        close_all(subs)
    faults = check(subs, replies)
    return {
        "joined": len(subs),
        "ttl_p50_ms": percentile(live, 0.5) / 1e6,
        "ttl_p99_ms": percentile(live, 0.99) / 1e6,
        "replayed_kb_p50": percentile(replayed, 0.5) / 1024,
        **faults,
    }


async def idle(
    target: Target, transport: str, counts: list[int], chats: int = 100
) -> dict[str, Any]:
    """W6: server memory per idle subscriber (RSS growth / subscribers)."""
    result: dict[str, Any] = {}
    subs: list[Subscriber] = []
    async with Api(target) as api:
        ids = await gather_limited((api.chat("bench:r50-n10") for _ in range(chats)), 16)
        await asyncio.sleep(0.5)
        base = memory_kb(target.pid)
        for count in counts:
            new = [Subscriber(ids[i % chats], []) for i in range(len(subs), count)]
            await gather_limited((connect(s, target, transport, within=120) for s in new), 100)
            subs += new
            await asyncio.sleep(1.0)
            result[f"kb_per_sub_{count}"] = (memory_kb(target.pid) - base) / count
        result["rss_mb"] = memory_kb(target.pid) / 1024
        close_all(subs)
    await asyncio.sleep(0.5)
    return result
