"""``length: auto``: an unconverged training is retried longer (then at a higher learning rate) within
``max_epochs``, the attempt kept chosen on validation, never on test; a first attempt that converges is the
training of ``length: fixed`` bit for bit. And a weak model at chance or a ceiling that did not converge is no W2S
experiment: no table shows its PGR as a result."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
from pathlib import Path

import numpy as np
import pytest

from w2slab.config import TrainConfig
from w2slab.train.selection import RETRY_LR_FACTOR, Attempt, length_cap, retry_lengths, search_length

# --- the search, with a fake training ---------------------------------------------------------------------------


def fake_run(converges_at: float = math.inf, scores: dict[float, float] | None = None, unstable: bool = False,
             boost_converges: bool = False):
    """A training that converges from ``converges_at`` epochs on (or at a boosted learning rate), scored by
    ``scores[epochs]``; it records every call."""
    calls: list[tuple[int, TrainConfig, float]] = []

    def run(index: int, cfg: TrainConfig, factor: float):
        calls.append((index, cfg, factor))
        converged = cfg.epochs >= converges_at or (boost_converges and factor != 1.0)
        return f"model {index}", Attempt(epochs=cfg.epochs, lr_factor=factor, lr=cfg.lr or 1.0, converged=converged,
                                         reasons=[] if converged else ["ceiling did not converge: loss near ln 2"],
                                         score=(scores or {}).get(cfg.epochs, 0.5), stable=not unstable)

    return run, calls


def test_fixed_trains_once_and_records_nothing():
    run, calls = fake_run()
    payload, record = search_length(TrainConfig(epochs=2, length="fixed"), run, lr=1.0, head_lr=None)
    assert payload == "model 0" and record == {} and len(calls) == 1


def test_a_converged_first_attempt_is_the_whole_search():
    run, calls = fake_run(converges_at=1)
    cfg = TrainConfig(epochs=1, lr=1e-3)
    payload, record = search_length(cfg, run, lr=1e-3, head_lr=None)
    assert payload == "model 0" and len(calls) == 1 and calls[0][1] is cfg  # the configured training itself
    assert record["kept"] == 0 and [a["converged"] for a in record["attempts"]] == [True]


def test_an_unconverged_training_doubles_until_it_converges():
    run, calls = fake_run(converges_at=2)
    payload, record = search_length(TrainConfig(epochs=1, lr=1e-3), run, lr=1e-3, head_lr=None)
    assert [c[1].epochs for c in calls] == [1, 2] and payload == "model 1"
    assert record["kept"] == 1 and [a["converged"] for a in record["attempts"]] == [False, True]
    assert [a["epochs"] for a in record["attempts"]] == [1, 2] and record["cap"] == 4


def test_the_cap_bounds_every_attempt_and_the_learning_rate_retry_comes_last():
    run, calls = fake_run(scores={1: 0.6, 2: 0.7, 2.5: 0.65})
    cfg = TrainConfig(epochs=1, lr=1e-3, head_lr=1e-2, max_epochs=2.5)
    assert retry_lengths(cfg) == [2, 2.5] and length_cap(cfg) == 2.5
    payload, record = search_length(cfg, run, lr=1e-3, head_lr=1e-2)
    assert [(c[1].epochs, c[2]) for c in calls] == [(1, 1.0), (2, 1.0), (2.5, 1.0), (2.5, RETRY_LR_FACTOR)]
    assert max(c[1].epochs for c in calls) <= 2.5
    boosted = calls[-1][1]
    assert boosted.lr == pytest.approx(3e-3) and boosted.head_lr == pytest.approx(3e-2)
    # none converged: the best validation score is kept (2 epochs, .7), not the last or the longest
    assert record["kept"] == 1 and payload == "model 1"
    assert TrainConfig(epochs=2).max_epochs is None and length_cap(TrainConfig(epochs=2)) == 8


def test_an_unstable_training_gets_no_higher_learning_rate():
    run, calls = fake_run(unstable=True)
    search_length(TrainConfig(epochs=1), run, lr=1e-3, head_lr=None)
    assert [c[2] for c in calls] == [1.0, 1.0, 1.0]


def test_the_learning_rate_retry_can_end_converged_and_then_is_kept():
    run, calls = fake_run(boost_converges=True, scores={4: 0.9})
    payload, record = search_length(TrainConfig(epochs=1), run, lr=1e-3, head_lr=None)
    assert record["attempts"][-1]["lr_factor"] == RETRY_LR_FACTOR and record["kept"] == 3 and payload == "model 3"


def test_a_first_attempt_on_other_rows_is_kept_only_when_no_retry_ran():
    run, _ = fake_run(scores={1: 0.99, 2: 0.6, 4: 0.7})
    payload, record = search_length(TrainConfig(epochs=1), run, lr=1e-3, head_lr=None, first_is_candidate=False)
    assert record["kept"] == 2 and payload == "model 2"  # the first scored .99, but not on held-out rows
    run, _ = fake_run(unstable=True)
    payload, record = search_length(TrainConfig(epochs=1, max_epochs=1), run, lr=1e-3, head_lr=None,
                                    first_is_candidate=False)
    assert payload == "model 0" and len(record["attempts"]) == 1


# --- the rule, one function for results and training ------------------------------------------------------------


def test_results_and_training_share_the_convergence_rule():
    from w2slab import results
    from w2slab.pipeline import compute

    assert "convergence_problems(" in inspect.getsource(results.convergence_reasons)
    assert "convergence_problems(" in inspect.getsource(compute.judged_attempt)
    labels = np.arange(400) % 2
    unsure = np.where(labels[:, None] == np.arange(2), 0.55, 0.45)  # right everywhere, never confident
    assert results.convergence_problems(unsure, labels, role="ceiling", split="validation")[0].startswith(
        "ceiling did not converge: accuracy 1.000 but 90% of its validation predictions")
    assert results.convergence_problems(unsure, labels, final_loss=0.69, role="weak")[1].startswith(
        "weak did not converge: its training loss ended at 0.6900")
    sure = np.where(labels[:, None] == np.arange(2), 0.95, 0.05)
    assert results.convergence_problems(sure, labels, final_loss=0.1) == []
    record = {"attempts": [{"epochs": 1, "lr_factor": 1.0}, {"epochs": 4, "lr_factor": 3.0}], "kept": 1}
    reasons = results.convergence_reasons(results.SplitPredictions({"ceiling": unsure}, labels),
                                          {"ceiling": {"length": record}})
    assert reasons[0].startswith("ceiling did not converge within 4 epochs (2 attempts, the last at 3x lr): accuracy")


# --- the pipeline: gaussian_w2s, linear models of vectors (seconds) --------------------------------------------


def gaussian_config(train: TrainConfig, **changes):
    from w2slab.config import ExperimentConfig
    from w2slab.data.vectors import GAUSSIAN_W2S

    return ExperimentConfig(dataset="gaussian_w2s", weak=GAUSSIAN_W2S.weak_model, strong=GAUSSIAN_W2S.strong_model,
                            losses=["xent"], n_train=800, n_test=400, n_val=200, weak_train=train,
                            strong_train=train, **changes)


def run_traced(cfg, root: Path, readers: list[str]) -> tuple[object, list[str], list[str]]:
    """Run ``cfg`` with ``readers`` (the ``test_label_readers`` fixture) tracing every read of the test labels."""
    from w2slab.api import run
    from w2slab.config import RuntimeConfig

    lines: list[str] = []
    result = run(cfg, RuntimeConfig(run_root=str(root), echo=lines.append))
    return result, readers, lines


def stage_files(root: Path, kind: str, name: str) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((root / "stages" / kind).glob(f"*/{name}"))]


#: A training too short to converge: a tenth of an epoch (3 steps of 16 rows); twice as long converges.
SHORT = TrainConfig(mode="probe", epochs=0.1, batch_size=16, lr=0.05, warmup_frac=0.0)
#: Long enough for every model of the task to converge at its first attempt.
SURE = TrainConfig(mode="probe", epochs=4, batch_size=32, lr=0.05)


def test_an_unconverged_training_is_retried_and_ends_converged_chosen_without_the_test_set(tmp_path,
                                                                                          test_label_readers):
    result, readers, lines = run_traced(gaussian_config(SHORT), tmp_path, test_label_readers)
    assert set(readers) <= {"compute_evaluate", "write_experiment_folder"}, sorted(set(readers))
    for kind, role in (("weak_train", "weak"), ("ceiling", "ceiling")):
        (stability,) = stage_files(tmp_path, kind, "stability.json")
        record = stability["length"]
        attempts = record["attempts"]
        assert len(attempts) > 1 and not attempts[0]["converged"] and attempts[0]["epochs"] == 0.1, record
        assert all(a["epochs"] <= record["cap"] == 0.4 for a in attempts)
        kept = attempts[record["kept"]]
        assert kept["converged"] and record["score_name"] == "validation accuracy", record
        assert all(0 <= a["score"] <= 1 for a in attempts)  # validation accuracy, every attempt
        assert {"epochs", "lr", "lr_factor", "final_loss", "score", "converged", "reasons"} <= set(kept)
        (resolved,) = stage_files(tmp_path, kind, "resolved.json")
        assert resolved["epochs"] == kept["epochs"] and resolved["lr"] == pytest.approx(kept["lr"])
        assert any(line.strip().startswith(f"{role} retried at ") and "converged" in line for line in lines), lines
    summary = result.summary
    assert not [r for r in summary.suspect if "did not converge" in r], summary.suspect
    saved = json.loads((result.folder / "metrics.json").read_text())
    assert any(note.startswith("ceiling retried at ") for note in saved["length"]), saved["length"]
    from rich.console import Console

    from w2slab.report.console import summary_table

    console = Console(width=200, record=True)
    console.print(summary_table(summary))
    assert "ceiling retried at" in console.export_text()


def test_fixed_trains_once(tmp_path, test_label_readers):
    result, _, _ = run_traced(gaussian_config(dataclasses.replace(SHORT, length="fixed")), tmp_path,
                              test_label_readers)
    for kind in ("weak_train", "ceiling", "student"):
        for stability in stage_files(tmp_path, kind, "stability.json"):
            assert stability["length"] == {} and stability["steps"] == 3  # 0.1 x 25 steps, rounded up
    assert any("did not converge" in r for r in result.summary.suspect)


def test_a_converged_first_attempt_is_bit_identical_to_fixed(tmp_path, test_label_readers):
    folders = {}
    for length in ("auto", "fixed"):
        result, _, _ = run_traced(gaussian_config(dataclasses.replace(SURE, length=length)), tmp_path / length,
                                  test_label_readers)
        folders[length] = result.folder
    for kind in ("weak_train", "ceiling", "student"):
        for stability in stage_files(tmp_path / "auto", kind, "stability.json"):
            assert [a["converged"] for a in stability["length"]["attempts"]] == [True], stability["length"]
    files = sorted(p.relative_to(folders["fixed"]) for p in (folders["fixed"] / "predictions").glob("*.npz"))
    assert len(files) == 4
    for name in files:
        with np.load(folders["auto"] / name) as auto, np.load(folders["fixed"] / name) as fixed:
            assert all(np.array_equal(auto[key], fixed[key]) for key in fixed.files), name
    for kind in ("weak_label", "ceiling", "student"):  # every split each stage predicted (validation too)
        stages = [sorted((tmp_path / length / "stages" / kind).glob("*/*.npz")) for length in ("auto", "fixed")]
        assert [p.name for p in stages[0]] == [p.name for p in stages[1]] and stages[0]
        for a, b in zip(*stages, strict=True):
            with np.load(a) as auto, np.load(b) as fixed:
                assert all(np.array_equal(auto[key], fixed[key]) for key in fixed.files), (kind, a.name)
    weights = [sorted(root.glob("stages/weak_train/*/trainable.safetensors"))[0].read_bytes()
               for root in (tmp_path / "auto", tmp_path / "fixed")]
    assert weights[0] == weights[1]


def test_a_student_retries_on_its_own_rows_and_is_scored_on_held_out_weak_labels(tmp_path, test_label_readers):
    """A converged weak model's confident labels, a strong model trained one step (an eighth of an epoch of 64
    rows): the student's retries hold a tenth of its rows out and are scored by agreement with their weak labels;
    it reads no ground truth."""
    from w2slab.config import ExperimentConfig
    from w2slab.data.vectors import GAUSSIAN_W2S

    cfg = ExperimentConfig(dataset="gaussian_w2s", weak=GAUSSIAN_W2S.weak_model, strong=GAUSSIAN_W2S.strong_model,
                           losses=["xent"], n_train=800, n_test=400, n_val=200, weak_train=SURE,
                           strong_train=TrainConfig(mode="probe", epochs=0.125, batch_size=64, lr=0.05,
                                                    warmup_frac=0.0))
    result, readers, _ = run_traced(cfg, tmp_path, test_label_readers)
    assert set(readers) <= {"compute_evaluate", "write_experiment_folder"}
    (record,) = [s["length"] for s in stage_files(tmp_path, "student", "stability.json")]
    attempts = record["attempts"]
    assert len(attempts) > 1 and attempts[0]["rows"] == 400 and all(a["rows"] == 360 for a in attempts[1:]), record
    assert record["score_name"] == "held-out agreement with its labels" and record["kept"] >= 1
    assert math.isnan(attempts[0]["score"] if attempts[0]["score"] is not None else math.nan)  # not comparable
    assert result.summary.results["xent"].ground_truth_labels.get("student", 0) == 0


# --- no W2S experiment -------------------------------------------------------------------------------------------


def make_result(weak_acc: float, ceiling_p: float = 0.95, ceiling_loss: float = 0.1, n: int = 600,
                ceiling_acc: float = 0.9):
    """A result computed from synthetic predictions: the weak model right on ``weak_acc`` of the test rows, the
    ceiling on ``ceiling_acc`` with probability ``ceiling_p`` on its answer, the student between them."""
    from w2slab.results import ExperimentResult

    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2

    def probs(acc: float, p: float) -> np.ndarray:
        right = rng.permutation(np.arange(n) < round(acc * n))  # right on exactly that share
        predicted = np.where(right, labels, 1 - labels)
        return np.where(predicted[:, None] == np.arange(2), p, 1 - p)

    weak, ceiling = probs(weak_acc, 0.9), probs(ceiling_acc, ceiling_p)
    student = probs((weak_acc + ceiling_acc) / 2, 0.9)
    return ExperimentResult.compute(
        labels={"transfer": labels, "test": labels}, weak={"transfer": weak, "test": weak}, ceiling=ceiling,
        student={"transfer": student, "test": student}, config={"dataset": "toy", "weak": "minilm-l3",
                                                                 "strong": "mpnet-base", "n_test": n},
        label="xent", experiment_id=f"x{weak_acc}{ceiling_p}", resolved={}, seed=0, warn=lambda *_: None,
        stability={"ceiling": {"final_loss": ceiling_loss}})


def table_text(result) -> str:
    from rich.console import Console

    from w2slab.report.console import summary_table
    from w2slab.results import ExperimentSummary

    summary = ExperimentSummary(config=result.config, results={"xent": result}, stability={}, notes=[], stages={},
                                resolved={})
    console = Console(width=300, record=True)
    console.print(summary_table(summary))
    return console.export_text()


def student_pgr_cell(text: str) -> str:
    """The PGR column of the printed table's student row."""
    (row,) = [line for line in text.splitlines() if "w2s student" in line]
    return row.split("│")[6].strip()


def test_a_weak_model_at_chance_is_no_w2s_experiment():
    from w2slab.report.tables import aggregate, markdown_table
    from w2slab.results import no_experiment_reason

    result = make_result(0.5)
    reason = no_experiment_reason(result)
    assert reason.startswith("weak model at chance (0.") and reason.endswith("no W2S experiment"), reason
    assert result.gap_ci95[0] > 0  # a gap there is: the rule, not the gap, rules the PGR out
    text = table_text(result)
    assert "weak model at chance" in text and student_pgr_cell(text) == "n/a"
    assert not result.has_gap()
    (row,) = aggregate([result])
    assert not row["pgr_shown"] and row["n_no_experiment"] == 1
    assert "no W2S experiment (1 of 1)" in markdown_table([row]) and "weak model at chance" in markdown_table([row])
    assert "PGR n/a (no W2S experiment)" in result.one_line()
    good = make_result(0.7)
    assert not no_experiment_reason(good) and good.has_gap()
    assert student_pgr_cell(table_text(good)) == f"{good.pgr:.3f}"
    assert aggregate([good])[0]["pgr_shown"] is True


def test_a_ceiling_at_chance_says_the_strong_model_cannot_learn_the_task():
    from w2slab.results import no_experiment_reason

    result = make_result(0.45, ceiling_acc=0.51, ceiling_p=0.52, ceiling_loss=0.69)
    reason = no_experiment_reason(result)
    assert "ceiling at chance (0.510" in reason and "the strong model cannot learn this task at this size" in reason
    assert "did not converge" not in reason  # the cause is the task, not an unfinished training
    assert "cannot learn this task" in table_text(result) and not result.has_gap()


def test_chance_is_the_most_frequent_class_of_the_test_set():
    from w2slab.results import ExperimentResult, chance_accuracy

    record = make_result(0.7).to_dict()
    assert chance_accuracy(ExperimentResult.from_dict(record)) == 0.5  # balanced labels
    # 70% of one class: a weak model right on 70% predicts no better than "always that class"
    record.update(ceiling_accuracy=0.9, ceiling_over_chance=0.2)
    assert abs(chance_accuracy(ExperimentResult.from_dict(record)) - 0.7) < 1e-12
    record.update(ceiling_over_chance=float("nan"))
    assert chance_accuracy(ExperimentResult.from_dict(record)) == 0.5  # an old record: 1/K


def test_a_ceiling_that_did_not_converge_is_no_w2s_experiment():
    from w2slab.report.tables import aggregate
    from w2slab.results import ExperimentResult, no_experiment_reason

    result = make_result(0.7, ceiling_p=0.55)  # right on 90%, never confident
    reason = no_experiment_reason(result)
    assert reason.startswith("ceiling did not converge: accuracy") and reason.endswith("no W2S experiment"), reason
    text = table_text(result)
    assert "ceiling did not converge" in text and student_pgr_cell(text) == "n/a"
    assert not aggregate([result])[0]["pgr_shown"]
    # a record without K (written before results carried it) is not judged at chance
    old = make_result(0.5).to_dict()
    old.pop("num_classes")
    assert not no_experiment_reason(ExperimentResult.from_dict(old))
