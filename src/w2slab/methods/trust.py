"""Trust functions (arXiv 2606.01000): a trust score per weak label, learned from a small labelled set, filters the
labels the student learns from; the student then becomes the next teacher. A stage kind (``trust``, computed by
``w2slab.pipeline.method_stages.compute_trust``) and its method.

The score of a transfer row is a logistic regression on label-free signals of its teacher label, fit on
``labelled`` rows of the transfer set whose ground truth it reads (so the method is an *oracle*: its ground truth
is counted, and every table marks it):

- the teacher's confidence in its label, and its margin over the runner-up class;
- how many of the row's nearest neighbours in the strong model's frozen features carry the same teacher label;
- how likely an out-of-fold probe on those features, fit to the other rows' teacher labels, finds the label.

Rows whose trust is below ``threshold`` (the label more likely wrong than right) are dropped (weight 0); the
labelled rows learn from their ground truth. With ``rounds`` > 1 the student's own labels of the transfer set go
through a new trust stage (scored by the same labelled rows, not counted again) and a fresh student learns from
what it keeps. Unlike the paper, whose trust function may use the teacher's internals, the signals here are what
every teacher in w2slab has: its probabilities, and the strong model's features.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from w2slab.methods.base import LabelledOracle, register_method
from w2slab.typed import check

if TYPE_CHECKING:
    from w2slab.losses import Loss
    from w2slab.pipeline.graph import GraphBuilder, Stage


@dataclass(frozen=True)
class TrustSpec:
    """What identifies a trust stage: the method (its parameters), the seed, and whether it counts the labelled
    rows' ground truth (the first round does; later rounds reuse the same rows)."""

    method: TrustFunctions
    seed: int
    counts_truth: bool

    def to_value(self) -> dict:
        return {"method": self.method.to_value(), "seed": self.seed, "counts_truth": self.counts_truth}


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


def fit_trust(signals: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """P(the teacher's label is right) for every row, from a logistic regression fit on the labelled rows'
    ``signals`` and ``correct``ness (``correct`` holds -1 for the unlabelled rows). A labelled set with only right
    (or only wrong) labels gives every row its rate."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    labelled = correct >= 0
    if len(np.unique(correct[labelled])) < 2:
        return np.full(len(signals), float(correct[labelled].mean()))
    scaler = StandardScaler().fit(signals[labelled])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(signals[labelled]), correct[labelled])
    return model.predict_proba(scaler.transform(signals))[:, 1]


@register_method("trust")
@dataclass(frozen=True)
class TrustFunctions(LabelledOracle):
    """ORACLE (reads ``labelled`` transfer labels): a trust score per teacher label, learned from those rows, drops
    the labels likely wrong; the student then relabels and is filtered again, ``rounds`` times."""

    source: ClassVar[str] = "trust functions, arXiv 2606.01000 (label-free signals; a small labelled set)"
    threshold: float = 0.5
    rounds: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.threshold < 1.0, "threshold", f"must be in [0, 1), got {self.threshold}")
        check(self.rounds >= 1, "rounds", f"must be >= 1, got {self.rounds}")

    def trust_stage(self, builder: GraphBuilder, labels: Stage, first: bool) -> Stage:
        inputs = {"split": builder.split, "labels": labels, "features": builder.features_of(builder.cfg.strong)}
        return builder.add("trust", TrustSpec(self, builder.cfg.seed, first), inputs,
                           label=f"trust {'weak' if first else 'student'} labels {builder.name}")

    def labels_stage(self, builder: GraphBuilder) -> Stage:
        return self.trust_stage(builder, builder.weak_label, True)

    def build_student(self, builder: GraphBuilder, loss: Loss, label: str) -> Stage:
        student = builder.student(loss, self.labels_stage(builder), self,
                                  label=label if self.rounds == 1 else f"{label} round 1")
        for round_ in range(2, self.rounds + 1):
            filtered = self.trust_stage(builder, student, False)
            student = builder.student(loss, filtered, self, label=label if round_ == self.rounds
                                      else f"{label} round {round_}")
        return student
