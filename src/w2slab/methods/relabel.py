"""Methods that rewrite the weak labels before the student sees them (``relabel`` stages).

- ``none``: the paper's recipe, the weak labels as they are.
- ``conf_filter``: drop the least confident fraction of weak labels.
- ``knn``: relabel (or filter) each transfer example by its nearest neighbours' weak labels in the
  strong model's frozen feature space (after EleutherAI/w2s; weak errors that disagree with their
  neighbourhood are the ones the strong model's representation can undo). Unlike that code, neighbours
  are by cosine similarity (the pooled features' scale varies by model) and a row is not its own neighbour.
- ``logreg``: the same with a logistic-regression probe on those features, predicted *out of fold*
  (EleutherAI/w2s fits and predicts the same rows, so a probe that memorises a wrong label keeps it).
- In filter mode both drop the ``drop`` fraction of rows whose weak label the estimate supports least
  (for K=2 that is the largest ``|estimate - weak|``; EleutherAI/w2s ``contamination``, 0.1).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from w2slab.methods.base import LabelMethod, Method, RelabelContext, SoftLabels, register_method
from w2slab.typed import check

RELABEL_MODES = ("relabel", "filter")


def least_confident(probs: np.ndarray, fraction: float, per_class: bool = False) -> np.ndarray:
    """Indices of the ``round(fraction * N)`` rows with the lowest max-probability (ties: earlier rows first).

    ``per_class``: the same fraction within each predicted class, so filtering keeps the class balance.
    """
    confidence = probs.max(-1)
    if not per_class:
        order = np.argsort(confidence, kind="stable")
        return np.sort(order[:int(round(fraction * len(probs)))])
    predicted = probs.argmax(-1)
    dropped = [least_confident(probs[predicted == k], fraction) for k in np.unique(predicted)]
    rows = [np.flatnonzero(predicted == k)[d] for k, d in zip(np.unique(predicted), dropped, strict=True)]
    return np.sort(np.concatenate(rows)) if rows else np.zeros(0, dtype=int)


def drop_rows(labels: SoftLabels, rows: np.ndarray) -> SoftLabels:
    weights = labels.weights.copy()
    weights[rows] = 0.0
    return SoftLabels(labels.probs, weights)


def most_disagreeing(weak: np.ndarray, other: np.ndarray, fraction: float) -> np.ndarray:
    """The ``round(fraction * N)`` rows where ``other``'s probability of the weak label's class is lowest."""
    support = other[np.arange(len(weak)), weak.argmax(-1)]
    return np.sort(np.argsort(support, kind="stable")[:int(round(fraction * len(weak)))])


@register_method("none")
@dataclass(frozen=True)
class NoMethod(Method):
    """The paper's recipe: the student learns the weak labels as they are."""

    source: ClassVar[str] = "Burns et al. 2023 (the paper's recipe)"

    @property
    def plain(self) -> bool:
        return True


@register_method("conf_filter")
@dataclass(frozen=True)
class ConfidenceFilter(LabelMethod):
    """Drop the least confident fraction of weak labels (by the weak model's max probability) before training."""

    drop: float = 0.2
    per_class: bool = False  # drop that fraction within each weak-predicted class (keeps the class balance)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.drop < 1.0, "drop", f"must be in [0, 1), got {self.drop}")

    def transform(self, labels: SoftLabels, context: RelabelContext) -> SoftLabels:
        return drop_rows(labels, least_confident(labels.probs, self.drop, self.per_class))


@dataclass(frozen=True)
class _FeatureRelabel(LabelMethod):
    """Shared by kNN and logistic regression: an estimate of each row's label from the strong model's frozen
    features and the *other* rows' weak labels, then used as the label (relabel) or to drop the rows whose
    weak label it contradicts most (filter)."""

    reads: ClassVar[frozenset[str]] = frozenset({"weak_labels", "strong_features"})
    mode: str = "relabel"
    drop: float = 0.1  # filter mode: the fraction of rows dropped

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.mode in RELABEL_MODES, "mode", f"must be one of {', '.join(RELABEL_MODES)}, got {self.mode!r}")
        check(0.0 <= self.drop < 1.0, "drop", f"must be in [0, 1), got {self.drop}")

    def estimate(self, features: np.ndarray, probs: np.ndarray, seed: int) -> np.ndarray:
        raise NotImplementedError

    def transform(self, labels: SoftLabels, context: RelabelContext) -> SoftLabels:
        estimate = self.estimate(context.strong_features(), labels.probs, context.seed).astype(np.float32)
        if self.mode == "relabel":
            return SoftLabels(estimate, labels.weights)
        return drop_rows(labels, most_disagreeing(labels.probs, estimate, self.drop))


def nearest_neighbours(features: np.ndarray, k: int) -> np.ndarray:
    """Indices [N, k] of each row's ``k`` nearest *other* rows by cosine similarity (at most N - 1)."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True).clip(1e-12)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)  # a row is not its own neighbour
    k = min(k, len(features) - 1)
    return np.argpartition(-similarity, k - 1, axis=1)[:, :k]


def knn_labels(features: np.ndarray, probs: np.ndarray, k: int) -> np.ndarray:
    """Mean soft label of each row's ``k`` nearest *other* rows by cosine similarity."""
    return probs[nearest_neighbours(features, k)].mean(axis=1)


@register_method("knn")
@dataclass(frozen=True)
class KnnRelabel(_FeatureRelabel):
    """Relabel (or filter) weak labels by the mean weak label of the k nearest neighbours in strong features.

    ``k`` None (default): ``ceil(sqrt(n))`` of the n transfer rows, the classic consistent choice (k grows with the
    data, k/n shrinks): 32 at 1,000 rows, 100 at 10,000; a fixed 50 averages away 5% of a 1,000-row set.
    """

    k: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.k is None or self.k >= 1, "k", f"must be >= 1 (or null: sqrt of the rows), got {self.k}")

    def neighbours(self, n: int) -> int:
        return self.k if self.k is not None else max(1, math.ceil(math.sqrt(n)))

    def estimate(self, features: np.ndarray, probs: np.ndarray, seed: int) -> np.ndarray:
        return knn_labels(features, probs, self.neighbours(len(probs)))


@register_method("logreg")
@dataclass(frozen=True)
class LogRegRelabel(_FeatureRelabel):
    """Relabel (or filter) weak labels by an out-of-fold logistic-regression probe on strong features.

    ``c`` None (default): the inverse regularisation strength is chosen by an inner cross-validation on each
    fold's training rows (scikit-learn's ``LogisticRegressionCV`` over 10 values from 1e-4 to 1e4, scored by log
    loss against the weak labels), since the right C depends on the features' scale and the number of rows.
    """

    folds: int = 5
    c: float | None = None  # inverse regularisation strength (scikit-learn's C); None: cross-validated

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.folds >= 2, "folds", f"must be >= 2, got {self.folds}")
        check(self.c is None or self.c > 0, "c", f"must be > 0 (or null: cross-validated), got {self.c}")

    def estimate(self, features: np.ndarray, probs: np.ndarray, seed: int) -> np.ndarray:
        """Each fold's rows are predicted by a probe fit on the other folds' hard weak labels, so no row's
        own (possibly wrong) label decides its new one."""
        from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
        from sklearn.model_selection import StratifiedKFold
        from sklearn.preprocessing import StandardScaler

        hard = probs.argmax(-1)
        out = np.array(probs, dtype=np.float64)  # rows of a class too rare to fit keep their weak label
        classes = np.unique(hard)
        if len(classes) < 2 or np.bincount(hard).min() < self.folds:
            return probs
        folds = StratifiedKFold(self.folds, shuffle=True, random_state=seed)
        for fit_rows, held_rows in folds.split(features, hard):
            scaler = StandardScaler().fit(features[fit_rows])
            probe = (LogisticRegression(C=self.c, max_iter=1000) if self.c is not None else
                     LogisticRegressionCV(Cs=10, cv=3, scoring="neg_log_loss", max_iter=1000))
            with warnings.catch_warnings():  # scikit-learn 1.9 announces changes to defaults we do not rely on
                warnings.simplefilter("ignore", FutureWarning)
                probe.fit(scaler.transform(features[fit_rows]), hard[fit_rows])
            predicted = probe.predict_proba(scaler.transform(features[held_rows]))
            out[held_rows] = 0.0
            out[np.ix_(held_rows, probe.classes_)] = predicted
        return out
