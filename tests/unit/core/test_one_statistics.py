"""w2s report, w2s compare and the methods benchmark give one interval for one comparison (w2slab.stats)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from w2slab import stats
from w2slab.analysis import compare
from w2slab.diagnostics import pack_correct
from w2slab.errors import W2SError
from w2slab.report.methods import paired_rows
from w2slab.report.records import load_records

N = 600
SEEDS = range(5)


def record(loss: str, seed: int, correct: dict[str, np.ndarray], n_test: int = N, revision: str = "abc") -> dict:
    config = {"dataset": "toy", "weak": "w", "strong": "s", "seed": seed, "n_test": n_test, "data_seed": 0,
              "losses": [{"name": loss}], "methods": [{"name": "none"}],
              "strong_train": {"mode": "probe"}, "weak_train": {"mode": "probe"}}
    accuracy = {role: float(values.mean()) for role, values in correct.items()}
    return {"experiment_id": f"{loss}-{seed}-{revision}", "dataset": "toy", "weak": "w", "strong": "s", "loss": loss,
            "seed": seed, "weak_accuracy": accuracy["weak"], "ceiling_accuracy": accuracy["ceiling"],
            "student_accuracy": accuracy["student"], "pgr": 0.5, "gap_ci95": [0.05, 0.15], "config": config,
            "resolved": {"revisions": {"dataset:toy": revision}}, "test_size": len(correct["weak"]),
            "test_correct": {role: pack_correct(values) for role, values in correct.items()}}


def outcomes(rng: np.random.Generator, difficulty: np.ndarray, rate: dict[str, float]) -> dict[str, np.ndarray]:
    return {role: difficulty + rng.normal(0, 0.05, len(difficulty)) < p + rng.normal(0, 0.01)
            for role, p in rate.items()}


@pytest.fixture(scope="module")
def five_seeds(tmp_path_factory) -> tuple[Path, Path, Path, dict]:
    """A run root of xent and logconf over five seeds on one test set, and two roots holding one loss each."""
    rng = np.random.default_rng(0)
    difficulty = rng.uniform(0, 1, N)
    root, only_xent, only_logconf = (tmp_path_factory.mktemp(name) for name in ("both", "xent", "logconf"))
    students = {}
    for seed in SEEDS:
        base = outcomes(rng, difficulty, {"weak": 0.6, "ceiling": 0.75})
        for loss, rate in (("xent", 0.68), ("logconf", 0.70)):
            correct = {**base, "student": difficulty + rng.normal(0, 0.05, N) < rate}
            students.setdefault(loss, []).append(correct["student"])
            for target in (root, only_xent if loss == "xent" else only_logconf):
                folder = target / "experiments" / f"{loss}-{seed}"
                folder.mkdir(parents=True)
                (folder / "result.json").write_text(json.dumps(record(loss, seed, correct)))
    return root, only_xent, only_logconf, students


def test_report_compare_and_benchmark_give_the_same_interval(five_seeds):
    root, only_xent, only_logconf, students = five_seeds
    expected = stats.paired_difference(students["logconf"], students["xent"])
    assert expected.design == "crossed" and expected.seeds == 5
    (reported,) = paired_rows(load_records(root))
    assert (reported["student"], reported["baseline"]) == ("logconf", "xent")
    assert (reported["diff_mean"], reported["diff_lo"], reported["diff_hi"], reported["p"]) == pytest.approx(
        (expected.value, *expected.ci95, expected.p))
    (compared,) = compare(only_xent, only_logconf)
    assert (compared["diff_mean"], compared["diff_lo"], compared["diff_hi"]) == pytest.approx(
        (expected.value, *expected.ci95))
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
    import methods

    records = load_records(root)
    benchmark = {r["student"]: r for r in methods.student_rows(records)}
    assert (benchmark["logconf"]["diff_mean"], benchmark["logconf"]["diff_lo"],
            benchmark["logconf"]["diff_hi"]) == pytest.approx((expected.value, *expected.ci95))


def test_compare_refuses_results_on_other_test_sets(tmp_path):
    rng = np.random.default_rng(1)
    for name, revision in (("a", "rev1"), ("b", "rev2")):
        folder = tmp_path / name / "experiments" / "x"
        folder.mkdir(parents=True)
        correct = {role: rng.random(N) < 0.7 for role in ("weak", "student", "ceiling")}
        (folder / "result.json").write_text(json.dumps(record("xent", 0, correct, revision=revision)))
    with pytest.raises(W2SError, match="other test sets .*revision"):
        compare(tmp_path / "a", tmp_path / "b")
    short = tmp_path / "c" / "experiments" / "x"
    short.mkdir(parents=True)
    correct = {role: rng.random(58) < 0.7 for role in ("weak", "student", "ceiling")}
    (short / "result.json").write_text(json.dumps(record("xent", 0, correct, n_test=58, revision="rev1")))
    with pytest.raises(W2SError, match="other test sets"):  # was a broadcasting ValueError
        compare(tmp_path / "a", tmp_path / "c")


def test_a_pipe_in_a_name_never_shifts_a_markdown_column(five_seeds):
    import re

    from w2slab.report.methods import diagnostics_markdown, paired_markdown
    from w2slab.report.tables import aggregate, markdown_table

    root = five_seeds[0]
    records = load_records(root)
    for r in records:
        r.student = r.student.replace("logconf", "logconf[keyword=a|b]")
        r.diagnostics = {"misfit": 0.1, "gain": 0.1, "gain_ge_misfit": True,
                            "decomposition": {"corrected": 0.1, "imitated": 0.1, "changed": 0.0, "new_errors": 0.1},
                            "calibration": {role: {"ece": 0.1, "brier": 0.1} for role in ("weak", "ceiling",
                                                                                         "student")}}
    from w2slab.report.methods import diagnostic_rows

    for text in (markdown_table(aggregate(records)), paired_markdown(paired_rows(records)),
                 diagnostics_markdown(diagnostic_rows(records))):
        table = [line for line in text.splitlines() if line.startswith("|")]
        columns = {len(re.findall(r"(?<!\\)\|", line)) for line in table}
        assert len(columns) == 1, table
        assert any("a\\|b" in line for line in table)


def test_results_are_pooled_from_their_own_outcomes_by_stats(five_seeds):
    """The report, the bench and the benchmarks pool results through stats: each result's per-example correctness,
    its test set (crossed seeds here) and its own gap rule."""
    import dataclasses

    xent = sorted((r for r in load_records(five_seeds[0]) if r.student == "xent"), key=lambda r: r.seed)
    arrays = [{role: r.correct(role) for role in stats.ROLES} for r in xent]
    pooled = stats.pooled_pgr(xent)
    expected = stats.pgr_estimate(arrays, shared_test_set=True)
    assert (pooled.pgr, pooled.ci95, pooled.gap) == (expected.pgr, expected.ci95, expected.gap)
    assert pooled.seeds_with_gap == sum(r.has_gap() for r in xent) == 5 and pooled.shown == (pooled.gap.ci95[0] > 0)
    assert stats.role_estimate(xent, "weak") == stats.mean_estimate([a["weak"] for a in arrays])
    older = [dataclasses.replace(xent[0], test_correct={}), *xent[1:]]  # one seed without per-example outcomes
    assert not older[0].has_outcomes() and stats.pooled_pgr(older) is None
    assert stats.shares_test_set(xent)
    assert not stats.shares_test_set([xent[0], dataclasses.replace(xent[1], resolved={"revisions": {}})])
