"""More weak-to-strong objectives from the literature.

- ``kl`` / ``reverse_kl``: KL(weak || student) (cross-entropy minus the weak labels' entropy: same
  gradient as ``xent``, zero at a perfect fit) and KL(student || weak) (mode-seeking).
- ``window``: cross-entropy only on the examples where the student is unsure (max probability below
  ``1/K + radius``), summed and divided by the batch size (EleutherAI/w2s ``window``); ``radius`` is a
  number or ``midweak``, the median weak-label confidence above chance over the whole training set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from w2slab.lazy import LazyModule
from w2slab.losses.base import EPS, Loss, LossRun, TrainingContext, register_loss, soft_cross_entropy
from w2slab.typed import check

# torch on first use: validating a config or printing `w2s --help` needs no tensor (w2slab.lazy)
torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")


@register_loss("kl")
@dataclass(frozen=True)
class KLLoss(Loss):
    """``KL(y || p) = sum_k y_k (log y_k - log p_k)``: cross-entropy minus the weak labels' entropy (the same
    gradient as ``xent``, but 0 at a perfect fit, so values compare across teachers; EleutherAI/weak-to-strong)."""

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        entropy = -(labels * torch.log(labels.clamp_min(EPS))).sum(-1)
        return soft_cross_entropy(logits, labels) - entropy


@register_loss("reverse_kl")
@dataclass(frozen=True)
class ReverseKLLoss(Loss):
    """``KL(p || y) = sum_k p_k (log p_k - log y_k)``, weak labels clamped at 1e-7: mode-seeking, so the
    student may put its mass on one of the classes a hesitant teacher spreads over."""

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        log_probs = torch.log_softmax(logits, dim=-1)
        return (log_probs.exp() * (log_probs - torch.log(labels.clamp_min(EPS)))).sum(-1)


@register_loss("window")
@dataclass(frozen=True)
class WindowLoss(Loss):
    """Cross-entropy only where the student is unsure, ``max_k p_k < 1/K + radius``, summed over those examples
    and divided by the batch size (EleutherAI/w2s ``window``): confident predictions are left alone even where
    the teacher disagrees. ``radius: midweak`` is the median weak-label confidence above chance,
    ``median(max_k y_k) - 1/K``, computed once over the whole training set when the run starts (over the batch
    only when the loss is called outside a run)."""

    source: ClassVar[str] = "EleutherAI/w2s"

    radius: float | str = 0.15

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.radius == "midweak" or (not isinstance(self.radius, str) and 0.0 <= self.radius <= 1.0),
              "radius", f"must be a number in [0, 1] or 'midweak', got {self.radius!r}")

    def for_training(self, context: TrainingContext) -> Loss | WindowRun:
        if self.radius != "midweak" or context.labels is None or not len(context.labels):
            return self
        labels = np.asarray(context.labels, dtype=np.float64)
        return WindowRun(self, float(np.median(labels.max(axis=1)) - 1.0 / labels.shape[1]))

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        radius = self.radius
        if radius == "midweak":  # outside a training run: this batch's
            radius = float(labels.max(-1).values.median() - 1.0 / logits.shape[-1])
        return self.unsure_cross_entropy(logits, labels, radius)

    def per_example_in(self, run: WindowRun, logits: torch.Tensor, labels: torch.Tensor, step_frac: float,
                       indices: torch.Tensor | None = None) -> torch.Tensor:
        return self.unsure_cross_entropy(logits, labels, run.radius)

    @staticmethod
    def unsure_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, radius: float) -> torch.Tensor:
        """Cross-entropy where the student's top probability is below ``1/K + radius``, 0 elsewhere."""
        chance = 1.0 / logits.shape[-1]
        unsure = torch.softmax(logits, dim=-1).detach().max(-1).values < chance + radius
        return soft_cross_entropy(logits, labels) * unsure.float()


class WindowRun(LossRun):
    """``window`` with ``radius: midweak`` in one training run: the radius computed once over the run's training
    targets (the median weak-label confidence above chance), not over each batch."""

    loss: WindowLoss

    def __init__(self, loss: WindowLoss, radius: float):
        super().__init__(loss)
        self.radius = radius
