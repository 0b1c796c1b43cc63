"""Selective weak-to-strong generalization (arXiv 2511.14166): weak labels smoothed over a similarity graph, then a
per-example selector decides where the student's own label replaces the weak one. A stage kind (``select_labels``:
its spec :class:`SelectSpec`, its compute function :func:`compute_select_labels`) and two methods.

- ``graph_smooth`` (a label method): label propagation of the weak labels over the k-nearest-neighbour graph of
  the strong model's frozen features, ``Y <- (1 - a) Y0 + a S Y`` with ``S`` the row-normalised cosine-kNN graph
  (Zhou et al. 2004), ``iterations`` times (defaults .9 and 20: Zhou et al. weight the graph as heavily): an
  isolated weak error surrounded by right labels is outvoted (at .5 a row's own label outweighs its neighbours');
  the classes' masses are kept at the weak labels' (class mass normalisation) and the label is the winning class.
- ``selective`` (an oracle: it reads ``labelled`` transfer labels, counted): a first student learns from the
  smoothed labels; a P(IK)-style selector, a classifier of whether the student *knows* a row's answer, is fit on
  the labelled rows (target: the student's label is right) from the strong model's frozen features (their top
  principal components) and label-free signals (the student's confidence, the smoothed weak label's soft
  confidence, each side's agreement with the row's neighbours); where the student and the smoothed weak label
  disagree, the student's label is kept where P(IK) > .5, and a second student learns the result. With too few
  labelled rows of either outcome to fit (fewer than 4), the more confident side wins, the weak side's confidence
  being its *soft* propagated score (the hard smoothed label's would always be 1, and the student would never win).

Adapted: the paper's P(IK) classifier reads the strong model's hidden states for each question; here it reads the
strong model's frozen features (the ones w2slab caches), reduced to a few principal components (a hundred labelled
rows cannot fit a classifier on thousands of dimensions), beside output-level signals.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from w2slab.methods.base import LabelMethod, RelabelContext, SoftLabels, StageBuilder, StageNode, register_method
from w2slab.methods.baselines import LabelledOracle
from w2slab.methods.stage_api import StageContext, register_stage
from w2slab.typed import check

if TYPE_CHECKING:
    from w2slab.losses import Loss


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


def smooth_scores(weak: np.ndarray, graph: np.ndarray, alpha: float, iterations: int) -> np.ndarray:
    """Soft propagated class scores [N, K] of ``weak`` labels over ``graph``, class-mass normalised to the weak
    labels' masses and renormalised per row (their argmax is the smoothed label, their max its soft confidence)."""
    weak = weak.astype(np.float64)
    scores = class_mass_normalise(propagate(weak, graph, alpha, iterations), weak.sum(0)).clip(0.0)
    return scores / scores.sum(-1, keepdims=True).clip(1e-12)


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
        smoothed = smooth_scores(labels.probs, knn_graph(features, k), self.alpha, self.iterations)
        hard = np.eye(smoothed.shape[1], dtype=np.float32)[smoothed.argmax(-1)]
        return SoftLabels(hard, labels.weights)


@dataclass(frozen=True)
class SelectSpec:
    method: SelectiveW2S
    seed: int

    def to_value(self) -> dict:
        return {"method": self.method.to_value(), "seed": self.seed}


#: labelled rows of each outcome (the student right, wrong) the P(IK) selector needs before it is fit
MIN_OUTCOME = 4


def selector_signals(student: np.ndarray, weak_scores: np.ndarray, graph: np.ndarray,
                     features: np.ndarray | None = None, components: int = 8) -> np.ndarray:
    """Per row [N, 4 + c]: the student's confidence, the smoothed weak label's soft confidence (``weak_scores``, the
    propagated scores), the share of the row's neighbours that carry each side's label, then the strong features'
    top ``c`` principal components (none without ``features``)."""
    rows = np.arange(len(student))
    s_label, w_label = student.argmax(-1), weak_scores.argmax(-1)
    s_share = (graph @ np.eye(student.shape[1])[s_label])[rows, s_label]
    w_share = (graph @ np.eye(weak_scores.shape[1])[w_label])[rows, w_label]
    signals = [student.max(-1), weak_scores.max(-1), s_share, w_share]
    if features is not None and components > 0:
        from sklearn.decomposition import PCA

        flat = features.reshape(len(features), -1).astype(np.float64)
        count = min(components, *flat.shape)
        signals.extend(PCA(count, svd_solver="randomized", random_state=0).fit_transform(flat).T)
    return np.stack(signals, axis=1)


def can_fit_selector(student_right: np.ndarray) -> bool:
    """Enough labelled rows of both outcomes (``student_right`` 1/0, -1 for unlabelled rows) to fit P(IK)."""
    outcomes = student_right[student_right >= 0]
    return min(int((outcomes == 1).sum()), int((outcomes == 0).sum())) >= MIN_OUTCOME


def choose_student(signals: np.ndarray, student_right: np.ndarray) -> np.ndarray:
    """P(IK): P(the student's label is right) per row, from a logistic classifier on ``signals`` fit on every
    labelled row (``student_right``: 1/0 there, -1 elsewhere). Too few of either outcome: 1 where the student is
    more confident than the smoothed weak label's soft score (column 0 against column 1), else 0."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if not can_fit_selector(student_right):
        return (signals[:, 0] > signals[:, 1]).astype(float)
    fit_rows = student_right >= 0
    scaler = StandardScaler().fit(signals[fit_rows])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(signals[fit_rows]),
                                                             student_right[fit_rows])
    return model.predict_proba(scaler.transform(signals))[:, 1]


def select_student_labels(student: np.ndarray, weak: np.ndarray, features: np.ndarray, labelled: np.ndarray,
                          truth: np.ndarray, alpha: float, iterations: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(where the student's label replaces the smoothed weak one [N] bool, P(IK) [N]): the smoothed labels are the
    propagated scores of the (unsmoothed) ``weak`` labels over the features' kNN graph; the selector is fit on the
    ``labelled`` rows, whose ground truth is ``truth``."""
    n = len(student)
    graph = knn_graph(features, max(1, math.ceil(math.sqrt(n))))
    scores = smooth_scores(weak, graph, alpha, iterations)
    student_right = np.full(n, -1)
    student_right[labelled] = (student[labelled].argmax(-1) == truth).astype(int)
    knows = choose_student(selector_signals(student, scores, graph, features), student_right)
    disagree = student.argmax(-1) != scores.argmax(-1)
    return disagree & (knows > 0.5), knows


@register_stage("select_labels", order=8.5,
                description="a selector keeps the student's or the weak label where they disagree")
def compute_select_labels(context: StageContext) -> None:
    """Where the first student and the smoothed weak labels disagree, keep the student's label where the P(IK)
    selector says it knows the answer (:func:`select_student_labels`)."""
    spec, method = context.spec, context.spec.method
    splits = context.input("split").splits(blind=True)
    smoothed = context.input("labels").labels("transfer")
    weak = context.input("weak").labels("transfer").probs  # unsmoothed: their propagated scores are soft
    student = context.input("student").probs("transfer")
    features = context.input("features").features("transfer", pair_difference=True)
    n, k = smoothed.probs.shape
    labelled, truth = context.labelled_sample(n, method.labelled, spec.seed, method)
    take_student, _ = select_student_labels(student, weak, features, labelled, truth, method.alpha)
    disagree = student.argmax(-1) != smoothed.probs.argmax(-1)
    take_student &= disagree
    right = (student[labelled].argmax(-1) == truth).astype(int)
    fitted = can_fit_selector(right)
    out = np.where(take_student[:, None], student, smoothed.probs).astype(np.float32)
    out[labelled] = np.eye(k, dtype=np.float32)[truth]
    context.echo(f"  selective: student and weak labels disagree on {int(disagree.sum())} of {n} rows; the student's "
                 f"label replaces the weak one on {int(take_student.sum())} "
                 f"({'P(IK) selector' if fitted else 'too few labelled outcomes to fit: the more confident side'})")
    context.output.write_labels("transfer", [r["id"] for r in splits["transfer"]],
                                SoftLabels(out, smoothed.weights))
    context.output.write_json("selection.json", {"disagree": int(disagree.sum()),
                                                 "student_taken": int(take_student.sum()),
                                                 "labelled": len(labelled),
                                                 "selector": "pik" if fitted else "confidence"})
    context.record_ground_truth("student", len(labelled))


@register_method("selective")
@dataclass(frozen=True)
class SelectiveW2S(LabelledOracle):
    """ORACLE (reads ``labelled`` transfer labels): graph-smoothed weak labels teach a first student; where the two
    disagree a P(IK) selector fit on the labelled rows decides whose label a second student learns."""

    source: ClassVar[str] = ("selective W2S, arXiv 2511.14166; adapted: P(IK) on frozen features' principal "
                             "components and confidences, a small labelled set")
    stage_kind: ClassVar[str] = "select_labels"
    alpha: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.alpha < 1.0, "alpha", f"must be in [0, 1), got {self.alpha}")

    def build_student(self, builder: StageBuilder, loss: Loss, label: str) -> StageNode:
        smoothed = builder.relabel(GraphSmooth(alpha=self.alpha))
        first = builder.student(loss, smoothed, label=f"{label} round 1")
        inputs = {"split": builder.split, "labels": smoothed, "weak": builder.weak_label, "student": first,
                  "features": builder.features_of(builder.cfg.strong)}
        selected = builder.add("select_labels", SelectSpec(self, builder.cfg.seed), inputs,
                               label=f"selective labels {builder.name}")
        return builder.student(loss, selected, label=label)
