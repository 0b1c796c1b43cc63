"""The numbers of one result on synthetic predictions: PGR and gap intervals, suspect flags, config ids."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from rich.console import Console

from w2slab.metrics import PGR_UNBOUNDED_FRACTION, bootstrap_pgr_ci, bootstrap_pgr_interval
from w2slab.results import SUSPECT_ONE_CLASS_FRACTION, ExperimentResult, ExperimentSummary, summary_table

N = 400
CONFIG = {"dataset": "toy", "weak": "minilm-l6", "strong": "mpnet-base", "n_train": 2000, "n_test": N, "seed": 0,
          "losses": [{"name": "xent"}], "weak_train": {"epochs": 2}}


def correct(fraction: float, n: int = N, seed: int = 0) -> np.ndarray:
    """A boolean correctness array with exactly ``fraction`` of it true, in a random order."""
    values = np.zeros(n, dtype=bool)
    values[: round(fraction * n)] = True
    return np.random.default_rng(seed).permutation(values)


def test_a_clear_gap_gives_a_bounded_pgr_interval_and_a_gap_interval():
    weak, student, ceiling = correct(0.60, seed=1), correct(0.75, seed=2), correct(0.90, seed=3)
    interval = bootstrap_pgr_interval(weak, student, ceiling, seed=0)
    assert not interval.unbounded
    low, high = interval.pgr_ci95
    assert low < 0.5 < high and high - low < 0.6
    gap_low, gap_high = interval.gap_ci95
    assert 0.2 < gap_low < 0.3 < gap_high < 0.4
    assert bootstrap_pgr_ci(weak, student, ceiling, seed=0) == interval.pgr_ci95


def test_a_gap_the_test_set_cannot_establish_makes_the_pgr_interval_unbounded():
    weak, student, ceiling = correct(0.70, seed=1), correct(0.72, seed=2), correct(0.71, seed=3)
    interval = bootstrap_pgr_interval(weak, student, ceiling, seed=0)
    assert interval.unbounded and all(math.isnan(v) for v in interval.pgr_ci95)
    gap_low, gap_high = interval.gap_ci95
    assert gap_low < 0 < gap_high  # the reason: the gap's own interval reaches zero
    assert all(math.isnan(v) for v in bootstrap_pgr_ci(weak, student, ceiling, seed=0))


def test_the_unbounded_threshold_counts_resamples_where_the_ceiling_does_not_win():
    # a gap about 2.2 standard errors wide: the ceiling loses in ~1-2% of resamples (bounded), while a
    # gap of ~1.6 standard errors loses in ~5% of them (unbounded)
    weak = correct(0.70, n=2000, seed=1)
    wide, narrow = correct(0.73, n=2000, seed=3), correct(0.7225, n=2000, seed=3)
    for ceiling, unbounded in ((wide, False), (narrow, True)):
        draws = np.random.default_rng(0)
        losses = sum(ceiling[idx].mean() <= weak[idx].mean()
                     for idx in (draws.integers(0, 2000, 2000) for _ in range(1000)))
        assert (losses > PGR_UNBOUNDED_FRACTION * 1000) == unbounded
        assert bootstrap_pgr_interval(weak, correct(0.71, n=2000, seed=2), ceiling, seed=0).unbounded == unbounded


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
        config=CONFIG, loss="xent", experiment_id="e", resolved={}, seed=0, warn=lambda *_: None, stability=stability)


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
        config=CONFIG, loss="logconf", experiment_id="e", resolved={}, seed=0, warn=lambda *_: None)
    assert len(result.suspect) == 1 and result.suspect[0].startswith("student ranks test examples at chance")
    assert "(AUROC 0.800)" in result.suspect[0]
    healthy = ExperimentResult.compute(
        labels={"test": labels, "transfer": labels}, weak={"test": weak, "transfer": weak},
        ceiling=probs(predictions(0.9, 3)), student={"test": probs(predictions(0.7, 4)), "transfer": weak},
        config=CONFIG, loss="xent", experiment_id="e", resolved={}, seed=0, warn=lambda *_: None)
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
    from tests.tiny import write_tiny_model, write_toy_dataset
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
    from tests.tiny import tiny_bert, toy_collate, toy_examples
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


def test_hierarchical_pgr_interval_covers_the_truth_by_simulation():
    """Known truth: seeds vary (each seed's accuracies move by N(0, .015) per role) and each sees 600 test
    examples of a shared test set. The pooled PGR's 95% interval (seeds, then test examples) must cover the true
    PGR (1/3) in about 95% of 150 simulated experiments of 5 seeds; the test-example-only interval of a single
    seed, which ignores seed variance, covers it far less often."""
    from w2slab.metrics import bootstrap_pgr_interval, hierarchical_bootstrap_pgr

    true = {"weak": 0.75, "student": 0.80, "ceiling": 0.90}  # PGR = .05 / .15 = 1/3
    rng = np.random.default_rng(0)
    covered = single_covered = 0
    draws = 150
    for _ in range(draws):
        runs = []
        difficulty = rng.random(600)  # a shared test set: an example hard for one seed is hard for all
        for _seed in range(5):
            run = {}
            for role, acc in true.items():
                run[role] = difficulty < np.clip(acc + rng.normal(0, 0.015), 0, 1)
            runs.append(run)
        pooled = hierarchical_bootstrap_pgr(runs, n_boot=300, seed=int(rng.integers(1 << 30)))
        covered += (not pooled.unbounded) and pooled.ci95[0] <= 1 / 3 <= pooled.ci95[1]
        one = bootstrap_pgr_interval(runs[0]["weak"], runs[0]["student"], runs[0]["ceiling"], n_boot=300)
        single_covered += (not one.unbounded) and one.pgr_ci95[0] <= 1 / 3 <= one.pgr_ci95[1]
    assert 0.88 <= covered / draws <= 1.0, covered / draws
    assert single_covered / draws < covered / draws


def test_pooled_pgr_leaves_out_runs_without_a_gap():
    from w2slab.metrics import pooled_pgr_with_gap

    rng = np.random.default_rng(1)
    gap_run = {"weak": rng.random(500) < 0.7, "student": rng.random(500) < 0.8, "ceiling": rng.random(500) < 0.9}
    flat = {"weak": rng.random(500) < 0.7, "student": rng.random(500) < 0.2, "ceiling": rng.random(500) < 0.7}
    pooled = pooled_pgr_with_gap([gap_run, flat], [0.1, -0.05], n_boot=200)
    assert (pooled.seeds, pooled.of) == (1, 2)
    assert 0.2 < pooled.pgr < 0.8  # the flat run's terrible student never entered
    none = pooled_pgr_with_gap([flat], [-0.05], n_boot=200)
    assert math.isnan(none.pgr) and (none.seeds, none.of) == (0, 1)


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


def test_hierarchical_bootstrap_keeps_pairs_paired():
    """Two students on the same examples: their difference's interval is far narrower than either accuracy's,
    because one draw of seeds and test indices serves both; the point estimate is the plain mean."""
    from w2slab.metrics import hierarchical_bootstrap, hierarchical_paired_difference

    rng = np.random.default_rng(0)
    base = rng.random((5, 1000)) < 0.8
    better = base | (rng.random((5, 1000)) < 0.1)  # right wherever base is, and on ~10% of the rest
    arrays = {"a": better.astype(float), "b": base.astype(float)}
    point, (low, high) = hierarchical_bootstrap(lambda m: m["a"] - m["b"], arrays, n_boot=300)
    assert point == pytest.approx(better.mean() - base.mean())
    assert 0 < low < point < high
    _, (a_low, a_high) = hierarchical_bootstrap(lambda m: m["a"], arrays, n_boot=300)
    assert high - low < (a_high - a_low) / 2
    diff, (d_low, d_high) = hierarchical_paired_difference(list(better.astype(float) - base.astype(float)),
                                                           n_boot=300)
    assert diff == pytest.approx(point) and d_low > 0


def test_non_finite_predictions_are_a_suspect_result_not_a_failed_stage():
    """NaN probabilities used to reach roc_auc_score and fail the evaluate stage with a traceback."""
    labels = np.arange(N) % 2
    weak = probs(np.where(correct(0.6, seed=1), labels, 1 - labels))
    student = probs(np.where(correct(0.8, seed=2), labels, 1 - labels))
    student[:3] = np.nan
    result = ExperimentResult.compute(
        labels={"test": labels, "transfer": labels}, weak={"test": weak, "transfer": weak},
        ceiling=probs(np.where(correct(0.9, seed=3), labels, 1 - labels)), student={"test": student, "transfer": weak},
        config=CONFIG, loss="xent", experiment_id="e", resolved={}, seed=0, warn=lambda *_: None)
    assert math.isnan(result.student_auroc)
    assert any(reason.startswith("student predictions are not finite") and "on 3 test examples" in reason
               for reason in result.suspect)


def test_capa_is_one_for_the_same_predictions_zero_for_independent_errors_and_hand_computed_otherwise():
    """CAPA (Goel et al. 2025) against its definition: (c_obs - c_exp) / (1 - c_exp)."""
    import numpy as np

    from w2slab.diagnostics import capa

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 20_000)
    confident = np.eye(3)[np.where(rng.random(len(labels)) < 0.7, labels, (labels + 1) % 3)]
    assert capa(confident, confident, labels) == pytest.approx(1.0)
    # two models right 70% and 60% of the time, wrong at random among the other classes, independently
    def independent(accuracy: float) -> np.ndarray:
        right = rng.random(len(labels)) < accuracy
        wrong = (labels + rng.integers(1, 3, len(labels))) % 3
        return np.eye(3)[np.where(right, labels, wrong)]

    assert abs(capa(independent(0.7), independent(0.6), labels)) < 0.02
    a = np.array([[0.8, 0.2], [0.4, 0.6], [0.3, 0.7]])
    b = np.array([[0.6, 0.4], [0.5, 0.5], [0.9, 0.1]])
    y = np.array([0, 1, 0])
    observed = np.mean([0.8 * 0.6 + 0.2 * 0.4, 0.4 * 0.5 + 0.6 * 0.5, 0.3 * 0.9 + 0.7 * 0.1])
    pa, pb = np.mean([0.8, 0.6, 0.3]), np.mean([0.6, 0.5, 0.9])
    expected = pa * pb + (1 - pa) * (1 - pb)
    assert capa(a, b, y) == pytest.approx((observed - expected) / (1 - expected))


def test_a_hard_task_at_its_calibrated_loss_is_not_taken_for_an_unconverged_model():
    """Reward models on human preferences end near ln 2 because the labels are noisy: a model right on 60% of
    test whose training loss is what a calibrated 60%-accurate model has (0.673) converged; the same accuracy
    with a loss of 0.69 is less confident than it is right, and is flagged."""
    from w2slab.results import calibrated_loss, suspect_reasons

    assert calibrated_loss(0.5, 2) == pytest.approx(math.log(2))
    assert calibrated_loss(1.0, 2) == 0.0
    assert calibrated_loss(0.6, 2) == pytest.approx(-(0.6 * math.log(0.6) + 0.4 * math.log(0.4)))
    assert calibrated_loss(0.25, 4) == pytest.approx(math.log(4))
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 2000)
    right = np.arange(2000) < 1200
    p1 = np.where(right == (labels == 1), 0.6, 0.4)
    probs = np.stack([1 - p1, p1], axis=1)
    for final, flagged in ((0.670, False), (0.690, True)):
        reasons = suspect_reasons({"ceiling": probs}, labels, {"ceiling": {"final_loss": final}})
        assert any("training loss ended" in r for r in reasons) == flagged, (final, reasons)


def test_the_ceilings_margin_over_chance_has_an_interval_from_the_same_resamples():
    """A ceiling at .52 on 400 test examples cannot be told from chance (.5); at .60 on 1,000 it can."""
    rng = np.random.default_rng(0)

    def correct(rate: float, n: int) -> np.ndarray:
        return rng.permutation(np.arange(n) < round(rate * n))

    near = bootstrap_pgr_interval(correct(0.5, 400), correct(0.5, 400), correct(0.52, 400), seed=0, chance=0.5)
    assert near.ceiling_over_chance_ci95[0] <= 0 < near.ceiling_over_chance_ci95[1]
    clear = bootstrap_pgr_interval(correct(0.55, 1000), correct(0.55, 1000), correct(0.60, 1000), seed=0, chance=0.5)
    assert 0 < clear.ceiling_over_chance_ci95[0] < 0.1 < clear.ceiling_over_chance_ci95[1] < 0.14
