"""Selective weak-to-strong generalization (arXiv 2511.14166): weak labels smoothed over a similarity graph, then a
per-example selector decides where the student's own label replaces the weak one. A stage kind (``select_labels``,
computed by ``w2slab.pipeline.method_stages.compute_select_labels``) and two methods.

- ``graph_smooth`` (a label method): label propagation of the weak labels over the k-nearest-neighbour graph of
  the strong model's frozen features, ``Y <- (1 - a) Y0 + a S Y`` with ``S`` the row-normalised cosine-kNN graph
  (Zhou et al. 2004), ``iterations`` times (defaults .9 and 20: Zhou et al. weight the graph as heavily): an
  isolated weak error surrounded by right labels is outvoted (at .5 a row's own label outweighs its neighbours');
  the classes' masses are kept at the weak labels' (class mass normalisation) and the label is the winning class.
- ``selective`` (an oracle: it reads ``labelled`` transfer labels, counted): a first student learns from the
  smoothed labels; where it and the smoothed weak label disagree, a logistic selector on label-free signals (each
  side's confidence, each side's agreement with the row's neighbours) decides whose label to keep, fit on the
  labelled rows where the two disagree (target: the student is right); a second student learns the result. With
  too few labelled disagreements to fit (fewer than 4 of either outcome), the more confident side wins.

Adapted: the paper's selector may read the models' internals; here it reads what every model in w2slab has.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from w2slab.methods.base import LabelledOracle, LabelMethod, RelabelContext, SoftLabels, register_method
from w2slab.typed import check

if TYPE_CHECKING:
    from w2slab.losses import Loss
    from w2slab.pipeline.graph import GraphBuilder, Stage


def knn_graph(features: np.ndarray, k: int) -> np.ndarray:
    """Row-normalised adjacency [N, N] of each row's ``k`` nearest other rows by cosine similarity."""
    from w2slab.methods.relabel import nearest_neighbours

    neighbours = nearest_neighbours(features, k)
    graph = np.zeros((len(features), len(features)))
    np.put_along_axis(graph, neighbours, 1.0 / neighbours.shape[1], axis=1)
    return graph


def propagate(labels: np.ndarray, graph: np.ndarray, alpha: float, iterations: int) -> np.ndarray:
    """Label propagation: ``Y <- (1 - alpha) Y0 + alpha graph Y``, ``iterations`` times (rows stay distributions)."""
    current = labels.copy()
    for _ in range(iterations):
        current = (1.0 - alpha) * labels + alpha * graph @ current
    return current


def class_mass_normalise(scores: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Each class's column rescaled so that its total is the weak labels' ``mass`` of that class (Zhu, Ghahramani
    & Lafferty 2003): propagation over a graph drifts toward the classes whose rows are hubs, and a class can take
    over; this keeps the weak labels' class balance."""
    return scores * (mass / scores.sum(0).clip(1e-12))[None, :]


@register_method("graph_smooth")
@dataclass(frozen=True)
class GraphSmooth(LabelMethod):
    """Weak labels smoothed by label propagation over the strong features' kNN graph (``k`` None: sqrt of the rows),
    class-mass normalised, and the winning class taken as a hard label: averaging over neighbours squashes the
    probabilities towards uniform (a student of them never becomes confident), so, as in Zhou et al., the
    propagation decides the class and not the confidence."""

    source: ClassVar[str] = "Zhou et al. 2004 label propagation, as the first step of arXiv 2511.14166"
    reads: ClassVar[frozenset[str]] = frozenset({"weak_labels", "strong_features"})
    alpha: float = 0.9
    iterations: int = 20
    k: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.alpha < 1.0, "alpha", f"must be in [0, 1), got {self.alpha}")
        check(self.iterations >= 1, "iterations", f"must be >= 1, got {self.iterations}")
        check(self.k is None or self.k >= 1, "k", f"must be >= 1 (or null: sqrt of the rows), got {self.k}")

    def transform(self, labels: SoftLabels, context: RelabelContext) -> SoftLabels:
        features = context.strong_features()
        k = self.k or max(1, math.ceil(math.sqrt(len(features))))
        weak = labels.probs.astype(np.float64)
        smoothed = class_mass_normalise(propagate(weak, knn_graph(features, k), self.alpha, self.iterations),
                                        weak.sum(0))
        hard = np.eye(weak.shape[1], dtype=np.float32)[smoothed.argmax(-1)]
        return SoftLabels(hard, labels.weights)


@dataclass(frozen=True)
class SelectSpec:
    method: SelectiveW2S
    seed: int

    def to_value(self) -> dict:
        return {"method": self.method.to_value(), "seed": self.seed}


def selector_signals(student: np.ndarray, weak: np.ndarray, graph: np.ndarray) -> np.ndarray:
    """Per row [N, 4]: each side's confidence and the share of the row's neighbours that carry each side's label."""
    rows = np.arange(len(student))
    s_label, w_label = student.argmax(-1), weak.argmax(-1)
    s_share = (graph @ np.eye(student.shape[1])[s_label])[rows, s_label]
    w_share = (graph @ np.eye(weak.shape[1])[w_label])[rows, w_label]
    return np.stack([student.max(-1), weak.max(-1), s_share, w_share], axis=1)


def choose_student(signals: np.ndarray, disagree: np.ndarray, student_right: np.ndarray) -> np.ndarray:
    """P(the student's label is the right one) per row, from a selector fit on the labelled disagreements
    (``student_right``: 1/0 there, -1 elsewhere); too few of either outcome: the more confident side."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    fit_rows = disagree & (student_right >= 0)
    outcomes = student_right[fit_rows]
    if min((outcomes == 1).sum(), (outcomes == 0).sum()) < 4:
        return (signals[:, 0] > signals[:, 1]).astype(float)
    scaler = StandardScaler().fit(signals[fit_rows])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(signals[fit_rows]), outcomes)
    return model.predict_proba(scaler.transform(signals))[:, 1]


@register_method("selective")
@dataclass(frozen=True)
class SelectiveW2S(LabelledOracle):
    """ORACLE (reads ``labelled`` transfer labels): graph-smoothed weak labels teach a first student; where the two
    disagree a selector fit on the labelled rows decides whose label a second student learns."""

    source: ClassVar[str] = "selective W2S, arXiv 2511.14166 (label-free selector signals; a small labelled set)"
    alpha: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.alpha < 1.0, "alpha", f"must be in [0, 1), got {self.alpha}")

    def build_student(self, builder: GraphBuilder, loss: Loss, label: str) -> Stage:
        smoothed = builder.relabel(GraphSmooth(alpha=self.alpha))
        first = builder.student(loss, smoothed, label=f"{label} round 1")
        inputs = {"split": builder.split, "labels": smoothed, "student": first,
                  "features": builder.features_of(builder.cfg.strong)}
        selected = builder.add("select_labels", SelectSpec(self, builder.cfg.seed), inputs,
                               label=f"selective labels {builder.name}")
        return builder.student(loss, selected, label=label)
