"""The numbers of one result on synthetic predictions: PGR and gap intervals, suspect flags, config ids."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from rich.console import Console

from w2slab import stats
from w2slab.report.console import summary_table
from w2slab.results import SUSPECT_ONE_CLASS_FRACTION, ExperimentResult, ExperimentSummary

N = 400
CONFIG = {"dataset": "toy", "weak": "minilm-l6", "strong": "mpnet-base", "n_train": 2000, "n_test": N, "seed": 0,
          "losses": [{"name": "xent"}], "weak_train": {"epochs": 2}}


def correct(fraction: float, n: int = N, seed: int = 0) -> np.ndarray:
    """A boolean correctness array with exactly ``fraction`` of it true, in a random order."""
    values = np.zeros(n, dtype=bool)
    values[: round(fraction * n)] = True
    return np.random.default_rng(seed).permutation(values)


def one_seed(weak: np.ndarray, student: np.ndarray, ceiling: np.ndarray) -> stats.Pgr:
    return stats.pgr_estimate([{"weak": weak, "student": student, "ceiling": ceiling}])


def test_a_clear_gap_gives_a_bounded_pgr_interval_and_a_gap_interval():
    weak, student, ceiling = correct(0.60, seed=1), correct(0.75, seed=2), correct(0.90, seed=3)
    interval = one_seed(weak, student, ceiling)
    assert not interval.unbounded and interval.design == "examples"
    low, high = interval.ci95
    assert low < 0.5 < high and high - low < 0.6
    gap_low, gap_high = interval.gap.ci95
    assert 0.2 < gap_low < 0.3 < gap_high < 0.4


def test_a_gap_the_test_set_cannot_establish_makes_the_pgr_interval_unbounded():
    weak, student, ceiling = correct(0.70, seed=1), correct(0.72, seed=2), correct(0.71, seed=3)
    interval = one_seed(weak, student, ceiling)
    assert interval.unbounded and all(math.isnan(v) for v in interval.ci95)
    gap_low, gap_high = interval.gap.ci95
    assert gap_low < 0 < gap_high  # the reason: the gap's own interval reaches zero


def test_fieller_bounds_pgr_exactly_where_the_gap_is_significant():
    weak = correct(0.70, n=2000, seed=1)
    for ceiling in (correct(0.73, n=2000, seed=3), correct(0.7225, n=2000, seed=3), correct(0.715, n=2000, seed=3)):
        interval = one_seed(weak, correct(0.71, n=2000, seed=2), ceiling)
        assert interval.unbounded == (interval.gap.ci95[0] <= 0)


def probs(predicted: np.ndarray) -> np.ndarray:
    """Confident probabilities for the given predicted classes."""
    out = np.full((len(predicted), 2), 0.1)
    out[np.arange(len(predicted)), predicted] = 0.9
    return out


def compute(student_pred: np.ndarray, *, ceiling_fraction: float = 0.9, stability: dict | None = None,
            labels: np.ndarray | None = None) -> ExperimentResult:
    labels = np.arange(N) % 2 if labels is None else labels

    def predictions(fraction: float, seed: int) -> np.ndarray:
        return np.where(correct(fraction, seed=seed), labels, 1 - labels)

    weak = probs(predictions(0.6, 1))
    return ExperimentResult.compute(
        labels={"test": labels, "transfer": labels}, weak={"test": weak, "transfer": weak},
        ceiling=probs(predictions(ceiling_fraction, 3)), student={"test": probs(student_pred), "transfer": weak},
        config=CONFIG, label="xent", experiment_id="e", resolved={}, seed=0, warn=lambda *_: None, stability=stability)


def test_a_one_class_student_makes_the_result_suspect():
    labels = np.arange(N) % 2
    result = compute(np.ones(N, dtype=int))
    assert result.suspect == ["student predicts class 1 on 100% of test (labels: 50% class 1)"]
    assert result.suspect_roles() == {"student"}
    almost = np.ones(N, dtype=int)
    almost[: int(N * (1 - SUSPECT_ONE_CLASS_FRACTION)) + 1] = 0  # just under the threshold
    assert compute(almost).suspect == []
    assert compute(np.where(correct(0.75, seed=2), labels, 1 - labels)).suspect == []


def test_a_student_at_chance_under_a_teacher_that_is_not_makes_the_result_suspect():
    labels = np.arange(N) % 2

    def predictions(fraction: float, seed: int) -> np.ndarray:
        return np.where(correct(fraction, seed=seed), labels, 1 - labels)

    weak = probs(predictions(0.8, 1))  # AUROC 0.8
    result = ExperimentResult.compute(
        labels={"test": labels, "transfer": labels}, weak={"test": weak, "transfer": weak},
        ceiling=probs(predictions(0.9, 3)), student={"test": probs(predictions(0.5, 4)), "transfer": weak},
        config=CONFIG, label="logconf", experiment_id="e", resolved={}, seed=0, warn=lambda *_: None)
    assert len(result.suspect) == 1 and result.suspect[0].startswith("student ranks test examples at chance")
    assert "(AUROC 0.800)" in result.suspect[0]
    healthy = ExperimentResult.compute(
        labels={"test": labels, "transfer": labels}, weak={"test": weak, "transfer": weak},
        ceiling=probs(predictions(0.9, 3)), student={"test": probs(predictions(0.7, 4)), "transfer": weak},
        config=CONFIG, label="xent", experiment_id="e", resolved={}, seed=0, warn=lambda *_: None)
    assert healthy.suspect == []


def test_training_reasons_are_carried_by_role_and_survive_json():
    labels = np.arange(N) % 2
    stability = {"weak": {"suspect": []}, "ceiling": {"suspect": ["loss rose from 0.6931 (first 10 steps) to "
                                                                   "0.7100 (last 10)"]},
                 "student": {"suspect": ["gradient norm spiked to 120, 80x the median 1.5 (threshold 50x)"]}}
    result = compute(np.where(correct(0.75, seed=2), labels, 1 - labels), stability=stability)
    assert result.suspect == ["ceiling training: loss rose from 0.6931 (first 10 steps) to 0.7100 (last 10)",
                              "student training: gradient norm spiked to 120, 80x the median 1.5 (threshold 50x)"]
    assert result.suspect_roles() == {"ceiling", "student"}
    again = ExperimentResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again.suspect == result.suspect and again.gap_ci95 == pytest.approx(result.gap_ci95)
    assert "SUSPECT" in result.one_line()


def test_an_unbounded_interval_is_json_safe_and_shown_in_metrics_and_the_table():
    labels = np.arange(N) % 2
    result = compute(np.where(correct(0.62, seed=2), labels, 1 - labels), ceiling_fraction=0.61)
    assert result.pgr_ci_unbounded and all(math.isnan(v) for v in result.pgr_ci95)
    saved = json.loads(json.dumps(result.to_dict(), allow_nan=False))  # strict JSON: no NaN
    assert saved["pgr_ci95"] == [None, None] and saved["pgr_ci_unbounded"] is True
    assert saved["gap_ci95"][0] < 0 < saved["gap_ci95"][1]
    again = ExperimentResult.from_dict(saved)
    assert again.pgr_ci_unbounded and all(math.isnan(v) for v in again.pgr_ci95)

    summary = ExperimentSummary(config=CONFIG, results={"xent": result}, stability={}, notes=[], stages={},
                                resolved={})
    metrics = json.loads(json.dumps(summary.to_dict(), allow_nan=False))
    assert metrics["students"]["xent"]["pgr_ci95"] == [None, None]
    assert metrics["students"]["xent"]["pgr_ci_unbounded"] is True
    assert metrics["gap"]["accuracy"] == pytest.approx(0.01)
    assert metrics["gap"]["gap_ci95"] == pytest.approx(list(result.gap_ci95))
    assert metrics["suspect"] == [] and metrics["students"]["xent"]["suspect"] == []
    console = Console(width=140, record=True)
    console.print(summary_table(summary))
    text = console.export_text()
    # the gap's interval reaches 0: the student's row says "no gap" instead of a PGR, and the caption says why
    assert "no gap" in text and "gap (ceiling - weak)" in text and "SUSPECT" not in text
    assert "0.0" not in text.split("w2s student (xent)")[1].split("\n")[0].split("│")[-3]


def test_the_table_marks_suspect_rows_and_lists_the_reasons():
    result = compute(np.ones(N, dtype=int))
    assert not result.pgr_ci_unbounded
    summary = ExperimentSummary(config=CONFIG, results={"xent": result}, stability={}, notes=[], stages={},
                                resolved={})
    console = Console(width=160, record=True)
    console.print(summary_table(summary))
    text = console.export_text()
    student_line = next(line for line in text.splitlines() if "w2s student (xent)" in line)
    assert "SUSPECT" in student_line
    assert "SUSPECT" not in next(line for line in text.splitlines() if "weak (minilm-l6)" in line)
    assert "suspect: student predicts class 1 on 100% of test" in text
    assert summary.to_dict()["suspect"] == result.suspect


def test_config_id_ignores_the_seed_only():
    base = ExperimentResult("toy", "a", "b", "xent", 0, 0.6, 0.9, 0.7, 0.33, config=CONFIG)
    reseeded = ExperimentResult("toy", "a", "b", "xent", 1, 0.6, 0.9, 0.7, 0.33, config={**CONFIG, "seed": 1})
    changed = ExperimentResult("toy", "a", "b", "xent", 0, 0.6, 0.9, 0.7, 0.33, config={**CONFIG, "n_train": 4000})
    assert base.config_id() == reseeded.config_id() != changed.config_id()
    assert len(base.config_id()) == 10
    assert ExperimentResult("toy", "a", "b", "xent", 0, 0.6, 0.9, 0.7, 0.33).config_id() == "no-config"


def test_the_evaluate_stage_carries_every_trainings_reasons(tmp_path, monkeypatch):
    """Through the pipeline on tiny models: each training's stability reasons reach the result and metrics.json."""
    from tests.helpers.tiny import write_tiny_model, write_toy_dataset
    from w2slab.api import run
    from w2slab.config import ExperimentConfig, RuntimeConfig, TrainConfig
    from w2slab.train.trainer import StabilityReport

    monkeypatch.setattr(StabilityReport, "suspect_reasons", lambda self: [f"synthetic ({self.steps} steps)"])
    train = TrainConfig(mode="full", epochs=1, batch_size=16, lr=3e-3)
    cfg = ExperimentConfig(dataset=str(write_toy_dataset(tmp_path / "toy.jsonl", n=200)),
                           weak=str(write_tiny_model(tmp_path / "weak", layers=1, hidden=16)),
                           strong=str(write_tiny_model(tmp_path / "strong", layers=1, hidden=32, seed=1)),
                           losses=["xent"], n_train=64, n_test=32, max_ctx=16, weak_train=train, strong_train=train)
    result = run(cfg, RuntimeConfig(run_root=str(tmp_path / "runs"), echo=lambda *_: None))
    metrics = json.loads((result.folder / "metrics.json").read_text())
    reasons = metrics["students"]["xent"]["suspect"]
    assert [r for r in reasons if " training: " in r] == [f"{role} training: synthetic (2 steps)"
                                                        for role in ("weak", "ceiling", "student")]
    assert metrics["stability"]["weak"]["suspect"] == ["synthetic (2 steps)"]
    assert metrics["suspect"] == reasons


def test_a_model_that_never_leaves_the_middle_did_not_converge():
    """The failure the default run had: accuracy .8 with every probability in [.43, .57]."""
    from w2slab.results import suspect_reasons

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 1000)
    right = rng.random(1000) < 0.8
    p1 = np.where(labels == 1, 0.5, -0.5) * np.where(right, 1, -1) * rng.uniform(0.01, 0.14, 1000) + 0.5
    capped = np.stack([1 - p1, p1], axis=1)
    reasons = suspect_reasons({"ceiling": capped}, labels, {})
    assert any(r.startswith("ceiling did not converge: accuracy 0.79") for r in reasons), reasons
    confident = np.stack([1 - (p1 > 0.5) * 0.9 - 0.05, (p1 > 0.5) * 0.9 + 0.05], axis=1)  # same argmax, sure of it
    assert not [r for r in suspect_reasons({"ceiling": confident}, labels, {}) if "converge" in r]


def test_an_under_trained_model_is_flagged_by_its_training_loss():
    """A deliberately under-trained model (4 steps at lr 1e-6): its loss stays at ln 2 and the run says so."""
    from tests.helpers.tiny import tiny_bert, toy_collate, toy_examples
    from w2slab.config import TrainConfig
    from w2slab.losses import make_loss
    from w2slab.results import suspect_reasons
    from w2slab.train.trainer import StabilityReport, predict_logits, train_model

    examples = toy_examples(64)
    cfg = TrainConfig(epochs=1, batch_size=16, precision="fp32", warmup_frac=0.0)
    model = tiny_bert()
    result = train_model(model, examples, toy_collate(), make_loss("xent"), cfg, 1e-6, seed=0, head_lr=1e-6)
    probs = torch.softmax(torch.from_numpy(predict_logits(model, examples, toy_collate(), batch_size=64,
                                                          precision="fp32")), -1).numpy()
    labels = np.array([int(e["target"].argmax()) for e in examples])
    stability = {"ceiling": dataclasses.asdict(StabilityReport.of(result.state, "fp32"))}
    reasons = suspect_reasons({"ceiling": probs}, labels, stability)
    assert any("ceiling did not converge: its training loss ended at 0.69" in r for r in reasons), reasons


def test_a_pgr_over_seeds_covers_more_often_than_one_seeds_interval_by_simulation():
    """Known truth: seeds vary (each seed's accuracies move by N(0, .015) per role) and each sees 600 test
    examples of a shared test set. The pooled PGR's interval (w2slab.stats, crossed) covers the true PGR (1/3) at
    about 95%; one seed's interval over its test examples, which ignores seed variance, covers it far less often.
    (tests/test_stats.py checks the coverage bounds in both regimes.)"""
    true = {"weak": 0.75, "student": 0.80, "ceiling": 0.90}  # PGR = .05 / .15 = 1/3
    rng = np.random.default_rng(0)
    covered = single_covered = 0
    draws = 300
    for _ in range(draws):
        difficulty = rng.random(600)  # a shared test set: an example hard for one seed is hard for all
        runs = [{role: difficulty < np.clip(acc + rng.normal(0, 0.015), 0, 1) for role, acc in true.items()}
                for _seed in range(5)]
        pooled = stats.pgr_estimate(runs)
        covered += pooled.ci95[0] <= 1 / 3 <= pooled.ci95[1]
        one = stats.pgr_estimate(runs[:1])
        single_covered += one.ci95[0] <= 1 / 3 <= one.ci95[1]
    assert 0.92 <= covered / draws <= 0.98, covered / draws
    assert single_covered / draws < covered / draws


def test_pooled_pgr_keeps_every_seed_and_shows_only_under_the_gap_rule():
    rng = np.random.default_rng(1)
    gap_run = {"weak": rng.random(500) < 0.7, "student": rng.random(500) < 0.8, "ceiling": rng.random(500) < 0.9}
    flat = {"weak": rng.random(500) < 0.7, "student": rng.random(500) < 0.2, "ceiling": rng.random(500) < 0.7}
    pooled = stats.pgr_estimate([gap_run, flat], shared_test_set=False)
    assert (pooled.seeds_with_gap, pooled.seeds) == (1, 2)
    assert pooled.shown is False or pooled.gap.ci95[0] > 0  # half the seeds: shown only with a pooled gap
    none = stats.pgr_estimate([flat])
    assert not none.shown and (none.seeds_with_gap, none.seeds) == (0, 1)


def test_log_loss_gain_counts_generalization_not_the_confidence_a_model_cannot_back_up():
    """The issue's case: a student 6 points more accurate than its teacher but far less confident had a negative
    squared-loss gain. After temperature scaling (fitted on transfer) its log-loss gain is positive."""
    from w2slab.diagnostics import fit_temperature, misfit_gain, misfit_gain_kl, scale

    rng = np.random.default_rng(0)

    def model(accuracy: float, confidence: float, n: int, labels: np.ndarray) -> np.ndarray:
        right = rng.random(n) < accuracy
        predicted = np.where(right, labels, 1 - labels)
        p = np.where(predicted == 1, confidence, 1 - confidence) + rng.normal(0, 0.01, n)
        p = np.clip(p, 0.01, 0.99)
        return np.stack([1 - p, p], axis=1)

    labels = {name: rng.integers(0, 2, 3000) for name in ("transfer", "test")}
    weak = {name: model(0.80, 0.97, 3000, labels[name]) for name in labels}  # overconfident teacher
    student = {name: model(0.86, 0.56, 3000, labels[name]) for name in labels}  # a head that never left the middle
    assert misfit_gain(weak["test"], student["test"], labels["test"])["gain"] < 0
    kl = misfit_gain_kl(weak, student, labels)
    assert kl["gain_logloss"] > 0 and kl["temperature_weak"] > 1 > kl["temperature_student"]
    # the temperature recovers a known overconfidence: logits x 3 of calibrated ones -> T = 3
    logit = rng.normal(0, 2, 20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-logit))).astype(int)
    calibrated = np.stack([1 / (1 + np.exp(logit)), 1 / (1 + np.exp(-logit))], axis=1)
    assert fit_temperature(scale(np.log(calibrated), 1 / 3), y) == pytest.approx(3.0, rel=0.1)


def test_a_paired_difference_is_far_narrower_than_either_accuracy():
    """Two students on the same examples and seeds: their difference's interval is far narrower than either
    accuracy's, because the shared difficulty cancels before anything is estimated."""
    rng = np.random.default_rng(0)
    base = rng.random((5, 1000)) < 0.8
    better = base | (rng.random((5, 1000)) < 0.1)  # right wherever base is, and on ~10% of the rest
    diff = stats.paired_difference(list(better), list(base))
    assert diff.value == pytest.approx(better.mean() - base.mean())
    assert 0 < diff.ci95[0] < diff.value < diff.ci95[1]
    alone = stats.mean_estimate(list(better.astype(float)))
    assert diff.ci95[1] - diff.ci95[0] < (alone.ci95[1] - alone.ci95[0]) / 2


def test_the_ceilings_margin_over_chance_has_an_interval():
    """A ceiling at .52 on 400 test examples cannot be told from chance (.5); at .60 on 1,000 it can."""
    rng = np.random.default_rng(0)

    def correct(rate: float, n: int) -> np.ndarray:
        return rng.permutation(np.arange(n) < round(rate * n))

    near = stats.mean_estimate([correct(0.52, 400) - 0.5]).ci95
    assert near[0] <= 0 < near[1]
    clear = stats.mean_estimate([correct(0.60, 1000) - 0.5]).ci95
    assert 0 < clear[0] < 0.1 < clear[1] < 0.14


def _two_class(labels: np.ndarray, right: np.ndarray, sure: float) -> np.ndarray:
    """Probabilities ``sure`` on the predicted class, right where ``right``."""
    predicted = np.where(right, labels, 1 - labels)
    return np.where(predicted[:, None] == np.arange(2), sure, 1 - sure)


def test_convergence_is_judged_on_validation_not_on_test():
    """The verdict decides whether a run's PGR is shown, a choice the test set may not make: a ceiling unsure on
    test but sure on validation converged; the other way round it did not, and the reason names validation.
    Without validation predictions (older stages) the test set is judged, and the reason says so."""
    from w2slab.results import SplitPredictions, suspect_reasons

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 600)
    right = rng.random(600) < 0.8
    unsure, sure = _two_class(labels, right, 0.55), _two_class(labels, right, 0.9)

    def converge(test, val, validation=True):
        judged = SplitPredictions({"ceiling": val}, labels) if validation else None
        return [r for r in suspect_reasons({"ceiling": test}, labels, {}, validation=judged) if "converge" in r]

    assert converge(unsure, sure) == []
    (reason,) = converge(sure, unsure)
    assert reason.startswith("ceiling did not converge: accuracy 0.7") and "validation predictions" in reason
    (reason,) = converge(unsure, sure, validation=False)
    assert "test predictions" in reason
    missing = SplitPredictions({"weak": sure}, labels)  # the ceiling did not predict validation: test is judged
    assert [r for r in suspect_reasons({"ceiling": unsure}, labels, {}, validation=missing) if "converge" in r]


def test_a_student_of_labels_too_unsure_to_fit_confidently_is_not_judged_by_its_confidence():
    """The gate ``length: auto`` applies, applied by the results too: a student unsure on validation is flagged
    when its training labels were sure (p90 .9), not when they were themselves below the bar (p90 .55); where
    ``length: auto`` recorded whether it judged the kept attempt, that decides."""
    from w2slab.results import SplitPredictions, suspect_reasons

    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 600)
    right = rng.random(600) < 0.75
    student = _two_class(labels, right, 0.55)
    validation = SplitPredictions({"student": student}, labels)

    def flagged(teacher_sure: float, stability: dict | None = None) -> bool:
        taught = _two_class(labels, right, teacher_sure)
        return any("student did not converge" in r for r in suspect_reasons(
            {"student": student}, labels, {"student": stability or {}}, validation=validation,
            student_labels=taught))

    assert flagged(0.9) and not flagged(0.55)
    attempt = {"epochs": 40.0, "converged": True, "reasons": []}
    assert not flagged(0.9, {"length": {"attempts": [attempt | {"judged": False}], "kept": 0}})
    assert flagged(0.55, {"length": {"attempts": [attempt | {"judged": True}], "kept": 0}})


def test_a_result_judges_convergence_on_the_validation_predictions_it_is_given():
    """End to end through ExperimentResult.compute: the same test predictions, an unsure ceiling on validation
    makes the run SUSPECT and its ceiling unconverged (no W2S experiment); a sure one does not."""
    from w2slab.results import ExperimentResult, SplitPredictions, unconverged_ceiling

    rng = np.random.default_rng(3)
    labels = np.arange(800) % 2

    def probs(acc: float, sure: float) -> np.ndarray:
        return _two_class(labels, rng.permutation(np.arange(800) < round(acc * 800)), sure)

    weak, student = probs(0.7, 0.8), probs(0.8, 0.8)
    test_ceiling = probs(0.9, 0.9)

    def result(val_ceiling_sure: float) -> ExperimentResult:
        validation = SplitPredictions({"weak": weak, "ceiling": probs(0.9, val_ceiling_sure), "student": student},
                                      labels)
        return ExperimentResult.compute(
            labels={"transfer": labels, "test": labels}, weak={"transfer": weak, "test": weak},
            ceiling=test_ceiling, student={"transfer": student, "test": student},
            config={"dataset": "toy", "weak": "minilm-l3", "strong": "mpnet-base", "n_test": 800}, label="xent",
            experiment_id="v", resolved={}, seed=0, warn=lambda *_: None, validation=validation)

    assert unconverged_ceiling(result(0.55).suspect) and not result(0.55).has_gap()
    good = result(0.9)
    assert not good.suspect and good.has_gap()
    assert good.validation["ceiling_accuracy"] == pytest.approx(0.9) and good.validation["size"] == 800
