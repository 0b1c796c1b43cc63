"""Trust functions (arXiv 2606.01000): a trust score per weak label, learned from a small labelled set, filters the
labels the student learns from; the student then becomes the next teacher. A stage kind (``trust``: its spec
:class:`TrustSpec`, its compute function :func:`compute_trust`) and its method.

The score of a transfer row is P(its teacher label is right), fit on ``labelled`` rows of the transfer set whose
ground truth it reads (so the method is an *oracle*: its ground truth is counted, and every table marks it). Two
trust functions (``signals``):

- ``hidden``, the paper's: a small MLP (sklearn's ``MLPClassifier``) on the teacher's hidden states, with the
  teacher's probabilities beside them. w2slab keeps the *frozen pretrained* features of each model, so the teacher's
  hidden states are its model's frozen features: exactly the trained weak model's in probe mode, the pretrained
  backbone's (not the fine-tuned one's) when the weak model was fine-tuned; for later rounds, whose teacher is a
  student of the strong model, the strong model's frozen features.
- ``output`` (default): a logistic regression on four label-free, output-level signals of the teacher label: the
  teacher's confidence and its margin over the runner-up class; how many of the row's nearest neighbours in the
  strong model's frozen features carry the same label; how likely an out-of-fold probe on those features, fit to the
  other rows' teacher labels, finds it. Adapted: what every teacher in w2slab has, whatever its kind.

Rows whose trust is below ``threshold`` (the label more likely wrong than right) are dropped (weight 0). The labelled
rows are otherwise rows like any other: their ground truth only fits the trust function, so the result measures the
filter alone. ``inject_truth`` (off by default) also lets the student learn those rows' ground truth, a second effect
mixed into the first: the labelled rows are then split in two seeded halves, one that fits trust (every round) and
one whose ground truth the student learns (never used to fit trust, so a later round never scores a student on rows
it was taught the answers of).

With ``rounds`` > 1 the student's own labels of the transfer set go through a new trust stage (scored by the same
labelled rows, not counted again) and a fresh student learns from what it keeps.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from w2slab.methods.base import SoftLabels, StageBuilder, StageNode, register_method
from w2slab.methods.baselines import LabelledOracle
from w2slab.methods.stage_api import StageContext, register_stage
from w2slab.typed import check

if TYPE_CHECKING:
    from w2slab.losses import Loss


@dataclass(frozen=True)
class TrustSpec:
    """What identifies a trust stage: the method (its parameters), the seed, and whether it counts the labelled
    rows' ground truth (the first round does; later rounds reuse the same rows)."""

    method: TrustFunctions
    seed: int
    counts_truth: bool

    def to_value(self) -> dict:
        return {"method": self.method.to_value(), "seed": self.seed, "counts_truth": self.counts_truth}


def trust_rows(labelled: np.ndarray, inject_truth: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(labelled rows that fit the trust function, labelled rows whose ground truth the student learns): all and none
    without ``inject_truth``; with it, two disjoint seeded halves (the same in every round)."""
    if not inject_truth:
        return labelled, labelled[:0]
    shuffled = np.random.default_rng([seed, 8_191]).permutation(labelled)
    half = max(1, len(labelled) // 2)
    return np.sort(shuffled[:half]), np.sort(shuffled[half:])


def trust_signals(probs: np.ndarray, features: np.ndarray, seed: int, neighbours: int) -> np.ndarray:
    """Per row [N, 4]: the teacher's confidence, its margin, its label's share among the row's nearest neighbours
    (cosine, the row excluded) and an out-of-fold probe's probability of it."""
    from sklearn.preprocessing import StandardScaler

    from w2slab.methods.relabel import knn_labels
    from w2slab.methods.unsupervised import out_of_fold_probs

    label = probs.argmax(-1)
    rows = np.arange(len(probs))
    ordered = np.sort(probs, axis=-1)
    agreement = knn_labels(features, np.eye(probs.shape[1])[label], neighbours)[rows, label]
    probe = out_of_fold_probs(StandardScaler().fit_transform(features), label, probs.shape[1], 5, seed)[rows, label]
    return np.stack([ordered[:, -1], ordered[:, -1] - ordered[:, -2], agreement, probe], axis=1)


def hidden_signals(probs: np.ndarray, hidden: np.ndarray, components: int = 16) -> np.ndarray:
    """Per row: the teacher's hidden states (their top ``components`` principal components: a hundred labelled rows
    cannot fit an MLP on thousands of dimensions) and its probabilities."""
    from sklearn.decomposition import PCA

    flat = hidden.reshape(len(hidden), -1).astype(np.float64)
    reduced = PCA(min(components, *flat.shape), svd_solver="randomized", random_state=0).fit_transform(flat)
    return np.concatenate([reduced, probs], axis=1)


def fit_trust(signals: np.ndarray, correct: np.ndarray, model: str = "logistic", seed: int = 0) -> np.ndarray:
    """P(the teacher's label is right) for every row, from a classifier fit on the labelled rows' ``signals`` and
    ``correct``ness (``correct`` holds -1 for the unlabelled rows): a logistic regression (``model: logistic``) or
    a one-hidden-layer MLP (``mlp``, the paper's trust function). A labelled set with only right (or only wrong)
    labels gives every row its rate."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    labelled = correct >= 0
    if len(np.unique(correct[labelled])) < 2:
        return np.full(len(signals), float(correct[labelled].mean()))
    scaler = StandardScaler().fit(signals[labelled])
    classifier = (MLPClassifier((32,), alpha=1.0, max_iter=2000, random_state=seed) if model == "mlp"
                  else LogisticRegression(C=1.0, max_iter=1000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classifier.fit(scaler.transform(signals[labelled]), correct[labelled])
    return classifier.predict_proba(scaler.transform(signals))[:, 1]


@register_stage("trust", order=7.5,
                description="a trust score per teacher label, learned from a few labelled rows, filters them")
def compute_trust(context: StageContext) -> None:
    """Score, filter and write the transfer labels the next student learns from (module docstring)."""
    spec, method = context.spec, context.spec.method
    splits = context.input("split").splits(blind=True)
    teacher = context.input("labels").labels("transfer")
    probs, weights = teacher.probs, teacher.weights
    n = len(probs)
    # the labelled rows depend on the experiment's seed only: every round scores with the same rows
    labelled, truth = context.labelled_sample(n, method.labelled, spec.seed, method)
    fit_rows, taught = trust_rows(labelled, method.inject_truth, spec.seed)
    truth_of = dict(zip(labelled.tolist(), truth.tolist(), strict=True))
    correct = np.full(n, -1)  # only the rows that fit trust: never the rows a student was taught the answers of
    correct[fit_rows] = (probs[fit_rows].argmax(-1) == [truth_of[r] for r in fit_rows]).astype(int)
    if method.signals == "hidden":
        hidden = context.input("teacher_features").features("transfer", pair_difference=True)
        trust = fit_trust(hidden_signals(probs, hidden), correct, "mlp", spec.seed)
    else:
        features = context.input("features").features("transfer", pair_difference=True)
        trust = fit_trust(trust_signals(probs, features, spec.seed, max(1, math.ceil(math.sqrt(n)))), correct)
    keep = (trust >= method.threshold) & (weights > 0)
    out = probs.astype(np.float32).copy()
    if len(taught):  # inject_truth: these rows teach their ground truth
        out[taught] = np.eye(probs.shape[1], dtype=np.float32)[[truth_of[r] for r in taught]]
        keep[taught] = True
    right = int(correct[fit_rows].sum())
    context.echo(f"  trust ({method.signals}): {right} of {len(fit_rows)} labelled rows' teacher labels right; kept "
                 f"{int(keep.sum())} of {n} rows (trust >= {method.threshold})"
                 + (f"; {len(taught)} labelled rows teach their ground truth" if len(taught) else ""))
    context.output.write_labels("transfer", [r["id"] for r in splits["transfer"]],
                                SoftLabels(out, keep.astype(np.float32)))
    context.output.write_json("trust.json", {"labelled": len(labelled), "fit_trust": len(fit_rows),
                                             "taught_truth": len(taught), "labelled_right": right,
                                             "kept": int(keep.sum()), "mean_trust": float(trust.mean()),
                                             "signals": method.signals})
    # later rounds score with the same labelled rows: only the first counts them
    context.record_ground_truth("student", len(labelled) if spec.counts_truth else 0)


@register_method("trust")
@dataclass(frozen=True)
class TrustFunctions(LabelledOracle):
    """ORACLE (reads ``labelled`` transfer labels): a trust score per teacher label, learned from those rows, drops
    the labels likely wrong; the student then relabels and is filtered again, ``rounds`` times. ``signals``: output
    (a logistic regression on output-level signals) or hidden (an MLP on the teacher's frozen features);
    ``inject_truth``: the student also learns half the labelled rows' ground truth."""

    source: ClassVar[str] = ("trust functions, arXiv 2606.01000; adapted: signals output (default) is a logistic "
                             "regression on output-level signals, hidden an MLP on frozen features")
    stage_kind: ClassVar[str] = "trust"
    threshold: float = 0.5
    rounds: int = 1
    signals: str = "output"  # output: logistic regression on output-level signals; hidden: MLP on teacher features
    inject_truth: bool = False  # the student also learns the ground truth of half the labelled rows

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.threshold < 1.0, "threshold", f"must be in [0, 1), got {self.threshold}")
        check(self.rounds >= 1, "rounds", f"must be >= 1, got {self.rounds}")
        check(self.signals in ("output", "hidden"), "signals", f"must be output or hidden, got {self.signals!r}")
        check(not self.inject_truth or self.labelled >= 4, "labelled",
              f"inject_truth splits the labelled rows in two: needs at least 4, got {self.labelled}")

    def trust_stage(self, builder: StageBuilder, labels: StageNode, first: bool) -> StageNode:
        inputs = {"split": builder.split, "labels": labels, "features": builder.features_of(builder.cfg.strong)}
        if self.signals == "hidden":  # the teacher's features: the weak model's, then the strong students'
            inputs["teacher_features"] = builder.features_of(builder.cfg.weak if first else builder.cfg.strong)
        return builder.add("trust", TrustSpec(self, builder.cfg.seed, first), inputs,
                           label=f"trust {'weak' if first else 'student'} labels {builder.name}")

    def labels_stage(self, builder: StageBuilder) -> StageNode:
        return self.trust_stage(builder, builder.weak_label, True)

    def build_student(self, builder: StageBuilder, loss: Loss, label: str) -> StageNode:
        student = builder.student(loss, self.labels_stage(builder), self,
                                  label=label if self.rounds == 1 else f"{label} round 1")
        for round_ in range(2, self.rounds + 1):
            filtered = self.trust_stage(builder, student, False)
            student = builder.student(loss, filtered, self, label=label if round_ == self.rounds
                                      else f"{label} round {round_}")
        return student
