"""The compute functions of the stage kinds that methods add (EnsemW2S's ``boost``, trust functions' ``trust``,
selective W2S's ``select_labels``): the stage folders' reading and writing, in the pipeline layer, around the
algorithms their methods' files define (``w2slab.methods.boosting``, ``.trust``, ``.selective``).

A method (the component layer) says what a stage computes and builds it into the graph; the pipeline layer reads
its inputs' folders and writes its own (:class:`~w2slab.pipeline.artifacts.StageFolder`). A plugin may keep both in
one file, as ``tests/stage_plugin.py`` does; w2slab's own layers keep them apart.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from w2slab.losses import FixedWeightCrossEntropy
from w2slab.methods.base import SoftLabels
from w2slab.methods.boosting import boost
from w2slab.methods.selective import can_fit_selector, select_student_labels
from w2slab.methods.trust import fit_trust, hidden_signals, trust_rows, trust_signals
from w2slab.metrics import softmax
from w2slab.pipeline.artifacts import PREDICTED, StageFolder
from w2slab.pipeline.graph import Stage
from w2slab.pipeline.stages import _role_model, labelled_sample, labels_of, one_hot, record_ground_truth


def compute_boost(stage: Stage, inputs: dict[str, Path], work: Path, runtime) -> None:
    """Train the experts in turn (out-of-fold, :func:`~w2slab.methods.boosting.boost`) and write the ensemble's
    transfer, validation and test labels."""
    spec = stage.spec
    splits = StageFolder(inputs["split"]).splits()
    weak = _role_model(stage, runtime, "weak", splits, ("weak_train", *PREDICTED), spec.train)
    truth = labels_of(splits, "weak_train")
    k = weak.num_labels

    def train(fit_rows: np.ndarray, weights: np.ndarray, seed: int, desc: str
              ) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
        # boosting's weights are one distribution over the rows: not renormalised per batch (mean 1 over fit_rows)
        model, result = weak.fit(weak.subset("weak_train", fit_rows), one_hot(truth[fit_rows], k),
                                 FixedWeightCrossEntropy(), seed=seed, desc=desc, weights=weights.astype(np.float32))
        logits = weak.predict_splits(model, ("weak_train", *PREDICTED), desc)
        return (softmax(logits["weak_train"]), {name: softmax(logits[name]) for name in PREDICTED},
                result.stability.final_loss)

    experts, rounds = boost(truth, k, spec.rounds, spec.folds, spec.seed, train, runtime.echo)
    total = sum(alpha for alpha, _ in experts)
    for name in PREDICTED:
        mean = sum(alpha * probs[name] for alpha, probs in experts) / total
        StageFolder(work).write_labels(name, [r["id"] for r in splits[name]], SoftLabels.of(mean))
    StageFolder(work).write_json("rounds.json", rounds)
    StageFolder(work).write_resolved(weak.resolved_settings())
    record_ground_truth(work, stage, inputs, "weak", len(truth), rows={"weak_train": np.arange(len(truth))})


def compute_trust(stage: Stage, inputs: dict[str, Path], work: Path, runtime) -> None:
    """Score, filter and write the transfer labels the next student learns from (``w2slab.methods.trust``)."""
    spec, method = stage.spec, stage.spec.method
    splits = StageFolder(inputs["split"]).splits(blind=True)
    teacher = StageFolder(inputs["labels"]).labels("transfer")
    probs, weights = teacher.probs, teacher.weights
    n = len(probs)
    # the labelled rows depend on the experiment's seed only: every round scores with the same rows
    labelled, truth = labelled_sample(inputs["split"], n, method.labelled, spec.seed, method)
    fit_rows, taught = trust_rows(labelled, method.inject_truth, spec.seed)
    truth_of = dict(zip(labelled.tolist(), truth.tolist(), strict=True))
    correct = np.full(n, -1)  # only the rows that fit trust: never the rows a student was taught the answers of
    correct[fit_rows] = (probs[fit_rows].argmax(-1) == [truth_of[r] for r in fit_rows]).astype(int)
    if method.signals == "hidden":
        hidden = StageFolder(inputs["teacher_features"]).features("transfer", pair_difference=True)
        trust = fit_trust(hidden_signals(probs, hidden), correct, "mlp", spec.seed)
    else:
        features = StageFolder(inputs["features"]).features("transfer", pair_difference=True)
        trust = fit_trust(trust_signals(probs, features, spec.seed, max(1, math.ceil(math.sqrt(n)))), correct)
    keep = (trust >= method.threshold) & (weights > 0)
    out = probs.astype(np.float32).copy()
    if len(taught):  # inject_truth: these rows teach their ground truth
        out[taught] = np.eye(probs.shape[1], dtype=np.float32)[[truth_of[r] for r in taught]]
        keep[taught] = True
    right = int(correct[fit_rows].sum())
    runtime.echo(f"  trust ({method.signals}): {right} of {len(fit_rows)} labelled rows' teacher labels right; kept "
                 f"{int(keep.sum())} of {n} rows (trust >= {method.threshold})"
                 + (f"; {len(taught)} labelled rows teach their ground truth" if len(taught) else ""))
    StageFolder(work).write_labels("transfer", [r["id"] for r in splits["transfer"]],
                                   SoftLabels(out, keep.astype(np.float32)))
    StageFolder(work).write_json("trust.json", {"labelled": len(labelled), "fit_trust": len(fit_rows),
                                                "taught_truth": len(taught), "labelled_right": right,
                                                "kept": int(keep.sum()), "mean_trust": float(trust.mean()),
                                                "signals": method.signals})
    record_ground_truth(work, stage, inputs, "student", len(labelled) if spec.counts_truth else 0)


def compute_select_labels(stage: Stage, inputs: dict[str, Path], work: Path, runtime) -> None:
    """Where the first student and the smoothed weak labels disagree, keep the student's label where the P(IK)
    selector says it knows the answer (:func:`~w2slab.methods.selective.select_student_labels`)."""
    spec, method = stage.spec, stage.spec.method
    splits = StageFolder(inputs["split"]).splits(blind=True)
    smoothed = StageFolder(inputs["labels"]).labels("transfer")
    weak = StageFolder(inputs["weak"]).labels("transfer").probs  # unsmoothed: their propagated scores are soft
    student = StageFolder(inputs["student"]).probs("transfer")
    features = StageFolder(inputs["features"]).features("transfer", pair_difference=True)
    n, k = smoothed.probs.shape
    labelled, truth = labelled_sample(inputs["split"], n, method.labelled, spec.seed, method)
    take_student, _ = select_student_labels(student, weak, features, labelled, truth, method.alpha)
    disagree = student.argmax(-1) != smoothed.probs.argmax(-1)
    take_student &= disagree
    right = (student[labelled].argmax(-1) == truth).astype(int)
    fitted = can_fit_selector(right)
    out = np.where(take_student[:, None], student, smoothed.probs).astype(np.float32)
    out[labelled] = np.eye(k, dtype=np.float32)[truth]
    runtime.echo(f"  selective: student and weak labels disagree on {int(disagree.sum())} of {n} rows; the student's "
                 f"label replaces the weak one on {int(take_student.sum())} "
                 f"({'P(IK) selector' if fitted else 'too few labelled outcomes to fit: the more confident side'})")
    StageFolder(work).write_labels("transfer", [r["id"] for r in splits["transfer"]],
                                   SoftLabels(out, smoothed.weights))
    StageFolder(work).write_json("selection.json", {"disagree": int(disagree.sum()),
                                                    "student_taken": int(take_student.sum()),
                                                    "labelled": len(labelled),
                                                    "selector": "pik" if fitted else "confidence"})
    record_ground_truth(work, stage, inputs, "student", len(labelled))
