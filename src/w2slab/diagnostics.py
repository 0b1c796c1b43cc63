"""Diagnostics of a student beyond PGR: why it gained what it gained.

- **Misfit and gain** (Charikar et al. 2024, "Quantifying the gain in weak-to-strong generalization"): with
  squared loss on predicted probabilities, ``misfit = E||s - w||^2`` (student against weak predictions) and
  ``gain = E||w - y||^2 - E||s - y||^2`` (how much closer to the one-hot truth ``y`` the student is). Under
  their assumptions (the strong model's function class is convex and the student minimises its misfit to
  the weak labels) ``gain >= misfit``; :func:`misfit_gain` says whether that holds on the test set.
- **Decomposition** of the test set by what happened to the weak model's errors: corrected, imitated
  (the student made the same wrong prediction), changed (a different wrong class, K>2) and the student's
  new errors on examples the weak model had right.
- **Calibration**: expected calibration error (equal-width confidence bins) and the Brier score.
- **Paired differences**: two students on the same test examples, a bootstrap CI of their accuracy
  difference (resampling examples, so the shared difficulty of an example cancels).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

ECE_BINS = 15


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float64)[labels]


def misfit_gain(weak: np.ndarray, student: np.ndarray, labels: np.ndarray) -> dict[str, float | bool]:
    """Squared-loss misfit of the student to the weak model, its gain over it, and whether gain >= misfit."""
    truth = one_hot(labels, weak.shape[1])
    misfit = float(((student - weak) ** 2).sum(-1).mean())
    gain = float(((weak - truth) ** 2).sum(-1).mean() - ((student - truth) ** 2).sum(-1).mean())
    return {"misfit": misfit, "gain": gain, "gain_ge_misfit": bool(gain >= misfit)}


@dataclass(frozen=True)
class Decomposition:
    """Shares of the test set (they sum to 1)."""

    both_right: float
    corrected: float  # weak wrong, student right
    imitated: float  # weak wrong, student wrong with the same class
    changed: float  # weak wrong, student wrong with another class (K>2 only)
    new_errors: float  # weak right, student wrong

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def decompose(weak: np.ndarray, student: np.ndarray, labels: np.ndarray) -> Decomposition:
    w, s = weak.argmax(-1), student.argmax(-1)
    weak_right, student_right = w == labels, s == labels
    return Decomposition(both_right=float(np.mean(weak_right & student_right)),
                         corrected=float(np.mean(~weak_right & student_right)),
                         imitated=float(np.mean(~weak_right & ~student_right & (s == w))),
                         changed=float(np.mean(~weak_right & ~student_right & (s != w))),
                         new_errors=float(np.mean(weak_right & ~student_right)))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """``sum_b |B|/N * |accuracy(B) - confidence(B)|`` over equal-width bins of the top-class probability."""
    if len(labels) == 0:
        return math.nan
    confidence = probs.max(-1)
    correct = probs.argmax(-1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(total)


def brier_score(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean over examples of ``sum_k (p_k - y_k)^2``."""
    return float(((probs - one_hot(labels, probs.shape[1])) ** 2).sum(-1).mean()) if len(labels) else math.nan


def calibration(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {"ece": expected_calibration_error(probs, labels), "brier": brier_score(probs, labels)}


def paired_difference(correct_a: np.ndarray, correct_b: np.ndarray, *, n_boot: int = 2000, seed: int = 0
                      ) -> tuple[float, tuple[float, float]]:
    """Accuracy of a minus accuracy of b on the same examples, with a paired-bootstrap 95% CI."""
    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"paired comparison needs the same non-empty test set, got {len(a)} and {len(b)} examples")
    rng = np.random.default_rng(seed)
    diff = a - b
    samples = diff[rng.integers(0, len(diff), (n_boot, len(diff)))].mean(axis=1)
    return float(diff.mean()), (float(np.quantile(samples, 0.025)), float(np.quantile(samples, 0.975)))


def pack_correct(correct: np.ndarray) -> str:
    """Per-example correctness as a compact hex string (results carry it for paired comparisons)."""
    return np.packbits(np.asarray(correct, dtype=bool)).tobytes().hex()


def unpack_correct(packed: str, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bytes.fromhex(packed), dtype=np.uint8))[:n].astype(bool)
