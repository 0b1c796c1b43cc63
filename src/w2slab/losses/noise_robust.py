"""The label-noise literature's answers, as W2S baselines: weak labels are noisy labels.

- ``gce`` / ``sce``: generalized cross-entropy (Zhang & Sabuncu 2018) and symmetric cross-entropy (Wang et al.
  2019), bounded losses that let examples the student finds unlikely (often the teacher's errors) pull less.
- ``elr``: early-learning regularisation (Liu et al. 2020), whose per-example memory the trainer feeds
  (it needs ``indices``) and checkpoints.
- ``coteach``: co-teaching (Han et al. 2018), two students that each learn from the examples the other finds
  easiest.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from w2slab.lazy import LazyModule
from w2slab.losses.base import EPS, Loss, LossRun, TrainingContext, ramp, register_loss, soft_cross_entropy
from w2slab.typed import check

# torch on first use: validating a config or printing `w2s --help` needs no tensor (w2slab.lazy)
torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")


@register_loss("gce")
@dataclass(frozen=True)
class GeneralizedCrossEntropy(Loss):
    """Generalized cross-entropy (Zhang & Sabuncu 2018): ``sum_k y_k (1 - p_k^q) / q``, between cross-entropy
    (``q -> 0``) and the noise-robust mean absolute error (``q = 1``); its gradient is cross-entropy's times
    ``p_y^q``, so examples the student finds unlikely (often the teacher's errors) pull less."""

    source: ClassVar[str] = "Zhang & Sabuncu 2018, arXiv 1805.07836"
    q: float = 0.7

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 < self.q <= 1.0, "q", f"must be in (0, 1], got {self.q}")

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        probs = torch.softmax(logits, dim=-1).clamp_min(EPS)
        return (labels * (1.0 - probs ** self.q)).sum(-1) / self.q


@register_loss("sce")
@dataclass(frozen=True)
class SymmetricCrossEntropy(Loss):
    """Symmetric cross-entropy (Wang et al. 2019): ``alpha * CE(y, p) + beta * RCE``, where the reverse
    cross-entropy ``-sum_k p_k log y_k`` takes ``log 0`` as ``log_zero`` (the paper's A = -4): on a one-hot label
    it is ``-log_zero * (1 - p_y)``, a bounded, noise-tolerant term beside cross-entropy's fit."""

    source: ClassVar[str] = "Wang et al. 2019, arXiv 1908.06112"
    alpha: float = 0.1
    beta: float = 1.0
    log_zero: float = -4.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.alpha >= 0 and self.beta >= 0 and self.alpha + self.beta > 0, "alpha",
              f"alpha and beta must be >= 0 and not both 0, got {self.alpha}, {self.beta}")
        check(self.log_zero < 0, "log_zero", f"must be < 0, got {self.log_zero}")

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        probs = torch.softmax(logits, dim=-1)
        log_labels = torch.log(labels.clamp_min(math.exp(self.log_zero)))
        reverse = -(probs * log_labels).sum(-1)
        return self.alpha * soft_cross_entropy(logits, labels) + self.beta * reverse


@register_loss("elr")
@dataclass(frozen=True)
class EarlyLearningRegularization(Loss):
    """Early-learning regularization (Liu et al. 2020): cross-entropy plus ``lam * log(1 - <t, p>)``, where ``t`` is
    each training example's running average (weight ``beta`` on the past) of the student's own predictions; early
    in training, before it memorises the teacher's errors, the student's predictions are mostly right, and the term
    keeps it near them. Without example indices (a call outside a training run) it is cross-entropy alone."""

    source: ClassVar[str] = "Liu et al. 2020, arXiv 2007.00151"
    needs: ClassVar[frozenset[str]] = frozenset({"indices"})
    lam: float = 3.0
    beta: float = 0.7

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.lam >= 0, "lam", f"must be >= 0, got {self.lam}")
        check(0.0 <= self.beta < 1.0, "beta", f"must be in [0, 1), got {self.beta}")

    def for_training(self, context: TrainingContext) -> ElrRun:
        return ElrRun(self)  # a fresh memory per training run

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        return soft_cross_entropy(logits, labels)

    def per_example_in(self, run: ElrRun, logits: torch.Tensor, labels: torch.Tensor, step_frac: float,
                       indices: torch.Tensor | None = None) -> torch.Tensor:
        if indices is None:
            return self.per_example(logits, labels, step_frac)
        probs = torch.softmax(logits, dim=-1).clamp(1e-4, 1.0 - 1e-4)
        indices = indices.long().cpu()
        memory = run.memory(int(indices.max()) + 1, logits.shape[-1])
        with torch.no_grad():
            current = (probs / probs.sum(-1, keepdim=True)).detach().cpu()
            memory[indices] = self.beta * memory[indices] + (1.0 - self.beta) * current
        target = memory[indices].to(probs.device)
        regulariser = torch.log((1.0 - (target * probs).sum(-1)).clamp_min(1e-6))
        return soft_cross_entropy(logits, labels) + self.lam * regulariser


class ElrRun(LossRun):
    """ELR in one training run: each training row's running average of the student's predictions (a row never
    seen is zeros), grown as higher rows appear and saved with every checkpoint, so a resumed run continues it."""

    loss: EarlyLearningRegularization

    def __init__(self, loss: EarlyLearningRegularization):
        super().__init__(loss)
        self._memory: torch.Tensor | None = None

    def memory(self, rows: int, classes: int) -> torch.Tensor:
        """The memory [rows or more, classes], the rows not seen yet zeros."""
        current = self._memory
        if current is None or current.shape[0] < rows:
            grown = torch.zeros(max(rows, 1), classes)
            if current is not None:
                grown[: current.shape[0]] = current
            self._memory = grown
        return self._memory

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The memory, saved with a training's checkpoint so a resumed run continues it."""
        return {"memory": self._memory if self._memory is not None else torch.zeros(0, 0)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        memory = state["memory"]
        self._memory = memory.clone() if memory.numel() else None


@register_loss("coteach")
@dataclass(frozen=True)
class CoTeaching(Loss):
    """Co-teaching (Han et al. 2018): two students train side by side, and each learns only from the examples
    the *other* finds easiest (its ``1 - forget`` smallest cross-entropies in the batch). Deep networks fit clean
    labels before noisy ones, so small-loss examples are mostly clean, and two networks with different errors
    filter each other's mistakes instead of confirming their own. The fraction dropped ramps from 0 to ``forget``
    over the first ``ramp`` of training. ``forget`` None: the weak labels' own expected error, 1 - their mean
    confidence (the paper sets it to the known noise rate; a calibrated teacher's confidence estimates it).

    The two heads start from independent random initialisations (``nn.Linear``'s default, one seed each; see
    ``RoleModel.fit``), as the paper's two networks do: identical starts on the same features would make the twins
    one model. Predictions are the first network's (``predict: first``, as the paper evaluates one network), so a
    gain is co-teaching's and not an ensemble's; ``predict: mean`` averages the two networks' probabilities.

    Adapted: in probe mode the twins are linear heads on the same frozen features (one convex problem), so they
    differ only through their initialisations and the examples each drops for the other, much less than the
    paper's two deep networks."""

    source: ClassVar[str] = ("Han et al. 2018, arXiv 1804.06872; adapted: in probe mode the twins are linear heads "
                             "on shared features")
    needs: ClassVar[frozenset[str]] = frozenset({"twin"})
    forget: float | None = None
    ramp: float = 0.5
    predict: str = "first"  # what the trained twins predict: the first network's, or the two networks' mean

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.forget is None or 0.0 <= self.forget < 1.0, "forget",
              f"must be in [0, 1) (or null: the weak labels' expected error), got {self.forget}")
        check(0.0 <= self.ramp <= 1.0, "ramp", f"must be in [0, 1], got {self.ramp}")
        check(self.predict in ("first", "mean"), "predict", f"must be first or mean, got {self.predict!r}")

    @property
    def settled(self) -> float:
        return self.ramp

    @property
    def twin_prediction(self) -> str:
        return self.predict

    def for_training(self, context: TrainingContext) -> Loss:
        if self.forget is not None or context.labels is None:
            return self
        expected_error = 1.0 - float(np.asarray(context.labels).max(-1).mean())
        return dataclasses.replace(self, forget=min(max(expected_error, 0.0), 0.5))

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        k = labels.shape[-1]
        if logits.shape[-1] != 2 * k:
            raise ValueError(f"coteach trains two models: expected [B, {2 * k}] logits (a TwinModel), got "
                             f"{list(logits.shape)}")
        first, second = soft_cross_entropy(logits[:, :k], labels), soft_cross_entropy(logits[:, k:], labels)
        forget = (self.forget or 0.0) * ramp(step_frac, 0.0, self.ramp)
        keep = max(1, math.ceil((1.0 - forget) * len(labels)))
        # each model learns from the examples the other finds easiest (ties: earlier rows, stable sort)
        for_first = _smallest(second.detach(), keep)
        for_second = _smallest(first.detach(), keep)
        return (first * for_first + second * for_second) * (len(labels) / keep)


def _smallest(values: torch.Tensor, keep: int) -> torch.Tensor:
    """A 0/1 mask of the ``keep`` smallest ``values``."""
    mask = torch.zeros_like(values)
    mask[torch.argsort(values, stable=True)[:keep]] = 1.0
    return mask
