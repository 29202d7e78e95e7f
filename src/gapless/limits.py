"""A token bucket per caller, so one user cannot flood the models: pure, time passed in.

Per process: scaled out over N API processes a caller may get N times the rate,
which still bounds the flood. Imports nothing from gapless.
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
