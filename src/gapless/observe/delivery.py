"""Figures of the streaming layer, per process and per chat: counters, not per-event work.

`CountingLog` wraps the process's `EventLog`. An append adds one to two
integers and writes its time and cursor into the stream's preallocated ring;
a subscription is wrapped once, and each *batch* it hands over (never each
event) adds to the counters (`feed.follow` waits on the wrapped subscription
itself and calls `Counted.count` after: no frame of its own per batch); one
batch in sixteen also measures the subscriber's lag: how many of this process's
appends to the stream, and how long, since the batch's last event was appended
(found in the ring). A resumed subscription's batches are all looked up until
its replay is counted.
What is counted: live subscribers by transport (`label`), events appended and
delivered, replays (a subscription that resumed from a cursor and was handed
events appended before it opened) and the events they carried, resets by
reason (`behind` is a slow subscriber ended), reconnects (subscriptions opened
with a cursor). Lag samples go to fixed rings (p50, p99 of the recent ones).
Scaled out, appends happen in the workers: an API process then counts its
subscribers, deliveries, replays and resets, but measures no lag (say so).
Imports `events`, `log.base`.
"""

from __future__ import annotations

import os
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Mapping
from time import monotonic
from typing import Any

from gapless.events import Event
from gapless.log.base import EventLog, Subscription

RING = 64  # appends remembered per stream (times and cursors) to measure lag
MASK = RING - 1
SAMPLES = 2048  # recent lag samples kept for the percentiles
SAMPLE_EVERY = 15  # a mask: the lag of one batch in 16 is measured (the search costs)
STREAMS = 10_000  # streams with figures of their own; the idlest are forgotten beyond


class Stream:
    """One stream's counters and its ring of recent appends (allocated once)."""

    __slots__ = (
        "appended",
        "cursors",
        "delivered",
        "name",
        "replays",
        "resets",
        "subscribers",
        "times",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.appended = self.delivered = self.subscribers = self.replays = self.resets = 0
        self.times = array("d", bytes(8 * RING))
        self.cursors: list[str] = [""] * RING


class Tally:
    """This process's figures (one per process, in the runtime)."""

    def __init__(self) -> None:
        self.since = time.time()
        self.appended = self.delivered = self.replays = self.replayed = 0
        self.reconnects = self.slow_ended = 0
        self.subscribers: dict[str, int] = {}
        self.resets: dict[str, int] = {}
        self.lag_events = array("d", bytes(8 * SAMPLES))
        self.lag_ms = array("d", bytes(8 * SAMPLES))
        self.samples = 0
        self.streams: OrderedDict[str, Stream] = OrderedDict()

    def stream(self, name: str) -> Stream:
        found = self.streams.get(name)
        if found is None:
            found = self.streams[name] = Stream(name)
            if len(self.streams) > STREAMS:
                self.streams.popitem(last=False)
        return found

    def sample(self, events: float, ms: float) -> None:
        slot = self.samples % SAMPLES
        self.lag_events[slot], self.lag_ms[slot] = events, ms
        self.samples += 1

    def percentiles(self, ring: array[float]) -> dict[str, float | None]:
        taken = sorted(ring[: min(self.samples, SAMPLES)])
        if not taken:
            return {"p50": None, "p99": None}

        def at(q: float) -> float:
            return round(taken[min(len(taken) - 1, int(q * len(taken)))], 1)

        return {"p50": at(0.5), "p99": at(0.99)}

    def json(self, chats: int = 20) -> dict[str, Any]:
        busiest = sorted(
            (s for s in self.streams.values() if s.name.startswith("chat:")),
            key=lambda s: (-s.subscribers, -s.delivered),
        )[:chats]
        return {
            "pid": os.getpid(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since)),
            "process": {
                "subscribers": dict(self.subscribers),
                "appended": self.appended,
                "delivered": self.delivered,
                "replays": self.replays,
                "replayed": self.replayed,
                "resets": dict(self.resets),
                "slow_ended": self.slow_ended,
                "reconnects": self.reconnects,
                "lag_events": self.percentiles(self.lag_events),
                "lag_ms": self.percentiles(self.lag_ms),
                "lag_samples": min(self.samples, SAMPLES),
            },
            "chats": [
                {
                    "chat_id": s.name.partition(":")[2],
                    "subscribers": s.subscribers,
                    "appended": s.appended,
                    "delivered": s.delivered,
                    "replays": s.replays,
                    "resets": s.resets,
                }
                for s in busiest
            ],
        }


class CountingLog:
    """An `EventLog` that counts what passes (every other method is the inner log's)."""

    def __init__(self, inner: EventLog, tally: Tally | None = None) -> None:
        self.inner = inner
        self.tally = tally or Tally()

    async def append(self, stream: str, event: Event, fence: str | None = None) -> Event:
        stored = await self.inner.append(stream, event, fence)
        tally = self.tally
        figures = tally.streams.get(stream) or tally.stream(stream)
        slot = figures.appended & MASK
        figures.times[slot] = monotonic()
        figures.cursors[slot] = stored.cursor
        figures.appended += 1
        tally.appended += 1
        return stored

    async def subscribe(self, stream: str, cursor: str | None) -> Subscription:
        inner = await self.inner.subscribe(stream, cursor)
        return Counted(inner, self.tally, self.tally.stream(stream), cursor is not None)

    async def revoke(self, fence: str) -> None:
        await self.inner.revoke(fence)

    async def head(self, stream: str) -> str:
        return await self.inner.head(stream)

    async def trim(self, older_than: float, keep: Mapping[str, str]) -> None:
        await self.inner.trim(older_than, keep)

    async def close(self) -> None:
        await self.inner.close()

    def __getattr__(self, name: str) -> Any:  # what an engine has beyond the interface
        return getattr(self.inner, name)


class Counted:
    """A subscription that counts its batches (its transport is set by `label`)."""

    def __init__(self, inner: Subscription, tally: Tally, stream: Stream, resumed: bool) -> None:
        self.inner, self.tally, self.figures = inner, tally, stream
        self.transport = "internal"
        self.opened_at = stream.appended  # appends before this: a resume's replay
        self.resumed, self.replayed, self.closed = resumed, False, False
        self.batches = 0
        self.catching_up = resumed  # until its batches reach what was there when it opened
        tally.subscribers["internal"] = tally.subscribers.get("internal", 0) + 1
        stream.subscribers += 1
        if resumed:
            tally.reconnects += 1

    async def next(self) -> list[Event]:
        batch = await self.inner.next()
        self.count(batch)
        return batch

    def split(self) -> tuple[Subscription, Callable[[list[Event]], None]]:
        """What to wait on and what to call with each batch: `feed.follow` waits on the
        inner subscription itself and counts after, one frame less per batch."""
        return self.inner, self.count

    def count(self, batch: list[Event]) -> None:
        tally, figures = self.tally, self.figures
        tally.delivered += len(batch)
        figures.delivered += len(batch)
        last = batch[-1]
        if last.type == "reset":
            reason = last.payload().get("reason", "") if last.data else ""
            tally.resets[reason] = tally.resets.get(reason, 0) + 1
            figures.resets += 1
            if reason == "behind":
                tally.slow_ended += 1
            return
        self.batches += 1
        if self.batches & SAMPLE_EVERY and not self.catching_up:
            return  # lag measured on one batch in SAMPLE_EVERY + 1 (and while replaying)
        index = self._index(last.cursor)
        if index is not None:
            behind = figures.appended - 1 - index
            ms = (time.monotonic() - figures.times[index % RING]) * 1000
            tally.sample(behind, ms)
            if self.catching_up and index < self.opened_at:
                self._replay(len(batch))
            elif self.catching_up and index - len(batch) + 1 < self.opened_at:
                self._replay(self.opened_at - (index - len(batch) + 1))
            self.catching_up = self.catching_up and index < self.opened_at - 1
        elif self.catching_up and figures.appended - self.opened_at < RING:
            self._replay(len(batch))  # older than the ring: appended before it opened
        else:
            self.catching_up = False

    def _index(self, cursor: str) -> int | None:
        """The append number of `cursor`, when the ring still holds it (newest first)."""
        figures = self.figures
        newest = figures.appended - 1
        for index in range(newest, max(-1, newest - RING), -1):
            if figures.cursors[index % RING] == cursor:
                return index
        return None

    def _replay(self, events: int) -> None:
        if not self.replayed:
            self.replayed = True
            self.tally.replays += 1
            self.figures.replays += 1
        self.tally.replayed += events

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            counts = self.tally.subscribers
            counts[self.transport] = counts.get(self.transport, 1) - 1
            self.figures.subscribers -= 1
        await self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def label(subscription: Any, transport: str) -> None:
    """Count this subscription under `transport` (sse, ws) rather than `internal`."""
    if isinstance(subscription, Counted) and not subscription.closed:
        counts = subscription.tally.subscribers
        counts[subscription.transport] -= 1
        subscription.transport = transport
        counts[transport] = counts.get(transport, 0) + 1
