"""A token bucket per caller, so one user cannot flood the models: pure, time passed in.
And counters of failed sign-ins per email and per client address (`Attempts`).

The bucket is per process: scaled out over N API processes a caller may get N
times the rate, which still bounds the flood. Failed sign-ins are not: guessing
must not scale with the processes, so they are counted in Redis when the event
log is there. Imports nothing from gapless.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Limiter:
    rate: float  # requests per second, refilled continuously
    burst: float  # most requests at once
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at)

    def allow(self, key: str, now: float) -> bool:
        tokens, at = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            return False
        self.buckets[key] = (tokens - 1, now)
        if len(self.buckets) > 10_000:  # forget full buckets: they equal no bucket
            self.buckets = {k: v for k, v in self.buckets.items() if v[0] < self.burst - 1}
        return True


@dataclass
class MemoryAttempts:
    """Failed sign-ins per key (an email, a client address) in fixed windows, in this
    process: for one-process deployments. `now` is passed in."""

    window: float
    counts: dict[str, tuple[int, float]] = field(default_factory=dict)  # key -> (n, ends at)

    async def blocked(self, limits: list[tuple[str, int]], now: float) -> float:
        """Seconds until these keys may try again (0: now)."""
        wait = 0.0
        for key, limit in limits:
            count, ends = self.counts.get(key, (0, now))
            if ends > now and count >= limit:
                wait = max(wait, ends - now)
        return wait

    async def failed(self, keys: list[str], now: float) -> None:
        for key in keys:
            count, ends = self.counts.get(key, (0, now))
            self.counts[key] = (count + 1, ends) if ends > now else (1, now + self.window)
        if len(self.counts) > 100_000:  # forget ended windows
            self.counts = {k: v for k, v in self.counts.items() if v[1] > now}

    async def clear(self, key: str) -> None:
        self.counts.pop(key, None)

    async def close(self) -> None:
        return None


# One failure: count it, and start the window with the first one.
_FAILED = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class RedisAttempts:
    """The same counters in Redis, so every API process of a scaled-out set shares them
    (`INCR` and `PEXPIRE` in one script; the window's rest is the key's TTL)."""

    def __init__(self, url: str, window: float, prefix: str = "gapless:signin:") -> None:
        from redis.asyncio import Redis  # lazy: redis is only needed when scaled out

        self.redis = Redis.from_url(url)
        self.window, self.prefix = window, prefix
        self.script = self.redis.register_script(_FAILED)

    async def blocked(self, limits: list[tuple[str, int]], now: float) -> float:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, _ in limits:
                pipe.get(self.prefix + key)
                pipe.pttl(self.prefix + key)
            found = await pipe.execute()
        wait = 0.0
        for index, (_, limit) in enumerate(limits):
            count, ttl = found[2 * index], found[2 * index + 1]
            if count is not None and int(count) >= limit and ttl > 0:
                wait = max(wait, ttl / 1000)
        return wait

    async def failed(self, keys: list[str], now: float) -> None:
        for key in keys:
            await self.script(keys=[self.prefix + key], args=[int(self.window * 1000)])

    async def clear(self, key: str) -> None:
        await self.redis.delete(self.prefix + key)

    async def close(self) -> None:
        await self.redis.aclose()


Attempts = MemoryAttempts | RedisAttempts


def attempts_for(events_url: str, window: float) -> Attempts:
    """Shared through Redis when the event log is there (scaled out), else in memory."""
    if events_url.startswith(("redis://", "rediss://")):
        return RedisAttempts(events_url, window)
    return MemoryAttempts(window)
