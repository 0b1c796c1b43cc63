"""Weak-to-strong losses (Burns et al. 2023), written for K classes and computed in fp32.

Every loss takes ``logits`` [B, K], soft ``labels`` [B, K] (rows sum to 1) and ``step_frac``
(fraction of training done, in [0, 1]) and returns the mean loss over the batch.

- ``xent``: cross-entropy against the (soft) labels.
- ``logconf``: the auxiliary confidence loss. The target mixes the weak labels with the
  student's own *hardened* predictions: ``(1 - w) * weak + w * hard(student)``. For K=2 the
  hardening uses a threshold chosen so the fraction of predicted positives matches the weak
  labels' class balance in the batch (as in the paper); for K>2 it is the argmax. The weight ``w``
  warms up linearly from 0 to ``aux_weight`` over ``warmup_frac`` of training. The reference code
  used ``w = step_frac`` during warm-up (so it reached only ``warmup_frac`` ≈ 5% of the maximum
  before jumping to it); :func:`logconf_weight` fixes that.
- ``product``: target proportional to ``student^beta * weak^alpha`` (detached).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def xent_loss(logits: torch.Tensor, labels: torch.Tensor, step_frac: float = 0.0) -> torch.Tensor:
    """Cross-entropy with soft targets."""
    return F.cross_entropy(logits.float(), labels.float())


def logconf_weight(step_frac: float, aux_weight: float, warmup_frac: float) -> float:
    """Auxiliary weight: linear from 0 to ``aux_weight`` over the warm-up fraction, then constant."""
    if warmup_frac <= 0:
        return aux_weight
    return aux_weight * min(1.0, max(0.0, step_frac) / warmup_frac)


def harden_predictions(probs: torch.Tensor, weak_labels: torch.Tensor) -> torch.Tensor:
    """One-hot hardened student predictions.

    K=2: class 1 for the examples whose p(class 1) exceeds the batch quantile that makes the
    predicted-positive fraction equal the weak labels' mean positive mass. K>2: argmax.
    """
    num_classes = probs.shape[-1]
    if num_classes == 2:
        positive_share = weak_labels[:, 1].mean()
        threshold = torch.quantile(probs[:, 0], positive_share)
        is_positive = probs[:, 0] < threshold
        return torch.stack([~is_positive, is_positive], dim=1).float()
    return F.one_hot(probs.argmax(dim=-1), num_classes).float()


@dataclass(frozen=True)
class LogConfLoss:
    aux_weight: float = 0.5
    warmup_frac: float = 0.2

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        logits, labels = logits.float(), labels.float()
        weight = logconf_weight(step_frac, self.aux_weight, self.warmup_frac)
        hard = harden_predictions(torch.softmax(logits, dim=-1).detach(), labels)
        target = (1.0 - weight) * labels + weight * hard
        return F.cross_entropy(logits, target)


@dataclass(frozen=True)
class ProductLoss:
    alpha: float = 1.0  # exponent of the weak labels
    beta: float = 1.0  # exponent of the student's predictions

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        logits, labels = logits.float(), labels.float()
        probs = torch.softmax(logits, dim=-1)
        target = probs.pow(self.beta) * labels.pow(self.alpha)
        target = (target / target.sum(dim=-1, keepdim=True).clamp_min(1e-12)).detach()
        return F.cross_entropy(logits, target)


LOSSES = ("xent", "logconf", "product")


def make_loss(name: str, *, aux_weight: float = 0.5, warmup_frac: float = 0.2) -> LossFn:
    """Build a loss by name; ``warmup_frac`` is the logconf weight's warm-up (the run's warm-up)."""
    if name == "xent":
        return xent_loss
    if name == "logconf":
        return LogConfLoss(aux_weight=aux_weight, warmup_frac=warmup_frac)
    if name == "product":
        return ProductLoss()
    from w2slab.errors import W2SError

    raise W2SError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")
