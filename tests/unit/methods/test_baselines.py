"""Matched baselines: ``subset`` trains on select's rows without selecting, ``truth_swap`` learns as many ground-truth
labels as an oracle reads, and the report pairs each method with its own baseline.

The pipeline test runs select, the oracles and their baselines (each built by ``matched_baseline()``) on tiny
config-built models (probe mode, seconds), recording which rows were held out and whose ground truth was read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest

from tests.helpers.tiny import write_tiny_model, write_toy_dataset
from w2slab.api import run
from w2slab.config import ExperimentConfig, RuntimeConfig, TrainConfig
from w2slab.errors import ConfigError
from w2slab.methods import LabelMethod, LeakageError, RelabelContext, SoftLabels, check_method, make_method
from w2slab.methods.baselines import TruthSwap
from w2slab.pipeline import compute
from w2slab.pipeline.artifacts import StageFolder
from w2slab.pipeline.graph import build_experiment
from w2slab.pipeline.store import StageStore
from w2slab.report.methods import matched_baseline, paired_rows
from w2slab.report.records import load_records

SELECT = {"name": "select", "every": 2}
ORACLES = ("oracle_select", {"name": "trust", "labelled": 20}, {"name": "selective", "labelled": 20})


def baseline_of(spec: str | dict) -> dict:
    return make_method(spec).matched_baseline().to_value()


# --- the methods ---------------------------------------------------------------------------------------


def test_each_method_names_its_matched_baseline():
    assert make_method("none").matched_baseline() is None
    assert make_method("conf_filter").matched_baseline() is None
    subset = make_method({"name": "select", "holdout": 0.2, "min_holdout": 50, "every": 3}).matched_baseline()
    assert subset.to_value() == {**make_method("subset").to_value(), "holdout": 0.2, "min_holdout": 50}
    assert not subset.selects and subset.reads == {"weak_labels"} and not subset.oracle
    assert subset.source.startswith("the matched baseline of select")
    assert make_method("oracle_select").matched_baseline() == TruthSwap(labelled=200, holdout=0.1)
    assert make_method({"name": "trust", "labelled": 30}).matched_baseline() == TruthSwap(labelled=30)
    assert make_method("selective").matched_baseline() == TruthSwap(labelled=100)
    swap = make_method("truth_swap")
    assert swap.oracle and swap.student_label("xent") == "xent+truth_swap(oracle)"
    assert swap.source.startswith("the matched baseline of")
    with pytest.raises(ConfigError, match="selects no checkpoint"):
        make_method({"name": "subset", "patience": 2})


@pytest.mark.parametrize("n", [80, 400, 2000, 5000])
def test_truth_swap_counts_what_its_oracle_reads_at_every_transfer_size(n):
    oracle_select = make_method("oracle_select")
    assert oracle_select.matched_baseline().truth_count(n) == oracle_select.holdout_size(n)
    trust = make_method({"name": "trust", "labelled": 100})
    assert trust.matched_baseline().truth_count(n) == min(100, n - 1)  # labelled_sample's count


def test_truth_swap_replaces_exactly_the_given_rows_with_their_ground_truth():
    probs = np.tile(np.array([[0.7, 0.3]], dtype=np.float32), (10, 1))
    rows, truth = np.array([1, 4, 6]), np.array([1, 0, 1])
    context = RelabelContext(texts=[""] * 10, seed=0, num_classes=2, truth_rows=rows, truth=truth)
    out = TruthSwap(labelled=3).transform(SoftLabels.of(probs), context)
    assert out.probs[rows].tolist() == [[0, 1], [1, 0], [0, 1]]
    others = np.setdiff1d(np.arange(10), rows)
    assert np.array_equal(out.probs[others], probs[others]) and out.weights.tolist() == [1.0] * 10
    with pytest.raises(LeakageError, match="holds no ground truth"):  # a context of a non-oracle: none to read
        TruthSwap().transform(SoftLabels.of(probs), RelabelContext(texts=[""] * 10, seed=0, num_classes=2))


def test_an_oracle_label_method_declares_which_rows_ground_truth_it_reads(tmp_path):
    """The relabel stage asks the method (``truth_sample``), never its parameters: truth_swap draws oracle_select's
    held-out rows with ``holdout``, else a labelled sample; an oracle label method that does not say is refused."""
    assert TruthSwap(labelled=30).truth_sample(400) == ("labelled", 30)
    assert TruthSwap(labelled=200, holdout=0.1).truth_sample(5000) == ("holdout", 500)

    @dataclass(frozen=True)
    class Silent(LabelMethod):
        reads: ClassVar[frozenset[str]] = frozenset({"weak_labels", "ground_truth"})
        oracle: ClassVar[bool] = True

    with pytest.raises(ConfigError, match="say which transfer rows"):
        compute.oracle_label_sample(tmp_path, 50, 0, Silent())


@dataclass(frozen=True)
class NotAnOracle(TruthSwap):
    """truth_swap that does not declare itself an oracle (not registered)."""

    oracle: ClassVar[bool] = False


def test_truth_swap_is_refused_as_a_non_oracle_would_be(tmp_path):
    check_method(TruthSwap())  # the oracle passes
    with pytest.raises(LeakageError, match="declare it an oracle"):
        check_method(NotAnOracle())
    # at run time too: its rows are drawn through the leakage guard, which refuses before any split is read
    for method in (NotAnOracle(), NotAnOracle(holdout=0.1)):
        with pytest.raises(LeakageError, match="not an oracle"):
            compute.oracle_label_sample(tmp_path, 50, 0, method)


# --- through the pipeline ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def baselines_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_baselines")
    tiny = SimpleNamespace(weak=str(write_tiny_model(root / "weak", layers=1, hidden=16)),
                           strong=str(write_tiny_model(root / "strong", layers=2, hidden=32, seed=1)),
                           data=str(write_toy_dataset(root / "toy.jsonl", n=400)))
    baselines = [baseline_of(m) for m in (SELECT, *ORACLES)]  # trust's and selective's are one student
    methods = ["none", SELECT, *ORACLES, *(b for i, b in enumerate(baselines) if b not in baselines[:i])]
    probe = TrainConfig(mode="probe", epochs=3, batch_size=16, lr=1e-2)
    cfg = ExperimentConfig(dataset=tiny.data, weak=tiny.weak, strong=tiny.strong, losses=["xent"], methods=methods,
                           n_train=160, n_test=48, max_ctx=16, weak_train=probe, strong_train=probe)
    held, read = [], []
    holdout_rows, oracle_truth = compute.holdout_rows, compute.oracle_truth

    def recording_holdout(rows, size, seed):
        kept, out = holdout_rows(rows, size, seed)
        held.append(out)
        return kept, out

    def recording_truth(split_folder, name, rows, method):
        read.append((method.label, name, np.asarray(rows)))
        return oracle_truth(split_folder, name, rows, method)

    with pytest.MonkeyPatch.context() as patch:  # the stages run in this process: record what they drew
        patch.setattr(compute, "holdout_rows", recording_holdout)
        patch.setattr(compute, "oracle_truth", recording_truth)
        result = run(cfg, RuntimeConfig(run_root=str(root / "runs"), echo=lambda *a: None))
    return SimpleNamespace(result=result.summary.results, root=root / "runs", cfg=cfg, held=held, read=read)


def test_subset_trains_on_the_rows_select_trains_on_and_reads_no_ground_truth(baselines_run):
    results, store = baselines_run.result, StageStore(baselines_run.root)
    subset = results["xent+subset"]
    assert subset.ground_truth_labels == results["xent"].ground_truth_labels == {"weak": 80, "ceiling": 80}
    assert subset.selection == [] and results["xent+select[every=2]"].selection  # final checkpoint: no selection
    # every holdout (select, subset, oracle_select and its truth_swap) left out the same 40 of the 80 rows
    assert len(baselines_run.held) == 4
    first = baselines_run.held[0]
    assert all(np.array_equal(h, first) for h in baselines_run.held) and len(first) == 40
    graph = build_experiment(baselines_run.cfg)
    for label in ("xent+select[every=2]", "xent+subset"):
        log = store.final_dir("student", graph.students[label].id) / "log.jsonl"
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        assert sum(row["examples"] for row in rows if "examples" in row) / 3 == 40  # 80 rows, 40 held out


def test_each_oracle_reads_as_many_ground_truth_labels_as_its_baseline(baselines_run):
    results = baselines_run.result
    for oracle in ORACLES:
        method = make_method(oracle)
        mine = results[method.student_label("xent")].ground_truth_labels
        theirs = results[method.matched_baseline().student_label("xent")].ground_truth_labels
        assert mine == theirs and mine["student"] == (40 if method.name == "oracle_select" else 20), method.label


def test_truth_swap_reads_the_rows_its_oracle_reads(baselines_run):
    by_method: dict[str, list[np.ndarray]] = {}
    for label, split, rows in baselines_run.read:
        assert split == "transfer"
        by_method.setdefault(label, []).append(rows)
    first = {label: reads[0] for label, reads in by_method.items()}
    assert np.array_equal(first["oracle_select"], baselines_run.held[0])
    assert np.array_equal(first["truth_swap[labelled=200,holdout=0.1]"], first["oracle_select"])
    assert np.array_equal(first["truth_swap[labelled=20]"], first["trust[labelled=20]"])
    assert np.array_equal(first["truth_swap[labelled=20]"], first["selective[labelled=20]"])


def test_truth_swap_labels_are_the_weak_labels_with_n_rows_of_ground_truth(baselines_run):
    store = StageStore(baselines_run.root)
    graph = build_experiment(baselines_run.cfg)
    for spec, n in ((baseline_of(ORACLES[0]), 40), (baseline_of(ORACLES[1]), 20)):
        relabel = graph.students[make_method(spec).student_label("xent")].inputs["labels"]
        swapped = StageFolder(store.final_dir("relabel", relabel.id)).labels("transfer").probs
        weak = StageFolder(store.final_dir("weak_label", relabel.inputs["labels"].id)).labels("transfer").probs
        split = StageFolder(store.final_dir("split", relabel.inputs["split"].id))
        truth = compute.labels_of(split.splits(), "transfer")
        rows = next(read for label, _, read in baselines_run.read if label == make_method(spec).label)
        assert len(rows) == n
        assert np.allclose(swapped[rows], np.eye(2)[truth[rows]], atol=1e-6)  # stored with probabilities clipped
        others = np.setdiff1d(np.arange(len(weak)), rows)
        assert np.allclose(swapped[others], weak[others], atol=1e-6)


def test_the_report_pairs_each_method_with_its_matched_baseline(baselines_run):
    records = {r.student: r for r in load_records(baselines_run.root)}
    expected = {"xent+select[every=2]": "xent+subset",
                "xent+oracle_select(oracle)": "xent+truth_swap[labelled=200,holdout=0.1](oracle)",
                "xent+trust[labelled=20](oracle)": "xent+truth_swap[labelled=20](oracle)",
                "xent+selective[labelled=20](oracle)": "xent+truth_swap[labelled=20](oracle)",
                "xent+subset": "xent", "xent+truth_swap[labelled=20](oracle)": "xent", "xent": None}
    assert {label: matched_baseline(records[label]) for label in expected} == expected
    pairs = {(row["student"], row["baseline"]) for row in paired_rows(list(records.values()))}
    assert {(s, b) for s, b in expected.items() if b is not None} <= pairs
    older = replace(records["xent+select[every=2]"], config={"methods": [{"name": "gone"}]})
    assert matched_baseline(older) == "xent"  # the default rule: its config does not build
    raven = replace(records["xent+select[every=2]"], student="raven+select[every=2]", config=records["xent"].config)
    assert matched_baseline(raven) == "xent+select[every=2]"  # a loss: the baseline loss under the same method
