"""Dashboard figures from the roll-ups agree with the model calls themselves, on both engines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gapless.db import Engine
from gapless.observe import histogram
from gapless.observe import metrics as figures
from gapless.observe.seed import Plan, seed

END = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # roll-ups answer whole hours


def test_a_histograms_percentile_is_within_one_bucket_of_the_exact_one() -> None:
    values = [10 * 1.07**i for i in range(120)]
    counts = [0] * histogram.BUCKETS
    for value in values:
        counts[histogram.bucket(value)] += 1
    for q in (0.5, 0.95, 0.99):
        exact = histogram.exact(values, q)
        read = histogram.percentile(counts, q)
        assert exact is not None and read is not None
        assert abs(read - exact) <= exact * (histogram.GROWTH - 1)
    assert histogram.percentile([0] * histogram.BUCKETS, 0.5) is None
    assert histogram.bucket(0.5) == 0 and histogram.bucket(10**9) == histogram.BUCKETS - 1


async def test_roll_ups_and_exact_figures_agree(engine: Engine) -> None:
    await seed(engine, Plan(generations=600, accounts=2, seed=11, days=10, end=END))
    since = END - timedelta(days=7)
    for group_by in ("model", "all"):
        rolled = await figures.metrics(engine, None, figures.Query(since, END, group_by, 3600))
        exact = await figures.metrics(
            engine, None, figures.Query(since, END, group_by, 3600, exact=True)
        )
        assert rolled["source"] == "rollup" and exact["source"] == "exact"
        for name in ("count", "errors", "input_tokens", "output_tokens"):
            assert rolled["totals"][name] == exact["totals"][name], name
        assert abs(rolled["totals"]["cost"] - exact["totals"]["cost"]) < 1e-6
        assert {g["key"] for g in rolled["groups"]} == {g["key"] for g in exact["groups"]}
        for figure in ("duration_ms", "ttft_ms"):
            for q in ("p50", "p95", "p99"):
                a, b = rolled["totals"][figure][q], exact["totals"][figure][q]
                assert abs(a - b) <= 0.2 * b, (figure, q, a, b)
        assert sum(s["count"] for s in rolled["series"]) == rolled["totals"]["count"]
        assert sum(s["count"] for s in exact["series"]) == exact["totals"]["count"]
        assert rolled["previous"]["count"] == exact["previous"]["count"]
