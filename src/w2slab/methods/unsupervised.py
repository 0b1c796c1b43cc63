"""Unsupervised elicitation (ICM, Wen et al. 2025, arXiv 2506.10139) adapted to classifiers: labels from the strong
model's own representation, with the weak labels used only to name the classes.

ICM searches for the labelling of a set of examples that the model finds most *mutually predictable* (each label
likely given all the others, in context) and *logically consistent*, with no supervisor at all. Here a language
model's in-context prediction is replaced by an out-of-fold logistic-regression probe on the strong model's
frozen features: the mutual predictability of labels ``y`` is ``mean_i log P(y_i | x_i; probe fit on the other
folds' labels)``. The search is coordinate ascent from random starts: refit the probe, give every example the
label it predicts best, repeat until nothing changes; the start with the highest mutual predictability wins.
Every linear split of the features is predictable by a linear probe, so starts matter: they are the splits along
the features' principal directions (where clusters with a margin show, and a margin is what makes a split the
most predictable), then random ones.

Consistency: without constraints the most predictable labelling gives every example one class. ICM's logical
constraints are task-specific; the one every classification task has is its class balance, so each assignment
keeps the class counts of the weak labels' predictions (examples ranked by how much the probe prefers each class,
as logconf's hardening keeps the teacher's balance).

Mutual predictability cannot tell the classes' names apart (swapping them scores the same), so the found
clusters are matched to the classes by their agreement with the weak labels: the weak labels name the classes
and decide nothing else. The labels are hard, as ICM's are.

Adapted, in two ways: (1) an out-of-fold linear probe on the strong model's frozen features replaces the language
model's in-context prediction of each label from the others; (2) a class-count constraint (the weak labels'
balance) replaces ICM's logical consistency between labels. ICM's annealing-style search becomes coordinate ascent
from principal-direction and random starts.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from w2slab.methods.base import LabelMethod, RelabelContext, SoftLabels, register_method
from w2slab.typed import check


def out_of_fold_probs(features: np.ndarray, labels: np.ndarray, num_classes: int, folds: int, seed: int,
                      c: float = 1.0) -> np.ndarray:
    """P(label | features) of each row from a logistic regression fit on the other folds' rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    out = np.full((len(labels), num_classes), 1.0 / num_classes)
    if np.bincount(labels, minlength=num_classes).min() < folds:
        return out
    for fit_rows, held_rows in StratifiedKFold(folds, shuffle=True, random_state=seed).split(features, labels):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probe = LogisticRegression(C=c, max_iter=1000).fit(features[fit_rows], labels[fit_rows])
        out[held_rows] = 0.0
        out[np.ix_(held_rows, probe.classes_)] = probe.predict_proba(features[held_rows])
    return out


def assign_with_counts(log_probs: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Labels maximising ``sum_i log_probs[i, y_i]`` greedily under fixed class ``counts``: the most confident
    (row, class) choices first, each class closed once full."""
    n, k = log_probs.shape
    order = np.argsort(-(log_probs - log_probs.mean(-1, keepdims=True)), axis=None, kind="stable")
    labels = np.full(n, -1)
    left = counts.astype(int).copy()
    for flat in order:
        row, label = divmod(int(flat), k)
        if labels[row] < 0 and left[label] > 0:
            labels[row] = label
            left[label] -= 1
    return labels


def name_by_agreement(labels: np.ndarray, weak: np.ndarray, num_classes: int) -> np.ndarray:
    """The permutation of cluster ids to class ids that agrees most with the weak labels (Hungarian matching)."""
    from scipy.optimize import linear_sum_assignment

    agreement = np.zeros((num_classes, num_classes))
    np.add.at(agreement, (labels, weak), 1)
    clusters, classes = linear_sum_assignment(-agreement)
    mapping = np.empty(num_classes, dtype=int)
    mapping[clusters] = classes
    return mapping


@register_method("icm")
@dataclass(frozen=True)
class InternalCoherence(LabelMethod):
    """Labels the strong model's features find most mutually predictable, under the weak labels' class balance;
    the weak labels only name the classes (unsupervised elicitation, adapted to classifiers)."""

    source: ClassVar[str] = ("Wen et al. 2025, ICM, arXiv 2506.10139; adapted: an out-of-fold probe replaces "
                             "in-context prediction, class counts replace logical consistency")
    reads: ClassVar[frozenset[str]] = frozenset({"weak_labels", "strong_features"})
    restarts: int = 4
    iterations: int = 20
    folds: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.restarts >= 1, "restarts", f"must be >= 1, got {self.restarts}")
        check(self.iterations >= 1, "iterations", f"must be >= 1, got {self.iterations}")
        check(self.folds >= 2, "folds", f"must be >= 2, got {self.folds}")

    def search(self, features: np.ndarray, counts: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
        """(labels, their out-of-fold probabilities, mutual predictability) of the best start."""
        from sklearn.preprocessing import StandardScaler

        starts = self.starts(features, counts, seed)  # the raw features' directions (scaling would flatten them)
        features = StandardScaler().fit_transform(features)
        k = len(counts)
        best: tuple[np.ndarray, np.ndarray, float] | None = None
        for start in starts:
            labels = start
            for _ in range(self.iterations):
                probs = out_of_fold_probs(features, labels, k, self.folds, seed)
                new = assign_with_counts(np.log(np.clip(probs, 1e-12, 1.0)), counts)
                if np.array_equal(new, labels):
                    break
                labels = new
            probs = out_of_fold_probs(features, labels, k, self.folds, seed)
            score = float(np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0))))
            if best is None or score > best[2]:
                best = (labels, probs, score)
        return best

    def starts(self, features: np.ndarray, counts: np.ndarray, seed: int) -> list[np.ndarray]:
        """``restarts`` labellings with the class ``counts``: splits along the top principal directions (rows ranked
        by their coordinate, cut into the classes' counts), then random permutations."""
        k, n = len(counts), len(features)
        _, _, directions = np.linalg.svd(features - features.mean(0), full_matrices=False)
        edges = np.cumsum(counts)[:-1]
        starts = []
        for direction in directions[:self.restarts]:
            labels = np.empty(n, dtype=int)
            for label, rows in enumerate(np.split(np.argsort(features @ direction, kind="stable"), edges)):
                labels[rows] = label
            starts.append(labels)
        for restart in range(self.restarts - len(starts)):
            rng = np.random.default_rng([seed, restart])
            starts.append(rng.permutation(np.repeat(np.arange(k), counts)))
        return starts

    def transform(self, labels: SoftLabels, context: RelabelContext) -> SoftLabels:
        weak = labels.probs.argmax(-1)
        k = labels.probs.shape[1]
        counts = np.bincount(weak, minlength=k)
        found, _, _ = self.search(context.strong_features(), counts, context.seed)
        named = name_by_agreement(found, weak, k)[found]  # cluster j becomes the class its rows' weak labels favour
        return SoftLabels(np.eye(k, dtype=np.float32)[named], labels.weights)
