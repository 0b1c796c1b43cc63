"""W2S methods: each one's behaviour, the ground-truth rules, and every method through the pipeline.

Unit tests check each method on hand-built inputs; the pipeline test runs every registered method on tiny
config-built models (probe mode, seconds) and checks what the stages wrote.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest
import torch

from tests.helpers.tiny import write_tiny_model, write_toy_dataset
from w2slab.api import run
from w2slab.config import ExperimentConfig, RuntimeConfig, TrainConfig
from w2slab.errors import ConfigError
from w2slab.methods import METHODS, LeakageError, Method, RelabelContext, SoftLabels, make_method, register_method
from w2slab.pipeline.graph import build_experiment
from w2slab.pipeline.store import StageStore


def context(n: int, features: np.ndarray | None = None) -> RelabelContext:
    return RelabelContext(texts=[f"text {i}" for i in range(n)], seed=0, num_classes=2, features=features)


# --- label methods ------------------------------------------------------------------------------


def test_conf_filter_drops_exactly_the_least_confident_rows():
    probs = np.array([[0.9, 0.1], [0.55, 0.45], [0.3, 0.7], [0.5, 0.5], [0.2, 0.8], [0.6, 0.4],
                      [0.95, 0.05], [0.35, 0.65], [0.51, 0.49], [0.1, 0.9]], dtype=np.float32)
    out = make_method({"name": "conf_filter", "drop": 0.3}).transform(SoftLabels.of(probs), context(10))
    # confidences 0.9 .55 .7 .5 .8 .6 .95 .65 .51 .9: the three lowest are rows 3 (.5), 8 (.51), 1 (.55)
    assert np.flatnonzero(out.weights == 0).tolist() == [1, 3, 8]
    assert np.array_equal(out.probs, probs) and out.weights[[0, 2, 4, 5, 6, 7, 9]].tolist() == [1.0] * 7
    # per class: 20% of each weak-predicted class (5 each): the least confident of class 0 (row 3, .5 -> argmax 0)
    # and of class 1 (row 7, .65)
    per_class = make_method({"name": "conf_filter", "drop": 0.2, "per_class": True}).transform(
        SoftLabels.of(probs), context(10))
    assert np.flatnonzero(per_class.weights == 0).tolist() == [3, 7]


def test_knn_relabels_by_the_neighbours_and_filters_the_contradicted_rows():
    # two tight clusters in feature space; row 2 sits in cluster A but its weak label says B
    features = np.array([[1, 0.0], [1, 0.1], [1, 0.05], [1, -0.1], [0, 1.0], [0.1, 1], [-0.1, 1], [0.05, 1]])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.7, 0.3], [0.2, 0.8], [0.1, 0.9], [0.3, 0.7],
                      [0.2, 0.8]], dtype=np.float32)
    relabel = make_method({"name": "knn", "k": 3}).transform(SoftLabels.of(probs), context(8, features))
    # row 2's three nearest others are rows 0, 1, 3: mean p(class 0) = (0.9 + 0.8 + 0.7) / 3 = 0.8
    assert relabel.probs[2].tolist() == pytest.approx([0.8, 0.2])
    assert (relabel.probs.argmax(-1) == np.array([0, 0, 0, 0, 1, 1, 1, 1])).all()
    filtered = make_method({"name": "knn", "k": 3, "mode": "filter", "drop": 0.125}).transform(
        SoftLabels.of(probs), context(8, features))
    assert np.flatnonzero(filtered.weights == 0).tolist() == [2]  # 1 of 8 rows: the contradicted one


def test_selection_holds_out_enough_rows_to_choose():
    select = make_method("select")
    assert select.metric == "accuracy"  # the metric results report
    assert [select.holdout_size(n) for n in (80, 1000, 5000)] == [40, 200, 500]  # >= 200, <= half, else 10%


def test_knn_neighbours_grow_with_the_data():
    knn = make_method("knn")
    assert [knn.neighbours(n) for n in (100, 1000, 10_000)] == [10, 32, 100]
    assert make_method({"name": "knn", "k": 7}).neighbours(10_000) == 7


def test_logreg_chooses_its_regularisation_by_cross_validation():
    """The signal spread thinly over 100 features, 200 rows: a nearly unregularised probe (C = 1e4) fits the noise,
    the cross-validated one (the default) shrinks, and recovers more of the truth behind the weak labels."""
    rng = np.random.default_rng(0)
    truth = np.arange(200) % 2
    features = rng.normal(size=(200, 100)) + 0.2 * (2 * truth - 1)[:, None]
    weak = np.eye(2, dtype=np.float32)[np.where(rng.random(200) < 0.1, 1 - truth, truth)]
    loose = make_method({"name": "logreg", "c": 1e4}).transform(SoftLabels.of(weak), context(200, features))
    chosen = make_method("logreg").transform(SoftLabels.of(weak), context(200, features))
    accuracy = {name: float((labels.probs.argmax(1) == truth).mean()) for name, labels in
                (("loose", loose), ("chosen", chosen))}
    assert accuracy["chosen"] > 0.85 and accuracy["chosen"] > accuracy["loose"] + 0.05, accuracy


def test_logreg_relabels_out_of_fold():
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(-2, 0.3, (20, 3)), rng.normal(2, 0.3, (20, 3))])
    hard = np.array([0] * 20 + [1] * 20)
    hard[[3, 25]] = 1 - hard[[3, 25]]  # two weak errors, one per cluster
    probs = np.eye(2, dtype=np.float32)[hard]
    out = make_method({"name": "logreg", "folds": 4}).transform(SoftLabels.of(probs), context(40, features))
    assert out.probs.argmax(-1)[[3, 25]].tolist() == [0, 1]  # both errors undone by the other folds' probe
    assert np.allclose(out.probs.sum(-1), 1.0)


def test_label_methods_that_read_features_refuse_to_run_without_them():
    with pytest.raises(ConfigError, match="strong_features"):
        make_method("knn").transform(SoftLabels.of(np.eye(2, dtype=np.float32)[[0, 1, 0]]), context(3))


# --- synthetic supervisors ------------------------------------------------------------------------


def test_synthetic_flip_flips_exactly_the_requested_share():
    labels = {"transfer": np.array([0, 1] * 50), "test": np.array([1, 0, 0] * 20)}
    texts = {name: [f"t{i}" for i in range(len(y))] for name, y in labels.items()}
    out = make_method({"name": "synthetic_flip", "rate": 0.3}).supervise(texts, labels, 2, seed=0)
    assert (out["transfer"].argmax(-1) != labels["transfer"]).sum() == 30
    assert (out["test"].argmax(-1) != labels["test"]).sum() == 18
    again = make_method({"name": "synthetic_flip", "rate": 0.3}).supervise(texts, labels, 2, seed=0)
    assert np.array_equal(again["transfer"], out["transfer"])  # the seed fixes which rows
    other = make_method({"name": "synthetic_flip", "rate": 0.3}).supervise(texts, labels, 2, seed=1)
    assert not np.array_equal(other["transfer"], out["transfer"])


def test_synthetic_class_flip_and_cue_put_errors_where_asked():
    labels = {"transfer": np.array([0] * 40 + [1] * 60)}
    texts = {"transfer": ["not good" if i % 4 == 0 else "good" + " long" * (i % 7) for i in range(100)]}
    out = make_method({"name": "synthetic_class_flip", "rates": [0.0, 0.5]}).supervise(texts, labels, 2, seed=0)
    wrong = out["transfer"].argmax(-1) != labels["transfer"]
    assert wrong[:40].sum() == 0 and wrong[40:].sum() == 30
    cue = make_method({"name": "synthetic_cue", "cue": "keyword", "keyword": "not", "rate": 1.0})
    wrong = cue.supervise(texts, labels, 2, seed=0)["transfer"].argmax(-1) != labels["transfer"]
    assert np.array_equal(np.flatnonzero(wrong), np.arange(0, 100, 4))  # exactly the texts with the keyword
    soft = make_method({"name": "synthetic_flip", "rate": 0.0, "confidence": 0.8}).supervise(texts, labels, 2, 0)
    assert soft["transfer"][0].tolist() == pytest.approx([0.8, 0.2])


# --- checkpoint selection ---------------------------------------------------------------------


def test_keep_best_restores_the_checkpoint_with_the_best_weak_label_score():
    from w2slab.train.batching import Collator
    from w2slab.train.selection import KeepBest, selection_score
    from w2slab.train.trainer import Trainer

    rng = np.random.default_rng(0)
    features = rng.normal(size=(64, 4)).astype(np.float32)
    weak = (features[:, 0] > 0).astype(int)
    examples = [{"features": f, "target": np.eye(2, dtype=np.float32)[1 - y], "index": i}  # trained on flipped
                for i, (f, y) in enumerate(zip(features, weak, strict=True))]
    held = [{"features": f, "index": i} for i, f in enumerate(features[:32])]
    targets = np.eye(2, dtype=np.float32)[weak[:32]]
    head = torch.nn.Linear(4, 2)
    torch.nn.init.zeros_(head.weight)
    with torch.no_grad():
        head.weight[1, 0] = 1.0  # starts agreeing with the held-out weak labels; training on flips unlearns it

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = head

        def forward(self, features):
            return self.head(features)

    model = Head()
    keep = KeepBest(held, targets, every=2, metric="auroc")
    cfg = TrainConfig(mode="probe", epochs=4, batch_size=16, lr=0.5, precision="fp32", warmup_frac=0.0)
    from w2slab.losses import make_loss

    trainer = Trainer(model, examples, Collator(None), make_loss("xent"), cfg, cfg.lr, seed=0, callbacks=[keep])
    result = trainer.train()
    rows = [r for r in result.state.evaluations if r["split"] == "validation"]
    assert len(rows) == 8  # every 2 of 16 steps
    best = max(rows, key=lambda r: r["score"])
    assert keep.best_step == next(r["step"] for r in rows if r["score"] == best["score"])
    assert rows[-1]["score"] < best["score"]  # the last checkpoint is worse: selection matters here
    with torch.no_grad():
        logits = model(torch.from_numpy(features[:32])).numpy()
    assert selection_score(logits, targets, "auroc") == pytest.approx(best["score"])
    assert result.state.log[-1]["event"] == "selected"


def test_keep_best_with_patience_stops_early():
    from w2slab.train.selection import KeepBest
    from w2slab.train.trainer import TrainerState

    keep = KeepBest([], np.zeros((0, 2)), every=1, patience=2)
    scores = iter([0.9, 0.8, 0.7, 0.95])
    keep.score = lambda trainer: next(scores)
    state = TrainerState(total_steps=10)
    fake = SimpleNamespace(accelerator=SimpleNamespace(unwrap_model=lambda m: m), model=torch.nn.Linear(1, 1))
    for step in range(1, 4):
        state.step = step
        keep.on_step_end(fake, state, {})
    assert state.should_stop and keep.best_step == 1


# --- no ground truth on the student's side -------------------------------------------------------


def test_a_student_side_method_reading_ground_truth_is_refused_unless_it_is_an_oracle():
    @register_method("peek_test_only")
    @dataclass(frozen=True)
    class Peek(Method):
        """Reads ground truth without saying it is an oracle."""

        reads: ClassVar[frozenset[str]] = frozenset({"weak_labels", "ground_truth"})

    try:
        with pytest.raises(LeakageError, match="declare it an oracle"):
            ExperimentConfig(methods=("none", "peek_test_only"))
        assert make_method("oracle_select").oracle  # the named oracle passes
        ExperimentConfig(methods=("oracle_select",))
    finally:
        METHODS.unregister("peek_test_only")


def test_oracle_truth_refuses_a_method_that_is_not_an_oracle(tmp_path):
    from w2slab.pipeline.compute import oracle_truth

    (tmp_path / "splits.json").write_text(json.dumps({"weak_train": [], "transfer": [{"id": "a", "text": "x",
                                                                                       "label": 1}], "test": []}))
    with pytest.raises(LeakageError):
        oracle_truth(tmp_path, "transfer", np.array([0]), make_method("select"))
    assert oracle_truth(tmp_path, "transfer", np.array([0]), make_method("oracle_select")).tolist() == [1]


# --- every method through the pipeline ---------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_methods")
    return SimpleNamespace(weak=str(write_tiny_model(root / "weak", layers=1, hidden=16)),
                           mid=str(write_tiny_model(root / "mid", layers=1, hidden=24, seed=2)),
                           strong=str(write_tiny_model(root / "strong", layers=2, hidden=32, seed=1)),
                           data=str(write_toy_dataset(root / "toy.jsonl", n=400)))


# the last three: matched baselines (subset: select[every=2]'s; truth_swap: trust's and selective's, oracle_select's)
ALL_METHODS = ["none", {"name": "conf_filter", "drop": 0.25}, {"name": "knn", "k": 5},
               {"name": "logreg", "mode": "filter"}, {"name": "select", "every": 2}, "oracle_select",
               {"name": "synthetic_flip", "rate": 0.25}, "synthetic_class_flip", "synthetic_cue",
               {"name": "ensemble", "seeds": 2}, None, {"name": "s2s", "rounds": 2}, {"name": "ensemw2s", "rounds": 2},
               {"name": "icm", "restarts": 1, "iterations": 3}, {"name": "trust", "labelled": 20},
               {"name": "graph_smooth", "k": 5}, {"name": "selective", "labelled": 20}, "subset",
               {"name": "truth_swap", "labelled": 20}, {"name": "truth_swap", "labelled": 200, "holdout": 0.1}]


@pytest.fixture(scope="module")
def methods_run(tiny, tmp_path_factory):
    methods = [m if m is not None else {"name": "bootstrap", "via": tiny.mid} for m in ALL_METHODS]
    probe = TrainConfig(mode="probe", epochs=3, batch_size=16, lr=1e-2)
    cfg = ExperimentConfig(dataset=tiny.data, weak=tiny.weak, strong=tiny.strong, losses=["xent"], methods=methods,
                           n_train=160, n_test=48, max_ctx=16, weak_train=probe,
                           strong_train=TrainConfig(mode="probe", epochs=3, batch_size=16, lr=1e-2, trace_every=5))
    root = tmp_path_factory.mktemp("method_runs")
    return run(cfg, RuntimeConfig(run_root=str(root), echo=lambda *a: None)), root, cfg


def test_every_method_runs_through_the_pipeline_and_its_result_says_what_it_used(methods_run):
    result, root, cfg = methods_run
    registered = {name for name in METHODS.names()}
    used = {make_method(m).name for m in cfg.methods}
    assert used == registered  # this test covers every built-in method
    results = result.summary.results
    assert set(results) == {make_method(m).student_label("xent") for m in cfg.methods}
    for label, r in results.items():
        assert r.diagnostics["decomposition"] and sum(r.diagnostics["decomposition"].values()) == pytest.approx(1.0)
        assert set(r.diagnostics["calibration"]) == {"weak", "ceiling", "student"}
        assert r.correct("student").shape == (r.test_size,)
        assert r.oracle == label.endswith("(oracle)")
    plain = results["xent"]
    assert plain.ground_truth_labels == {"weak": 80, "ceiling": 80}  # n_train 160: 80 weak-train, 80 transfer
    oracle = results["xent+oracle_select(oracle)"]
    # at least 200 rows held out, at most half the transfer set: 40 of 80
    assert oracle.ground_truth_labels == {"weak": 80, "ceiling": 80, "student": 40}
    assert results["xent+select[every=2]"].ground_truth_labels == plain.ground_truth_labels
    selection = results["xent+select[every=2]"].selection
    assert selection and selection[0]["step"] == 2 and all(row["split"] == "validation" for row in selection)
    flip = results["xent+synthetic_flip[rate=0.25]"]
    # no weak model trained for it; it labels transfer and validation from truth (its test labels are made by
    # the evaluate stage, the one reader of the test labels)
    assert flip.ground_truth_labels == {"supervisor": 80 + flip.validation["size"], "ceiling": 80}
    assert flip.weak_accuracy == pytest.approx(0.75, abs=0.01)  # its test labels: exactly 25% (12 of 48) flipped
    ensemble = results["xent+ensemble[seeds=2]"]
    # two weak models, the experiment's and a bagged member, both on the 80 weak-train rows: read once (the
    # members' sum, ~80 + 63% of 80, counted the same labels twice)
    assert ensemble.ground_truth_labels == {"weak": 80, "ceiling": 80}
    # the trace: 80 rows / batch 16 x 3 epochs = 15 steps, every 5th; the last is the final model
    assert [row["step"] for row in plain.trace] == [5, 10, 15]
    assert plain.trace[-1]["accuracy"] == pytest.approx(plain.student_accuracy)
    final_pgr = plain.trace[-1]["pgr"]  # null in JSON where PGR is undefined (the tiny ceiling may not beat weak)
    assert (final_pgr is None) == math.isnan(plain.pgr) and (final_pgr is None or final_pgr == pytest.approx(plain.pgr))
    assert plain.trace[-1]["agreement_transfer"] == pytest.approx(plain.agreement_with_weak_transfer)


def test_ensemble_labels_are_the_mean_of_its_members(methods_run):
    _, root, _ = methods_run
    store = StageStore(root)
    (ensemble,) = [row for row in store.status() if row["kind"] == "ensemble"]
    folder = store.final_dir("ensemble", ensemble["id"])
    members = json.loads((folder / "stage.json").read_text())["inputs"]
    weak_labels = [store.final_dir("weak_label", members[f"member_{i}"]) for i in range(2)]

    def probs(path):
        with np.load(path) as data:
            return data["probs"]

    mean = (probs(weak_labels[0] / "transfer.npz") + probs(weak_labels[1] / "transfer.npz")) / 2
    assert np.allclose(probs(folder / "transfer.npz"), mean, atol=1e-6)


def test_filtered_students_train_on_the_kept_rows_only(methods_run):
    _, root, cfg = methods_run
    store = StageStore(root)
    graph = build_experiment(cfg)
    student = graph.students["xent+conf_filter[drop=0.25]"]
    log = [json.loads(line) for line in (store.final_dir("student", student.id) / "log.jsonl").read_text().splitlines()]
    per_epoch = sum(row["examples"] for row in log if "examples" in row) / cfg.strong_train.epochs
    assert per_epoch == 60  # 80 transfer rows, the 20 least confident dropped


def test_student_side_stages_never_hold_ground_truth(methods_run):
    _, root, cfg = methods_run
    store = StageStore(root)
    for row in store.status():
        if row["kind"] in ("student", "relabel", "ensemble", "weak_label"):
            for path in store.final_dir(row["kind"], row["id"]).glob("*.npz"):
                with np.load(path) as data:
                    assert "labels" not in data.files, path


def test_methods_in_a_sweep_file_and_on_the_command_line(tmp_path):
    from w2slab.cli import build_config, make_parser
    from w2slab.pipeline.sweep import parse_sweep

    sweep = parse_sweep({"datasets": ["sst2"], "weak": ["minilm-l3"], "strong": ["minilm-l6"], "losses": ["xent"],
                         "methods": ["none", {"name": "conf_filter", "drop": 0.3}]})
    assert [m.label for m in sweep.configs[0].methods] == ["none", "conf_filter[drop=0.3]"]
    args = make_parser().parse_args(["run", "--method", "none,knn", "--method-param", "knn.k=7"])
    assert [m.label for m in build_config(args).methods] == ["none", "knn[k=7]"]
    old = ExperimentConfig().to_dict()
    del old["methods"]  # a config.json written before methods existed
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert [m.label for m in build_config(make_parser().parse_args(["run", "--config", str(tmp_path / "old.json")])
                                          ).methods] == ["none"]
    with pytest.raises(ConfigError, match="unknown method"):
        build_config(make_parser().parse_args(["run", "--method", "nope"]))
    with pytest.raises(ConfigError, match="drop"):
        build_config(make_parser().parse_args(["run", "--method", "conf_filter", "--method-param",
                                               "conf_filter.drop=1.5"]))
    with pytest.raises(ConfigError, match="one rate per class"):  # refused when the graph is built, before work
        build_experiment(ExperimentConfig(methods=({"name": "synthetic_class_flip", "rates": [0.1]},)))


# --- the report's method views ----------------------------------------------------------------


def test_paired_differences_are_per_example_and_pooled_over_seeds():
    from w2slab.stats import paired_difference

    a, b = np.array([1, 1, 0, 1, 0, 1, 1, 1]), np.array([1, 0, 0, 1, 0, 0, 1, 1])
    one = paired_difference([a], [b])
    assert one.value == pytest.approx(0.25) and one.ci95[0] < 0.25 < one.ci95[1]  # two flips one way, none back
    same = paired_difference([a], [a])
    assert same.value == 0.0 and same.ci95 == (0.0, 0.0) and same.p == 1.0  # identical: no difference, no spread
    flipped = np.array([1, 1, 0, 1, 0, 1, 1, 0])
    two = paired_difference([a, a], [b, flipped])  # the seeds share the test set: crossed
    assert two.design == "crossed" and two.value == pytest.approx((2 / 8 + 1 / 8) / 2)


def test_report_pairs_each_student_with_xent_and_marks_the_oracle(methods_run, tmp_path):
    from w2slab.report import write_report
    from w2slab.report.methods import paired_rows
    from w2slab.report.records import load_records

    _, root, cfg = methods_run
    paths = write_report(root, tmp_path)
    names = {p.name for p in paths["methods"]}
    assert {"paired.csv", "paired.md", "diagnostics.md", "gain_vs_misfit.png"} <= names
    assert any(n.startswith("training_") for n in names)
    assert any(n.startswith("forest_") for n in names) and any(n.startswith("decomposition_") for n in names)
    records = load_records(root)
    rows = {r["student"]: r for r in paired_rows(records)}
    assert set(rows) == {r.student for r in records} - {"xent"}
    by_label = {r.student: r for r in records}

    def correct(label):
        return by_label[label].correct("student")

    expected = float((correct("xent+conf_filter[drop=0.25]").astype(float) - correct("xent")).mean())
    assert rows["xent+conf_filter[drop=0.25]"]["diff_mean"] == pytest.approx(expected)
    assert rows["xent+oracle_select(oracle)"]["oracle"] and not rows["xent+select[every=2]"]["oracle"]
    summary = (tmp_path / "summary.md").read_text()
    oracle_line = next(line for line in summary.splitlines() if "oracle_select" in line)
    assert "ORACLE" in oracle_line


def test_samme_gives_the_rows_an_expert_got_wrong_half_the_weight_and_no_vote_at_chance():
    """AdaBoost's defining step (K=2): after reweighting, the rows the last expert got wrong hold exactly half the
    weight, so the next expert cannot repeat its mistakes and look good; an expert at chance gets vote 0."""
    import math

    import numpy as np

    from w2slab.methods.boosting import boost_weights, samme_alpha

    rng = np.random.default_rng(0)
    weights = rng.random(200)
    weights /= weights.sum()
    wrong = (rng.random(200) < 0.2).astype(float)
    error = float((weights * wrong).sum())
    new = boost_weights(weights, wrong, samme_alpha(error, 2))
    assert new.sum() == pytest.approx(1.0)
    assert (new * wrong).sum() == pytest.approx(0.5)
    assert samme_alpha(0.5, 2) == pytest.approx(0.0)
    assert samme_alpha(0.75, 4) == pytest.approx(0.0)  # K classes: chance is 1 - 1/K
    assert samme_alpha(0.1, 2) == pytest.approx(math.log(9))


def test_ensemw2s_boosts_weak_experts_and_supervises_with_their_vote(tmp_path):
    """On the planted Gaussian task (linear experts of the weak view, seconds to train): each round records its
    weighted error and vote, the weak-train labels are counted, and the boosted vote is the weak side of PGR."""
    import json

    import numpy as np

    from w2slab.cli import main
    from w2slab.data.vectors import GAUSSIAN_W2S

    root = tmp_path / "runs"
    assert main(["run", "--dataset", "gaussian_w2s", "--weak", GAUSSIAN_W2S.weak_model, "--strong",
                 GAUSSIAN_W2S.strong_model, "--n-train", "2000", "--n-test", "1000", "--losses", "xent", "--methods",
                 "ensemw2s", "--method-param", "ensemw2s.rounds=3", "--run-root", str(root), "--name", "boost"]) == 0
    (boost,) = [folder for folder in (root / "stages" / "boost").iterdir() if folder.is_dir()]
    rounds = json.loads((boost / "rounds.json").read_text())
    # linear experts of a view whose best rule is linear: the first has error .26, the second, on rows reweighted
    # so that the first one's errors hold half the weight, is near chance and barely votes, the third stops
    assert 0 < rounds[0]["weighted_error"] < 0.35 and rounds[0]["alpha"] > 0.5
    assert rounds[1]["weighted_error"] > rounds[0]["weighted_error"]  # the reweighted rows are the hard ones
    assert all(r.get("alpha", 0.0) < rounds[0]["alpha"] for r in rounds[1:])
    records = json.loads((boost / "ground_truth.json").read_text())
    assert [(r["role"], r["kind"], r["labels"], len(r["rows"]["weak_train"])) for r in records.values()] == [
        ("weak", "boost", 1000, 1000)]
    metrics = json.loads((root / "boost" / "metrics.json").read_text())
    assert set(metrics["students"]) == {"xent+ensemw2s"}
    labels = [json.loads(line)["label"] for line in (root / "boost" / "predictions" / "test.jsonl").open()]
    with np.load(boost / "test.npz") as saved:  # the boosted vote is the weak accuracy PGR starts from
        assert metrics["weak"]["accuracy"] == pytest.approx(float(np.mean(saved["probs"].argmax(-1) == labels)))


def test_icm_finds_the_labels_the_features_predict_best_and_takes_only_the_class_names_from_the_weak_labels():
    """Two clusters along one direction of 20-d features, weak labels wrong on 35% of rows at random: the most
    mutually predictable balanced labelling is the clusters (right on > 95%); weak labels that are mostly
    inverted invert the names, not the partition."""
    import numpy as np

    from w2slab.methods import RelabelContext, SoftLabels, make_method

    rng = np.random.default_rng(0)
    truth = np.arange(400) % 2
    features = rng.standard_normal((400, 20))
    features[:, 3] += np.where(truth == 1, 2.5, -2.5)
    weak = np.where(rng.random(400) < 0.35, 1 - truth, truth)
    icm = make_method({"name": "icm", "restarts": 2})
    context = RelabelContext(texts=[""] * 400, seed=0, num_classes=2, features=features)
    found = icm.transform(SoftLabels.of(np.eye(2)[weak]), context).probs.argmax(-1)
    assert (found == truth).mean() > 0.95
    assert np.bincount(found).tolist() == np.bincount(weak).tolist()  # the weak labels' class balance
    inverted = icm.transform(SoftLabels.of(np.eye(2)[1 - weak]), context).probs.argmax(-1)
    assert (inverted == 1 - truth).mean() > 0.95


def test_multi_teacher_losses_learn_from_an_ensembles_members_and_raven_downweights_a_useless_one(tmp_path):
    """Teachers of the planted task: the weak view (coords 4-5), its informative coordinate alone (4) and its
    uninformative one (5, at chance). Each multi-teacher loss trains a student on the three; RAVEN's learned
    weights put the least on the teacher at chance."""
    import json

    from w2slab.api import run
    from w2slab.config import ExperimentConfig, RuntimeConfig
    from w2slab.data.vectors import GAUSSIAN_W2S
    from w2slab.errors import ConfigError

    ensemble = {"name": "ensemble", "seeds": 1, "models": ["coords:4-4", "coords:5-5"]}
    cfg = ExperimentConfig(dataset="gaussian_w2s", weak=GAUSSIAN_W2S.weak_model, strong=GAUSSIAN_W2S.strong_model,
                           losses=["xent", {"name": "raven", "lr_weights": 0.05}, "edl", "csl"], methods=[ensemble],
                           n_train=4000, n_test=2000)
    result = run(cfg, RuntimeConfig(run_root=str(tmp_path / "runs"), echo=lambda *a: None))
    students = result.summary.results
    assert {label.split("+")[0].split("[")[0] for label in students} == {"xent", "raven", "edl", "csl"}
    for label, student in students.items():  # every one learns the task from its teachers
        # edl fits each teacher's argmax (RAVEN's evidential loss): the teacher at chance pulls with full one-hot
        # weight, where its soft labels (the old, soft-target edl) were near uniform and pulled little; csl assigns by
        # KL(student || teacher) (the reference's E-step), which the near-uniform labels of the teacher at chance
        # minimise wherever the student is unsure, so it follows that teacher there (cross-entropy assignment did not)
        floor = {"edl": 0.6, "csl": 0.55}.get(label.split("+")[0].split("[")[0], 0.8)
        assert student.student_accuracy > floor, (label, student.student_accuracy)
    students_folder = tmp_path / "runs" / "stages" / "student"
    (report,) = [json.loads(p.read_text()) for p in students_folder.glob("*/loss_report.json")]
    weights = report["teacher_weights"]
    assert len(weights) == 3 and min(weights) == weights[2], weights  # member order: weak, coords:4-4, coords:5-5
    with pytest.raises(ConfigError, match="several teachers"):
        run(ExperimentConfig(dataset="gaussian_w2s", weak=GAUSSIAN_W2S.weak_model, strong=GAUSSIAN_W2S.strong_model,
                             losses=["raven"], n_train=400, n_test=200),
            RuntimeConfig(run_root=str(tmp_path / "other"), echo=lambda *a: None))


def test_trust_scores_learned_from_a_hundred_labels_drop_mostly_wrong_teacher_labels():
    """Teacher labels wrong on 25% of rows at random, features with the classes as two clusters: the labels that
    disagree with their neighbourhood and with an out-of-fold probe are the wrong ones, and a trust function fit
    on 100 labelled rows keeps the right ones."""
    import numpy as np

    from w2slab.methods.trust import fit_trust, trust_signals

    rng = np.random.default_rng(0)
    truth = np.arange(1000) % 2
    features = rng.standard_normal((1000, 8))
    features[:, 0] += np.where(truth == 1, 2.0, -2.0)
    teacher = np.where(rng.random(1000) < 0.25, 1 - truth, truth)
    probs = np.eye(2)[teacher] * 0.7 + 0.15
    correct = np.full(1000, -1)
    labelled = rng.choice(1000, 100, replace=False)
    correct[labelled] = (teacher[labelled] == truth[labelled]).astype(int)
    trust = fit_trust(trust_signals(probs, features, seed=0, neighbours=32), correct)
    kept = trust >= 0.5
    assert (teacher == truth).mean() < 0.8
    assert (teacher[kept] == truth[kept]).mean() > 0.95 and kept.mean() > 0.6
    only_right = np.where(np.arange(1000) < 10, 1, -1)  # a labelled set without a wrong label: its rate
    assert np.all(fit_trust(np.zeros((1000, 4)), only_right) == 1.0)


def test_trust_runs_as_an_oracle_its_labels_counted_once_over_rounds(tmp_path):
    import json

    from w2slab.api import run
    from w2slab.config import ExperimentConfig, RuntimeConfig
    from w2slab.data.vectors import GAUSSIAN_W2S

    cfg = ExperimentConfig(dataset="gaussian_w2s", weak=GAUSSIAN_W2S.weak_model, strong=GAUSSIAN_W2S.strong_model,
                           losses=["xent"], methods=[{"name": "trust", "labelled": 80, "rounds": 2}],
                           n_train=2000, n_test=1000)
    result = run(cfg, RuntimeConfig(run_root=str(tmp_path / "runs"), echo=lambda *a: None))
    (label, student), = result.summary.results.items()
    assert label.endswith("(oracle)") and student.oracle
    assert student.ground_truth_labels == {"weak": 1000, "ceiling": 1000, "student": 80}
    reports = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "stages" / "trust").glob("*/trust.json")]
    assert len(reports) == 2 and all(r["labelled"] == 80 and r["kept"] < 1000 for r in reports)


def test_graph_smoothing_outvotes_isolated_weak_errors_in_a_cluster():
    import numpy as np

    from w2slab.methods import RelabelContext, SoftLabels, make_method

    rng = np.random.default_rng(0)
    truth = np.arange(600) % 2
    features = rng.standard_normal((600, 8))
    features[:, 0] += np.where(truth == 1, 3.0, -3.0)
    weak = np.where(rng.random(600) < 0.2, 1 - truth, truth)
    context = RelabelContext(texts=[""] * 600, seed=0, num_classes=2, features=features)
    smoothed = make_method("graph_smooth").transform(SoftLabels.of(np.eye(2)[weak] * 0.8 + 0.1), context).probs
    assert np.allclose(smoothed.sum(-1), 1.0, atol=1e-5)
    assert (weak == truth).mean() < 0.85 and (smoothed.argmax(-1) == truth).mean() > 0.97


def test_the_selector_keeps_the_student_where_the_labelled_rows_say_it_knows_the_answer():
    """The student is right where it is confident and the weak model where the student is not: fit on 100
    labelled rows (P(IK): is the student's label right), the selector takes the student's label exactly where it is
    confident."""
    import numpy as np

    from w2slab.methods.selective import choose_student

    rng = np.random.default_rng(0)
    n = 2000
    student_confidence = rng.uniform(0.5, 1.0, n)
    signals = np.stack([student_confidence, rng.uniform(0.5, 1.0, n), rng.random(n), rng.random(n)], axis=1)
    student_right = np.full(n, -1)
    labelled = rng.choice(n, 100, replace=False)
    student_right[labelled] = (student_confidence[labelled] > 0.75).astype(int)
    chosen = choose_student(signals, student_right) > 0.5
    assert (chosen == (student_confidence > 0.75)).mean() > 0.9
    few = np.full(n, -1)
    few[:3] = 1  # too few labelled rows of an outcome to fit: the more confident side
    assert np.array_equal(choose_student(signals, few), (signals[:, 0] > signals[:, 1]).astype(float))


def test_selective_runs_as_an_oracle_with_two_students(tmp_path):
    import json

    from w2slab.api import run
    from w2slab.config import ExperimentConfig, RuntimeConfig
    from w2slab.data.vectors import GAUSSIAN_W2S

    cfg = ExperimentConfig(dataset="gaussian_w2s", weak=GAUSSIAN_W2S.weak_model, strong=GAUSSIAN_W2S.strong_model,
                           losses=["xent"], methods=[{"name": "selective", "labelled": 80}], n_train=2000, n_test=1000)
    result = run(cfg, RuntimeConfig(run_root=str(tmp_path / "runs"), echo=lambda *a: None))
    (label, student), = result.summary.results.items()
    assert label.endswith("(oracle)") and student.ground_truth_labels == {"weak": 1000, "ceiling": 1000,
                                                                          "student": 80}
    (report,) = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "stages" / "select_labels")
                 .glob("*/selection.json")]
    assert report["labelled"] == 80 and 0 <= report["student_taken"] <= report["disagree"]
    assert len(list((tmp_path / "runs" / "stages" / "student").glob("*/DONE"))) == 2  # two students


def test_w2s_methods_lists_every_method_of_the_field_with_its_source(capsys):
    from w2slab.cli import main

    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    field = ("csl", "raven", "ensemw2s", "edl", "gce", "sce", "elr", "coteach", "selective", "trust", "icm")
    for name in field:
        (row,) = [i for i, line in enumerate(lines) if line.split()[:1] == [name]]
        described = lines[row] + (lines[row + 1] if row + 1 < len(lines) else "")
        assert "arXiv" in described or "et al." in described or "raven" in described, (name, described)
