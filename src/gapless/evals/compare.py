"""Experiment runs side by side: each run's summary and, per dataset item, which runs got worse.

The rules are pure functions: experiments, their items and the dataset's
items in (the API's JSON shapes), the comparison out. Nothing is stored; a
comparison is computed when asked, so it reflects the runs as they stand (a
run still going compares what it has finished).

- An item *passes* when its run ended it `done` and none of its evaluator
  results failed or erred (an evaluator error is no score, so no pass either).
  A run's pass rate is over its ended items (`done` or `failed`). (The live
  experiment page counts its items by the same rule: experiments.js `passes`.)
- The *reference* run is the dataset's baseline when it is among the runs,
  else the first one asked for.
- An item *regressed* in a run when a score that passes in the reference does
  not pass in that run (failed or erred), or when the run failed the item that
  the reference finished. Its mirror image is *improved*.

`comparison` is the one use case: it reads the runs (another account's is
404) and compares them. Imports `db`, `errors`, `observe.histogram` (the
percentile rule the dashboard uses).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gapless.db import Engine
from gapless.db import datasets as db_datasets
from gapless.db import experiments as db_experiments
from gapless.db.accounts import Caller
from gapless.errors import InvalidError, NotFoundError
from gapless.observe.histogram import exact

Row = Mapping[str, Any]
ENDED = ("done", "failed")


def results_of(item: Row) -> list[Row]:
    return list(item.get("scores") or [])


def passes(item: Row) -> bool | None:
    """Whether an item passed; None while it has not ended (pending, running, stopped)."""
    if item.get("status") not in ENDED:
        return None
    if item["status"] == "failed":
        return False
    return all(r.get("error") is None and r.get("passed") is not False for r in results_of(item))


def _score_figures(items: Sequence[Row]) -> dict[str, dict[str, Any]]:
    """Per score name: mean value, pass rate (of the results that say), count, errors."""
    tallies: dict[str, dict[str, list[Any]]] = {}
    for item in items:
        for result in results_of(item):
            tally = tallies.setdefault(result["name"], {"values": [], "passed": [], "errors": []})
            if result.get("error") is not None:
                tally["errors"].append(result["error"])
                continue
            if result.get("value") is not None:
                tally["values"].append(float(result["value"]))
            if result.get("passed") is not None:
                tally["passed"].append(bool(result["passed"]))
    return {
        name: {
            "mean": _mean(t["values"]),
            "pass_rate": _mean([1.0 if p else 0.0 for p in t["passed"]]),
            "count": len(t["values"]),
            "errors": len(t["errors"]),
        }
        for name, t in sorted(tallies.items())
    }


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def summary(items: Sequence[Row]) -> dict[str, Any]:
    """A run's figures over its items: pass rate, scores, total cost, latency, failures."""
    verdicts = [v for v in (passes(i) for i in items) if v is not None]
    costs = [float(i["cost"]) for i in items if i.get("cost") is not None]
    durations = [
        float(i["duration_ms"])
        for i in items
        if i.get("status") in ENDED and i.get("duration_ms") is not None
    ]
    return {
        "pass_rate": _mean([1.0 if v else 0.0 for v in verdicts]),
        "passed": sum(verdicts),
        "ended": len(verdicts),
        "scores": _score_figures(items),
        "cost": round(sum(costs), 8) if costs else None,
        "latency_p50": exact(durations, 0.5),
        "latency_p95": exact(durations, 0.95),
        "failed": sum(1 for i in items if i.get("status") == "failed"),
    }


def _verdicts(item: Row) -> dict[str, bool]:
    """Score name -> whether it passed (an error is a fail), for results that judge."""
    found: dict[str, bool] = {}
    for result in results_of(item):
        if result.get("error") is not None:
            found[result["name"]] = False
        elif result.get("passed") is not None:
            found[result["name"]] = bool(result["passed"])
    return found


def worse(reference: Row | None, item: Row | None) -> bool:
    """Whether `item` regressed from `reference` (both the same dataset item, other runs)."""
    if reference is None or item is None or reference.get("status") != "done":
        return False
    if item.get("status") == "failed":
        return True
    if item.get("status") != "done":
        return False  # not ended yet, or stopped: nothing to judge
    before, after = _verdicts(reference), _verdicts(item)
    return any(ok and after.get(name) is False for name, ok in before.items())


def reference_of(ids: Sequence[str], baseline_id: str | None) -> str:
    return baseline_id if baseline_id is not None and baseline_id in ids else ids[0]


def _result(item: Row) -> dict[str, Any]:
    keys = ("status", "output", "scores", "cost", "duration_ms", "trace_id", "error")
    return {key: item.get(key) for key in keys} | {"passed": passes(item)}


def _changes(experiment_id: str, rows: Sequence[Row]) -> dict[str, int]:
    return {
        "regressed": sum(1 for r in rows if experiment_id in r["regressed"]),
        "improved": sum(1 for r in rows if experiment_id in r["improved"]),
    }


def compare(
    experiments: Sequence[Row],
    items: Mapping[str, Sequence[Row]],
    dataset_items: Mapping[str, Row],
    baseline_id: str | None,
) -> dict[str, Any]:
    """The comparison answer: runs with their summaries, and per dataset item every run's
    result and the runs it regressed (or improved) in against the reference.

    `items` maps an experiment id to its items; `dataset_items` a dataset item id to the
    item (its `input` and `expected`)."""
    ids = [e["id"] for e in experiments]
    reference = reference_of(ids, baseline_id)
    by_item: dict[str, dict[str, Row]] = {}
    positions: dict[str, tuple[int, int]] = {}
    for rank, experiment_id in enumerate([reference] + [i for i in ids if i != reference]):
        for item in items.get(experiment_id, ()):
            by_item.setdefault(item["item_id"], {})[experiment_id] = item
            positions.setdefault(item["item_id"], (rank, int(item.get("position") or 0)))
    rows: list[dict[str, Any]] = []
    for item_id in sorted(by_item, key=lambda i: (positions[i], i)):
        runs = by_item[item_id]
        source = dataset_items.get(item_id, {})
        rows.append(
            {
                "item_id": item_id,
                "position": positions[item_id][1],
                "input": source.get("input"),
                "expected": source.get("expected"),
                "results": {e: _result(runs[e]) for e in ids if e in runs},
                "regressed": [
                    e for e in ids if e != reference and worse(runs.get(reference), runs.get(e))
                ],
                "improved": [
                    e for e in ids if e != reference and worse(runs.get(e), runs.get(reference))
                ],
            }
        )
    return {
        "dataset_id": experiments[0]["dataset_id"] if experiments else None,
        "baseline_id": baseline_id,
        "reference_id": reference,
        "experiments": [
            {**e, "summary": summary(items.get(e["id"], ())) | _changes(e["id"], rows)}
            for e in experiments
        ],
        "items": rows,
    }


# ---- the use case: read the runs (404 across accounts), then compare --------------------------

MAX_RUNS = 5


def parse_ids(text: str) -> list[str]:
    """`a,b[,c...]`: two to five distinct experiment ids, in order."""
    ids = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not 2 <= len(ids) <= MAX_RUNS:
        raise InvalidError(f"compare 2 to {MAX_RUNS} distinct runs", code="bad_ids")
    return ids


async def comparison(engine: Engine, caller: Caller, ids: Sequence[str]) -> dict[str, Any]:
    """Runs of one dataset compared; a run the caller may not see is 404, runs of
    different datasets are 422 `different_datasets`."""
    found = []
    for experiment_id in ids:
        experiment = await db_experiments.get_experiment(engine, experiment_id)
        if experiment is None or not caller.sees(experiment["account_id"]):
            raise NotFoundError(f"experiment {experiment_id} not found")
        found.append(experiment)
    if len({e["dataset_id"] for e in found}) > 1:
        raise InvalidError("these runs are of different datasets", code="different_datasets")
    dataset = await db_datasets.get_dataset(engine, found[0]["dataset_id"])
    items = {e["id"]: await db_experiments.items_of(engine, e["id"]) for e in found}
    sources = {i["item_id"]: i for rows in items.values() for i in rows}
    return compare(found, items, sources, dataset["baseline_id"] if dataset else None)
