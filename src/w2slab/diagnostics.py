"""Diagnostics of a student beyond PGR: why it gained what it gained.

- **Misfit and gain** (Charikar et al. 2024, "Quantifying the gain in weak-to-strong generalization"): with
  squared loss on predicted probabilities, ``misfit = E||s - w||^2`` (student against weak predictions) and
  ``gain = E||w - y||^2 - E||s - y||^2`` (how much closer to the one-hot truth ``y`` the student is). Under
  their assumptions (the strong model's function class is convex and the student minimises its misfit to
  the weak labels) ``gain >= misfit``; :func:`misfit_gain` says whether that holds on the test set.
- **The same in log loss** (:func:`misfit_gain_kl`), the loss students are trained with: each model's
  probabilities temperature-scaled first (one temperature per model, fitted on the transfer set's ground truth,
  an evaluation-only use), so confidence a model cannot back up is not counted as misfit or gain; ``misfit =
  E KL(w || s)`` and ``gain = E[-log w_y] - E[-log s_y]``. Squared loss on raw probabilities measured calibration
  more than generalization: a student 6 points more accurate than its teacher, but less confident, had a
  negative squared-loss gain.
- **Decomposition** of the test set by what happened to the weak model's errors: corrected, imitated
  (the student made the same wrong prediction), changed (a different wrong class, K>2) and the student's
  new errors on examples the weak model had right.
- **Calibration**: expected calibration error (equal-width confidence bins) and the Brier score.
- **Per-example correctness**, packed into the result (:func:`pack_correct`) and read back only through
  ``ExperimentResult.correct``, so that paired differences between students (:mod:`w2slab.stats`) see the same
  examples in every report.
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


def _log(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probs, 1e-12, 1.0))


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T minimising the log loss of ``softmax(log(probs) / T)`` against ``labels`` (golden-section
    search over log T in [-3, 3]); 1.0 without labels."""
    if len(labels) == 0:
        return 1.0
    logits = _log(probs)

    def loss(log_t: float) -> float:
        return log_loss(scale(logits, math.exp(log_t)), labels)

    low, high = -3.0, 3.0
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    for _ in range(60):
        if loss(a) < loss(b):
            high, b = b, a
            a = high - ratio * (high - low)
        else:
            low, a = a, b
            b = low + ratio * (high - low)
    return math.exp((low + high) / 2)


def scale(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-_log(probs[np.arange(len(labels)), labels]).mean())


def misfit_gain_kl(weak: dict[str, np.ndarray], student: dict[str, np.ndarray],
                   labels: dict[str, np.ndarray]) -> dict[str, float | bool]:
    """Log-loss misfit and gain on test after temperature scaling (temperatures fitted on transfer)."""
    temperature = {name: fit_temperature(probs["transfer"], labels["transfer"])
                   for name, probs in (("weak", weak), ("student", student))}
    w, s = (scale(_log(probs["test"]), temperature[name]) for name, probs in (("weak", weak), ("student", student)))
    misfit = float((w * (_log(w) - _log(s))).sum(-1).mean())
    gain = log_loss(w, labels["test"]) - log_loss(s, labels["test"])
    return {"misfit_kl": misfit, "gain_logloss": gain, "gain_ge_misfit_kl": bool(gain >= misfit),
            "temperature_weak": temperature["weak"], "temperature_student": temperature["student"]}


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
    """ECE, Brier score, and how confident the model dares to be: the 90th percentile of its max probability and
    the number of distinct predictions (a head that never left the middle, or bf16 ties, show here first)."""
    probs = np.asarray(probs, dtype=np.float64)
    return {"ece": expected_calibration_error(probs, labels), "brier": brier_score(probs, labels),
            "p90_max_prob": max_prob_quantile(probs, 0.9),
            "distinct": int(len(np.unique(probs[:, -1].astype(np.float32)))) if len(probs) else 0}


def max_prob_quantile(probs: np.ndarray, q: float) -> float:
    """The ``q`` quantile of each prediction's top-class probability (NaN without predictions)."""
    return float(np.quantile(np.asarray(probs).max(axis=1), q)) if len(probs) else math.nan


def capa(probs_a: np.ndarray, probs_b: np.ndarray, labels: np.ndarray) -> float:
    """Chance-adjusted probabilistic agreement (CAPA, Goel et al. 2025, "Great Models Think Alike"): how much more
    two models agree, in probability, than two independent models of their accuracies would.

    ``(c_obs - c_exp) / (1 - c_exp)`` with ``c_obs`` the mean over examples of ``sum_k a_k b_k`` (the probability
    both pick the same class) and ``c_exp = pa pb + (1 - pa)(1 - pb) / (K - 1)``, ``pa``, ``pb`` the models' mean
    probability on the true class (wrong answers spread evenly over the K - 1 other classes). 1: the same
    predictions; 0: no more overlap than chance given their accuracies; negative: fewer shared errors than chance.
    A weak teacher whose errors the strong model does not share (low CAPA) leaves more to gain (Goel et al.).
    """
    a, b = np.asarray(probs_a, dtype=np.float64), np.asarray(probs_b, dtype=np.float64)
    labels = np.asarray(labels)
    k = a.shape[1]
    observed = float((a * b).sum(axis=1).mean())
    rows = np.arange(len(labels))
    pa, pb = float(a[rows, labels].mean()), float(b[rows, labels].mean())
    expected = pa * pb + (1 - pa) * (1 - pb) / (k - 1)
    return float("nan") if expected >= 1.0 else (observed - expected) / (1.0 - expected)


def pack_correct(correct: np.ndarray) -> str:
    """Per-example correctness as a compact hex string (results carry it for paired comparisons)."""
    return np.packbits(np.asarray(correct, dtype=bool)).tobytes().hex()


def unpack_correct(packed: str, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bytes.fromhex(packed), dtype=np.uint8))[:n].astype(bool)
