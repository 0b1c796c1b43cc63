"""Metrics of a W2S experiment: accuracy, AUROC, PGR, agreement (their intervals: :mod:`w2slab.stats`).

Written for K classes: soft labels and predictions are [N, K] probability arrays.
"""

from __future__ import annotations

import math
import warnings

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(axis=-1) == labels).mean())


def auroc(probs: np.ndarray, labels: np.ndarray) -> float:
    """Binary: AUROC of p(class 1); K>2: one-vs-rest macro average. NaN if one class is absent, or if some
    prediction is not finite (a diverged model: the result says so among its SUSPECT reasons)."""
    from sklearn.metrics import roc_auc_score

    if len(np.unique(labels)) < 2 or not np.isfinite(probs).all():
        return float("nan")
    if probs.shape[1] == 2:
        return float(roc_auc_score(labels, probs[:, 1]))
    return float(roc_auc_score(labels, probs, multi_class="ovr"))


def agreement(probs_a: np.ndarray, probs_b: np.ndarray) -> float:
    """Fraction of examples where two predictors pick the same class."""
    return float((probs_a.argmax(axis=-1) == probs_b.argmax(axis=-1)).mean())


def pgr(weak: float, strong_student: float, ceiling: float) -> float:
    """Performance gap recovered: (w2s - weak) / (ceiling - weak); NaN with a warning if ceiling <= weak."""
    if not ceiling > weak:
        warnings.warn(f"ceiling ({ceiling:.4f}) is not above the weak model ({weak:.4f}): PGR is undefined (NaN)",
                      stacklevel=2)
        return float("nan")
    return (strong_student - weak) / (ceiling - weak)


def majority_fraction(probs: np.ndarray) -> tuple[int, float]:
    """The class a predictor picks most often and the fraction of examples it picks it on."""
    predicted = probs.argmax(axis=-1)
    if len(predicted) == 0:
        return (0, math.nan)
    counts = np.bincount(predicted, minlength=probs.shape[-1])
    top = int(counts.argmax())
    return (top, float(counts[top] / len(predicted)))
