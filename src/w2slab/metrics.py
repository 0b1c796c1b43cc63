"""Metrics of a W2S experiment: accuracy, AUROC, PGR (with bootstrap CIs), misfit, agreement.

Written for K classes: soft labels and predictions are [N, K] probability arrays.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(axis=-1) == labels).mean())


def auroc(probs: np.ndarray, labels: np.ndarray) -> float:
    """Binary: AUROC of p(class 1); K>2: one-vs-rest macro average. NaN if one class is absent."""
    from sklearn.metrics import roc_auc_score

    if len(np.unique(labels)) < 2:
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


def bootstrap_ci(values: np.ndarray, *, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0,
                 statistic=np.mean) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic`` over ``values`` (NaNs dropped)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    stats = [statistic(rng.choice(values, size=len(values), replace=True)) for _ in range(n_boot)]
    return (float(np.quantile(stats, alpha / 2)), float(np.quantile(stats, 1 - alpha / 2)))


#: The PGR interval is reported unbounded when more than this fraction of the bootstrap resamples have the
#: ceiling at or below the weak model: PGR's denominator then crosses zero inside the 95% interval, so PGR
#: takes arbitrarily large values of both signs and no finite interval covers 95% of the resamples.
PGR_UNBOUNDED_FRACTION = 0.025


@dataclass(frozen=True)
class PgrInterval:
    """Paired-bootstrap 95% intervals of PGR and of the weak-to-ceiling accuracy gap.

    ``pgr_ci95`` is (NaN, NaN) when ``unbounded``; ``gap_ci95`` (ceiling - weak accuracy) is always
    bounded and shows why: an interval that reaches 0 is a gap the test set cannot tell from none.
    """

    pgr_ci95: tuple[float, float]
    unbounded: bool
    gap_ci95: tuple[float, float]


def bootstrap_pgr_interval(weak_correct: np.ndarray, student_correct: np.ndarray, ceiling_correct: np.ndarray, *,
                           n_boot: int = 1000, seed: int = 0) -> PgrInterval:
    """95% CIs of PGR and of the gap from resampling the *test examples* (paired across the three predictors).

    The PGR quantiles are taken over the resamples where the ceiling beats the weak model; when more than
    :data:`PGR_UNBOUNDED_FRACTION` of them do not, the interval is reported unbounded rather than computed
    over the favourable resamples only (which would hide that the gap itself is not established).
    """
    rng = np.random.default_rng(seed)
    n = len(weak_correct)
    values, gaps = [], []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        w, s, c = weak_correct[idx].mean(), student_correct[idx].mean(), ceiling_correct[idx].mean()
        gaps.append(c - w)
        if c > w:
            values.append((s - w) / (c - w))
    gap_ci = (float(np.quantile(gaps, 0.025)), float(np.quantile(gaps, 0.975)))
    if n_boot - len(values) > PGR_UNBOUNDED_FRACTION * n_boot:
        return PgrInterval((math.nan, math.nan), True, gap_ci)
    return PgrInterval((float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))), False, gap_ci)


def bootstrap_pgr_ci(weak_correct: np.ndarray, student_correct: np.ndarray, ceiling_correct: np.ndarray, *,
                     n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% CI of PGR (see :func:`bootstrap_pgr_interval`); (NaN, NaN) when the interval is unbounded."""
    return bootstrap_pgr_interval(weak_correct, student_correct, ceiling_correct, n_boot=n_boot, seed=seed).pgr_ci95


def majority_fraction(probs: np.ndarray) -> tuple[int, float]:
    """The class a predictor picks most often and the fraction of examples it picks it on."""
    predicted = probs.argmax(axis=-1)
    if len(predicted) == 0:
        return (0, math.nan)
    counts = np.bincount(predicted, minlength=probs.shape[-1])
    top = int(counts.argmax())
    return (top, float(counts[top] / len(predicted)))
