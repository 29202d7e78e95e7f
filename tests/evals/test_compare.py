"""The comparison of experiment runs on literal rows: pass rate, score figures, cost,
latency percentiles, the reference run and which item regressed."""

from __future__ import annotations

from typing import Any

from gapless.evals.compare import compare, passes, reference_of, summary, worse


def result(name: str, passed: bool | None, value: float | None = None, error: str | None = None):
    if value is None and passed is not None and error is None:
        value = 1.0 if passed else 0.0
    return {"evaluator_id": f"evl_{name}", "name": name, "data_type": "boolean",
            "value": None if error else value, "label": None, "explanation": None,
            "passed": None if error else passed, "error": error}  # fmt: skip


def item(item_id: str, status: str = "done", *scores: dict[str, Any], **fields: Any):
    return {"item_id": item_id, "position": int(item_id[-1]), "status": status,
            "output": fields.pop("output", f"out {item_id}"), "scores": list(scores),
            "cost": fields.pop("cost", None), "duration_ms": fields.pop("duration_ms", None),
            "trace_id": f"trc_{item_id}", "error": None, **fields}  # fmt: skip


def test_an_item_passes_when_done_with_no_failing_or_erring_score() -> None:
    assert passes(item("i1", "done", result("exact", True))) is True
    assert passes(item("i1", "done")) is True  # no evaluators: it ran
    assert passes(item("i1", "done", result("exact", True), result("json", False))) is False
    assert passes(item("i1", "done", result("judge", None, error="not a verdict: hi"))) is False
    assert passes(item("i1", "failed")) is False
    for status in ("pending", "running", "scoring", "stopped"):
        assert passes(item("i1", status)) is None


def test_the_summary_counts_ended_items_only_and_reads_percentiles_linearly() -> None:
    items = [
        item("i1", "done", result("exact", True), cost=0.001, duration_ms=100),
        item("i2", "done", result("exact", False), cost=0.002, duration_ms=200),
        item("i3", "done", result("exact", True), cost=0.003, duration_ms=300),
        item("i4", "failed", cost=0.0005, duration_ms=1000),
        item("i5", "pending"),
        item("i6", "stopped"),
    ]
    found = summary(items)
    assert found["pass_rate"] == 0.5  # 2 of 4 ended
    assert (found["passed"], found["ended"], found["failed"]) == (2, 4, 1)
    assert found["cost"] == 0.0065
    # 100, 200, 300, 1000: p50 halfway between 200 and 300, p95 at 2.85 of 3 steps
    assert found["latency_p50"] == 250.0
    assert found["latency_p95"] == 895.0
    assert found["scores"] == {
        "exact": {"mean": 0.6667, "pass_rate": 0.6667, "count": 3, "errors": 0}
    }


def test_score_figures_keep_errors_out_of_the_mean_and_count_them() -> None:
    items = [
        item("i1", "done", result("quality", True, 0.9)),
        item("i2", "done", result("quality", False, 0.3)),
        item("i3", "done", result("quality", None, error="provider failed")),
    ]
    assert summary(items)["scores"]["quality"] == {
        "mean": 0.6, "pass_rate": 0.5, "count": 2, "errors": 1,
    }  # fmt: skip


def test_a_run_with_nothing_ended_has_no_figures() -> None:
    found = summary([item("i1", "pending"), item("i2", "running")])
    assert found["pass_rate"] is None
    assert found["cost"] is None
    assert (found["latency_p50"], found["latency_p95"]) == (None, None)
    assert found["scores"] == {}


def test_the_reference_is_the_baseline_when_among_the_runs_else_the_first() -> None:
    assert reference_of(["exp_a", "exp_b"], "exp_b") == "exp_b"
    assert reference_of(["exp_a", "exp_b"], "exp_z") == "exp_a"
    assert reference_of(["exp_a", "exp_b"], None) == "exp_a"


def test_worse_means_a_passing_score_no_longer_passes_or_the_item_failed() -> None:
    good = item("i1", "done", result("exact", True), result("json", True))
    assert worse(good, item("i1", "done", result("exact", False), result("json", True)))
    assert worse(good, item("i1", "done", result("exact", None, error="timeout")))
    assert worse(good, item("i1", "failed"))
    assert not worse(good, good)
    assert not worse(good, item("i1", "running"))  # not ended: nothing to judge yet
    assert not worse(good, item("i1", "done", result("other", False)))  # not compared
    bad = item("i1", "done", result("exact", False))
    assert not worse(bad, item("i1", "done", result("exact", False)))
    assert not worse(item("i1", "failed"), item("i1", "failed"))


def test_the_comparison_marks_the_item_that_regressed_against_the_baseline() -> None:
    experiments = [
        {"id": "exp_new", "dataset_id": "dst_1", "name": "v2", "status": "completed"},
        {"id": "exp_old", "dataset_id": "dst_1", "name": "v1", "status": "completed"},
    ]
    items = {
        "exp_old": [
            item("dsi_1", "done", result("exact", True), output="Paris", duration_ms=100),
            item("dsi_2", "done", result("exact", True), output="4", duration_ms=200),
            item("dsi_3", "done", result("exact", False), output="blue", duration_ms=300),
        ],
        "exp_new": [
            item("dsi_2", "done", result("exact", False), output="five", duration_ms=50),
            item("dsi_1", "done", result("exact", True), output="Paris", duration_ms=60),
            item("dsi_3", "done", result("exact", True), output="green", duration_ms=70),
        ],
    }
    dataset = {
        "dsi_1": {"input": {"messages": [{"role": "user", "content": "Capital of France?"}],
                            "variables": {}}, "expected": "Paris"},
        "dsi_2": {"input": {"messages": [{"role": "user", "content": "2+2?"}],
                            "variables": {}}, "expected": "4"},
    }  # fmt: skip
    found = compare(experiments, items, dataset, baseline_id="exp_old")
    assert found["reference_id"] == "exp_old"
    assert found["baseline_id"] == "exp_old"
    assert found["dataset_id"] == "dst_1"
    assert [r["item_id"] for r in found["items"]] == [
        "dsi_1",
        "dsi_2",
        "dsi_3",
    ]  # reference's order
    by_id = {r["item_id"]: r for r in found["items"]}
    assert by_id["dsi_2"]["regressed"] == ["exp_new"]
    assert by_id["dsi_2"]["expected"] == "4"
    assert by_id["dsi_2"]["results"]["exp_old"]["output"] == "4"
    assert by_id["dsi_2"]["results"]["exp_new"]["output"] == "five"
    assert by_id["dsi_2"]["results"]["exp_new"]["passed"] is False
    assert by_id["dsi_1"]["regressed"] == []
    assert by_id["dsi_3"]["regressed"] == [] and by_id["dsi_3"]["improved"] == ["exp_new"]
    assert by_id["dsi_3"]["input"] is None  # a dataset item not given: no input to show
    runs = {e["id"]: e["summary"] for e in found["experiments"]}
    assert [e["id"] for e in found["experiments"]] == ["exp_new", "exp_old"]  # as asked
    assert runs["exp_old"]["pass_rate"] == runs["exp_new"]["pass_rate"] == 0.6667
    assert (runs["exp_new"]["regressed"], runs["exp_new"]["improved"]) == (1, 1)
    assert (runs["exp_old"]["regressed"], runs["exp_old"]["improved"]) == (0, 0)
    assert runs["exp_new"]["latency_p50"] == 60.0


def test_without_a_baseline_among_them_the_first_run_is_the_reference() -> None:
    experiments = [
        {"id": "exp_a", "dataset_id": "dst_1"},
        {"id": "exp_b", "dataset_id": "dst_1"},
        {"id": "exp_c", "dataset_id": "dst_1"},
    ]
    items = {
        "exp_a": [item("dsi_1", "done", result("exact", True))],
        "exp_b": [item("dsi_1", "failed")],
        "exp_c": [item("dsi_1", "done", result("exact", True))],
    }
    found = compare(experiments, items, {}, baseline_id="exp_elsewhere")
    assert found["reference_id"] == "exp_a"
    assert found["items"][0]["regressed"] == ["exp_b"]
    assert set(found["items"][0]["results"]) == {"exp_a", "exp_b", "exp_c"}
