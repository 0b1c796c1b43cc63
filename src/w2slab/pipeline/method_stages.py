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
from w2slab.methods.selective import choose_student, knn_graph, selector_signals
from w2slab.methods.trust import fit_trust, trust_signals
from w2slab.metrics import softmax
from w2slab.pipeline.artifacts import StageFolder
from w2slab.pipeline.graph import Stage
from w2slab.pipeline.stages import _role_model, labelled_sample, labels_of, one_hot, record_ground_truth


def compute_boost(stage: Stage, inputs: dict[str, Path], work: Path, runtime) -> None:
    """Train the experts in turn (out-of-fold, :func:`~w2slab.methods.boosting.boost`) and write the ensemble's
    transfer and test labels."""
    spec = stage.spec
    splits = StageFolder(inputs["split"]).splits()
    weak = _role_model(stage, runtime, "weak", splits, ("weak_train", "transfer", "test"), spec.train)
    truth = labels_of(splits, "weak_train")
    k = weak.num_labels

    def train(fit_rows: np.ndarray, weights: np.ndarray, seed: int, desc: str
              ) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
        # boosting's weights are one distribution over the rows: not renormalised per batch (mean 1 over fit_rows)
        model, result = weak.fit(weak.subset("weak_train", fit_rows), one_hot(truth[fit_rows], k),
                                 FixedWeightCrossEntropy(), seed=seed, desc=desc, weights=weights.astype(np.float32))
        logits = weak.predict_splits(model, ("weak_train", "transfer", "test"), desc)
        return (softmax(logits["weak_train"]), {name: softmax(logits[name]) for name in ("transfer", "test")},
                result.stability.final_loss)

    experts, rounds = boost(truth, k, spec.rounds, spec.folds, spec.seed, train, runtime.echo)
    total = sum(alpha for alpha, _ in experts)
    for name in ("transfer", "test"):
        mean = sum(alpha * probs[name] for alpha, probs in experts) / total
        StageFolder(work).write_labels(name, [r["id"] for r in splits[name]], SoftLabels.of(mean))
    StageFolder(work).write_json("rounds.json", rounds)
    StageFolder(work).write_resolved(weak.resolved_settings())
    record_ground_truth(work, stage, inputs, "weak", len(truth))


def compute_trust(stage: Stage, inputs: dict[str, Path], work: Path, runtime) -> None:
    """Score, filter and write the transfer labels the next student learns from (module docstring)."""
    spec, method = stage.spec, stage.spec.method
    splits = StageFolder(inputs["split"]).splits(blind=True)
    teacher = StageFolder(inputs["labels"]).labels("transfer")
    probs, weights = teacher.probs, teacher.weights
    features = StageFolder(inputs["features"]).features("transfer", pair_difference=True)
    n = len(probs)
    # the labelled rows depend on the experiment's seed only: every round scores with the same rows
    labelled, truth = labelled_sample(inputs["split"], n, method.labelled, spec.seed, method)
    correct = np.full(n, -1)
    correct[labelled] = (probs[labelled].argmax(-1) == truth).astype(int)
    trust = fit_trust(trust_signals(probs, features, spec.seed, max(1, math.ceil(math.sqrt(n)))), correct)
    keep = (trust >= method.threshold) & (weights > 0)
    out = probs.astype(np.float32).copy()
    out[labelled] = np.eye(probs.shape[1], dtype=np.float32)[truth]
    keep[labelled] = True
    runtime.echo(f"  trust: {int(correct[labelled].sum())} of {len(labelled)} labelled rows' teacher labels right; "
                 f"kept {int(keep.sum())} of {n} rows (trust >= {method.threshold})")
    StageFolder(work).write_labels("transfer", [r["id"] for r in splits["transfer"]],
                                   SoftLabels(out, keep.astype(np.float32)))
    StageFolder(work).write_json("trust.json", {"labelled": len(labelled), "labelled_right":
                                                int(correct[labelled].sum()), "kept": int(keep.sum()),
                                                "mean_trust": float(trust.mean())})
    record_ground_truth(work, stage, inputs, "student", len(labelled) if spec.counts_truth else 0)


def compute_select_labels(stage: Stage, inputs: dict[str, Path], work: Path, runtime) -> None:
    """Where the first student and the smoothed weak labels disagree, keep whichever side the selector trusts."""
    spec, method = stage.spec, stage.spec.method
    splits = StageFolder(inputs["split"]).splits(blind=True)
    weak = StageFolder(inputs["labels"]).labels("transfer")
    student = StageFolder(inputs["student"]).probs("transfer")
    features = StageFolder(inputs["features"]).features("transfer", pair_difference=True)
    n, k = weak.probs.shape
    graph = knn_graph(features, max(1, math.ceil(math.sqrt(n))))
    labelled, truth = labelled_sample(inputs["split"], n, method.labelled, spec.seed, method)
    disagree = student.argmax(-1) != weak.probs.argmax(-1)
    student_right = np.full(n, -1)
    student_right[labelled] = (student[labelled].argmax(-1) == truth).astype(int)
    take_student = disagree & (choose_student(selector_signals(student, weak.probs, graph), disagree,
                                              student_right) > 0.5)
    out = np.where(take_student[:, None], student, weak.probs).astype(np.float32)
    out[labelled] = np.eye(k, dtype=np.float32)[truth]
    runtime.echo(f"  selective: student and weak labels disagree on {int(disagree.sum())} of {n} rows; the student's "
                 f"label replaces the weak one on {int(take_student.sum())}")
    StageFolder(work).write_labels("transfer", [r["id"] for r in splits["transfer"]], SoftLabels(out, weak.weights))
    StageFolder(work).write_json("selection.json", {"disagree": int(disagree.sum()),
                                                    "student_taken": int(take_student.sum()),
                                                    "labelled": len(labelled)})
    record_ground_truth(work, stage, inputs, "student", len(labelled))
