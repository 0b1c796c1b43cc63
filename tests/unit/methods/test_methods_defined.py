"""The field's methods as their papers define them (or as the adaptation their docstrings name): co-teaching's
independent twins, EnsemW2S's held-out boosting error, selective W2S's selector, trust functions' rounds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from w2slab.config import TrainConfig
from w2slab.losses import make_loss
from w2slab.models.loading import resolve_model
from w2slab.pipeline.role_model import CoTeachingTwins, EncodedSplit, RoleModel


def _probe_role_model(features: np.ndarray) -> RoleModel:
    """A probe-mode role model of ``coords:`` vectors with its features set (no backbone is run)."""
    model = RoleModel("strong", resolve_model(f"coords:0-{features.shape[1] - 1}"),
                      TrainConfig(mode="probe", epochs=1, batch_size=50, precision="fp32"), 16, "left")
    model.splits["transfer"] = EncodedSplit([{"index": i} for i in range(len(features))], 0)
    model.set_features("transfer", features.astype(np.float32))
    return model


# --- co-teaching ---------------------------------------------------------------------------------


def test_coteaching_twins_start_independently_and_predict_with_the_first_network():
    """Han et al. 2018 train two networks from different random initialisations: the twins' heads differ by far more
    than the old 0.01 nudge of a zero head; predictions are the first network's (``predict: mean`` averages)."""
    rng = np.random.default_rng(0)
    features = rng.standard_normal((200, 6)).astype(np.float32)
    targets = np.eye(2, dtype=np.float32)[(features[:, 0] > 0).astype(int)]
    role = _probe_role_model(features)
    loss = make_loss("coteach")
    first, second = role.new_model(), role.new_model()
    twins = role._twins(first, "transfer", targets, None, seed=3, predict=loss.predict)
    assert isinstance(twins, CoTeachingTwins)
    gap = (twins.first.head.weight - twins.second.head.weight).abs().max().item()
    assert gap > 0.1, gap  # independent inits (nn.Linear's default bound is 1/sqrt(6) = .41 here), not noise
    assert twins.first.head.weight.abs().max().item() > 0.05  # not a zero head
    again = role._twins(role.new_model(), "transfer", targets, None, seed=3, predict="first")
    assert torch.equal(again.second.head.weight, twins.second.head.weight)  # seeded: a rerun repeats it

    model, _ = role.fit("transfer", targets, loss, seed=0, desc="coteach")
    assert isinstance(model, CoTeachingTwins) and model.predict == "first"
    inputs = torch.from_numpy(features)
    with torch.no_grad():
        predicted = model(features=inputs)
        first_only = model.first(features=inputs)
        second_only = model.second(features=inputs)
    assert torch.equal(predicted, first_only)
    assert not torch.allclose(first_only.softmax(-1), second_only.softmax(-1), atol=1e-3)
    assert np.allclose(role.predict(model, "transfer"), first_only.numpy())
    model.predict = "mean"
    with torch.no_grad():
        mixed = model(features=inputs)
    assert torch.allclose(mixed.exp(), (first_only.softmax(-1) + second_only.softmax(-1)) / 2, atol=1e-5)
    with torch.enable_grad():  # training sees both networks' logits
        assert model(features=inputs).shape == (200, 4)
    with pytest.raises(ValueError, match="first or mean"):
        CoTeachingTwins(first, second, "both")


# --- EnsemW2S ------------------------------------------------------------------------------------


def _memorising_expert(truth: np.ndarray, num_classes: int, calls: list):
    """An expert that fits its training rows perfectly and guesses elsewhere (a fine-tuned model's extreme): its
    error on its own rows is 0, on held-out rows chance."""

    def train(fit_rows, weights, seed, desc):
        calls.append((fit_rows, weights))
        rng = np.random.default_rng(seed)
        guess = rng.integers(0, num_classes, len(truth))
        guess[fit_rows] = truth[fit_rows]
        probs = np.eye(num_classes)[guess] * 0.9 + 0.1 / num_classes
        return probs, {"transfer": probs[:10], "test": probs[:10]}, 0.0

    return train


def test_ensemw2s_measures_each_experts_error_on_rows_it_did_not_train_on():
    """Before, the error was measured on the expert's own training rows: a memorising expert had error 0 and labelled
    alone after one round. Out-of-fold, its error is chance, and boosting stops there."""
    from w2slab.methods.boosting import boost

    truth = np.arange(400) % 2
    calls: list = []
    experts, rounds = boost(truth, 2, rounds=3, folds=2, seed=0, train=_memorising_expert(truth, 2, calls),
                            echo=lambda line: None)
    assert rounds[0]["held_out"] == "out-of-fold"
    # near chance every round: small votes, never the infinite vote of an error-free expert that labels alone
    assert all(0.4 < r["weighted_error"] < 0.6 and r.get("alpha", 0.0) < 0.25 for r in rounds), rounds
    fit_rows = [rows for rows, _ in calls]
    assert len(fit_rows) == 2 * len(rounds) and not set(fit_rows[0]) & set(fit_rows[1])  # two folds, each on the other


def test_ensemw2s_passes_the_boosting_distribution_with_mean_one_over_the_training_rows():
    """Round 2's loss weights are round 1's SAMME reweighting (rows an expert got wrong hold half the weight), scaled
    to mean 1 over the rows each fold model trains on, so the fixed-weight loss keeps their proportions."""
    from w2slab.methods.boosting import boost

    rng = np.random.default_rng(1)
    truth = np.arange(600) % 2
    wrong_rows = rng.random(600) < 0.2  # every expert errs on the same 20% of rows (wherever they are held out)
    calls: list = []

    def train(fit_rows, weights, seed, desc):
        calls.append((fit_rows, weights))
        predicted = np.where(wrong_rows, 1 - truth, truth)
        probs = np.eye(2)[predicted] * 0.8 + 0.1
        return probs, {"transfer": probs, "test": probs}, 0.0

    experts, rounds = boost(truth, 2, rounds=2, folds=3, seed=0, train=train, echo=lambda line: None)
    assert rounds[0]["weighted_error"] == pytest.approx(wrong_rows.mean())
    assert rounds[1]["weighted_error"] == pytest.approx(0.5)  # the reweighted rows: chance, boosting stops
    for _, weights in calls:
        assert weights.mean() == pytest.approx(1.0)
    fit_rows, weights = calls[3]  # round 2, fold 1
    on_wrong = wrong_rows[fit_rows]
    assert weights[on_wrong].sum() / weights.sum() == pytest.approx(0.5, abs=0.05)
    assert len(experts) == 1 and experts[0][0] == pytest.approx(np.log(0.8 / 0.2), rel=0.05)


# --- selective W2S -------------------------------------------------------------------------------


def _clusters(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = np.arange(n) % 2
    features = rng.standard_normal((n, 8))
    features[:, 0] += np.where(truth == 1, 2.0, -2.0)
    return rng, truth, features


def test_the_selective_fallback_can_choose_the_student():
    """With too few labelled rows of an outcome to fit the selector (here the student is right on every labelled
    row), the more confident side wins. Before, the weak side's confidence was the hard smoothed label's, always
    1.0, so the student never won; now it is the soft propagated score, and a confident student wins."""
    from w2slab.methods import SoftLabels
    from w2slab.methods.selective import GraphSmooth, select_student_labels, selector_signals

    rng, truth, features = _clusters()
    weak = np.eye(2)[np.where(rng.random(600) < 0.3, 1 - truth, truth)] * 0.6 + 0.2  # unsure, 30% wrong
    student = np.eye(2)[truth] * 0.96 + 0.02  # confident and right
    labelled = np.arange(0, 600, 6)
    hard = GraphSmooth().transform(SoftLabels.of(weak), type("C", (), {"strong_features": lambda self: features})())
    assert np.all(hard.probs.max(-1) == 1.0)  # what the old selector read as the weak side's confidence
    take, knows = select_student_labels(student, weak, features, labelled, truth[labelled], alpha=0.9)
    disagree = student.argmax(-1) != hard.probs.argmax(-1)
    assert disagree.sum() > 0 and take.sum() == disagree.sum()  # the student wins every disagreement
    assert np.array_equal(take, disagree & (knows > 0.5))
    old_signals = selector_signals(student, hard.probs, np.eye(600), None)
    assert not np.any(old_signals[:, 0] > old_signals[:, 1])  # the old fallback: never the student


def test_the_selective_selector_is_a_pik_classifier_on_the_strong_features():
    """P(IK) from the strong model's features: the student knows the answer in one region of feature space (its
    label right there) and is wrong elsewhere, with the same confidence everywhere (so no confidence signal can tell
    the two apart); the selector, fit on 100 labelled rows, takes the student's label where it knows."""
    from w2slab.methods.selective import select_student_labels

    rng = np.random.default_rng(3)
    n = 1200
    truth = rng.integers(0, 2, n)
    features = rng.standard_normal((n, 6))
    features[:, 0] += np.where(truth == 1, 3.0, -3.0)  # the classes: what smoothing recovers
    features[:, 1] *= 4.0  # the student's region: where this coordinate is positive (a main direction)
    knows_region = features[:, 1] > 0
    student_label = np.where(knows_region, truth, 1 - truth)
    student = np.eye(2)[student_label] * 0.8 + 0.1
    weak = np.eye(2)[np.where(rng.random(n) < 0.2, 1 - truth, truth)] * 0.7 + 0.15
    labelled = np.sort(rng.choice(n, 100, replace=False))
    take, knows = select_student_labels(student, weak, features, labelled, truth[labelled], alpha=0.9)
    assert knows[knows_region].mean() > 0.7 > 0.3 > knows[~knows_region].mean()
    taken_right = (student_label[take] == truth[take]).mean()
    assert take.sum() > 0 and taken_right > 0.8, (take.sum(), taken_right)


# --- trust functions -----------------------------------------------------------------------------


def test_trust_fits_on_the_labelled_rows_and_injects_truth_only_when_asked():
    """The ground truth of the labelled rows fits the trust function only, unless ``inject_truth``; with it, the rows
    whose truth the student learns never fit trust (so a later round never scores a student on answers it was
    taught)."""
    from w2slab.methods.trust import trust_rows

    labelled = np.arange(0, 200, 5)
    fit_rows, taught = trust_rows(labelled, False, seed=0)
    assert np.array_equal(fit_rows, labelled) and len(taught) == 0
    fit_rows, taught = trust_rows(labelled, True, seed=0)
    assert len(fit_rows) == len(taught) == 20 and not set(fit_rows) & set(taught)
    assert set(fit_rows) | set(taught) == set(labelled)
    assert np.array_equal(trust_rows(labelled, True, seed=0)[0], fit_rows)  # the same halves in every round


def test_trust_over_rounds_keeps_the_filter_alone_by_default_and_never_fits_on_taught_rows(tmp_path):
    """On the planted task, two rounds: by default the trust stages write the teacher's own labels on the labelled
    rows (before, they wrote the ground truth: two effects mixed); with ``inject_truth`` every round fits trust on
    the half of the labelled rows no student was taught (before, round 2 fit on rows its teacher had learned)."""
    import json

    from w2slab.api import run
    from w2slab.config import ExperimentConfig, RuntimeConfig
    from w2slab.data.vectors import GAUSSIAN_W2S
    from w2slab.methods import make_method
    from w2slab.pipeline.artifacts import StageFolder
    from w2slab.pipeline.compute import labelled_sample

    plain = {"name": "trust", "labelled": 80, "rounds": 2}
    injected = {**plain, "inject_truth": True}
    hidden = {"name": "trust", "labelled": 80, "signals": "hidden"}  # the MLP on the weak model's features runs too
    cfg = ExperimentConfig(dataset="gaussian_w2s", weak=GAUSSIAN_W2S.weak_model, strong=GAUSSIAN_W2S.strong_model,
                           losses=["xent"], methods=[plain, injected, hidden], n_train=2000, n_test=1000)
    result = run(cfg, RuntimeConfig(run_root=str(tmp_path / "runs"), echo=lambda *a: None))
    assert all(s.ground_truth_labels["student"] == 80 for s in result.summary.results.values())
    stages = tmp_path / "runs" / "stages"
    (split,) = [p for p in (stages / "split").iterdir() if p.is_dir()]
    folders = [p for p in (stages / "trust").iterdir() if (p / "trust.json").exists()]
    reports = {p: json.loads((p / "trust.json").read_text()) for p in folders}
    assert len(reports) == 5 and sorted(r["signals"] for r in reports.values()).count("hidden") == 1
    for folder, report in reports.items():
        written = StageFolder(folder).labels("transfer")
        labelled, truth = labelled_sample(split, len(written.probs), 80, cfg.seed, make_method(injected))
        if report["taught_truth"] == 0:  # the default: labelled rows are rows like any other
            assert report["fit_trust"] == 80
            assert not np.array_equal(written.probs[labelled], np.eye(2, dtype=np.float32)[truth])
        else:
            assert report["fit_trust"] == 40 and report["taught_truth"] == 40 and report["labelled"] == 80
    assert sorted(r["taught_truth"] for r in reports.values()) == [0, 0, 0, 40, 40]


def test_trust_from_the_teachers_hidden_states_is_an_mlp_that_finds_where_the_teacher_errs():
    """``signals: hidden``: the teacher is wrong in one region of its hidden space, with the same confidence
    everywhere; an MLP on its hidden states, fit on 100 labelled rows, drops mostly wrong labels."""
    from w2slab.methods.trust import fit_trust, hidden_signals

    rng = np.random.default_rng(0)
    n = 1000
    truth = rng.integers(0, 2, n)
    hidden = rng.standard_normal((n, 40))
    hidden[:, 0] *= 5.0
    wrong = hidden[:, 0] > 3.0  # ~27% of rows: the teacher errs there
    teacher = np.where(wrong, 1 - truth, truth)
    probs = np.eye(2)[teacher] * 0.7 + 0.15
    correct = np.full(n, -1)
    labelled = rng.choice(n, 100, replace=False)
    correct[labelled] = (~wrong[labelled]).astype(int)
    trust = fit_trust(hidden_signals(probs, hidden), correct, "mlp", seed=0)
    kept = trust >= 0.5
    assert (teacher == truth).mean() < 0.75
    assert (teacher[kept] == truth[kept]).mean() > 0.93 and kept.mean() > 0.6
    from w2slab.errors import ConfigError
    from w2slab.methods import make_method

    with pytest.raises(ConfigError, match="signals"):
        make_method({"name": "trust", "signals": "internals"})
