"""Log-bucketed histograms of milliseconds: how percentiles survive roll-ups.

Pure. A percentile cannot be summed, a histogram can: every model call adds one
to the bucket of its duration (and of its time to first chunk) in its hour's
roll-up row, and a dashboard over a month sums a few thousand rows in SQL and
reads p50/p95/p99 from the sums here. Buckets grow by `GROWTH` (20 %) from
`FLOOR` ms, so a percentile read back is within the width of one bucket,
interpolated geometrically inside it (a few percent in practice). Imports nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

BUCKETS = 56  # bucket 0: under FLOOR; the last one: from FLOOR * GROWTH**54 (~188 s) up
FLOOR = 10.0
GROWTH = 1.2
_LOG = math.log(GROWTH)


def bucket(ms: float) -> int:
    """The bucket holding `ms`: 0 below FLOOR, then [FLOOR*G**(i-1), FLOOR*G**i)."""
    if ms < FLOOR:
        return 0
    return min(BUCKETS - 1, int(math.log(ms / FLOOR) / _LOG) + 1)


def bounds(index: int) -> tuple[float, float]:
    """The bucket's lower and upper edge in ms (the last one's upper edge is a guess: x2)."""
    if index == 0:
        return 0.0, FLOOR
    low = FLOOR * GROWTH ** (index - 1)
    return low, (low * 2 if index == BUCKETS - 1 else low * GROWTH)


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The q-quantile (0..1) of what `counts` holds, or None when it holds nothing."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            low, high = bounds(index)
            inside = (rank - seen) / count
            if index == 0:
                return round(low + (high - low) * inside, 1)
            return round(float(low * (high / low) ** inside), 1)
        seen += count
    return round(bounds(len(counts) - 1)[1], 1)


def percentiles(counts: Sequence[int]) -> dict[str, float | None]:
    return {name: percentile(counts, q) for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}


def exact(values: list[float], q: float) -> float | None:
    """What PostgreSQL's percentile_cont gives (linear between the two nearest values)."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 1)
