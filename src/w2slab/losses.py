"""Weak-to-strong losses (Burns et al. 2023): registered, typed, written for K classes, computed in fp32.

A loss is a frozen dataclass registered by name; its fields are its typed parameters, and an
instance is at once the loss's configuration (serialised into results and stage identities) and the
callable that computes it::

    @register_loss("focal")
    @dataclass(frozen=True)
    class Focal(Loss):
        gamma: float = 2.0
        def __call__(self, logits, labels, step_frac): ...

Every loss takes ``logits`` [B, K], soft ``labels`` [B, K] (rows sum to 1), ``step_frac``
(fraction of training done, in [0, 1]) and optional per-example ``weights`` [B], and returns the
(weighted) mean loss over the batch. A loss implements :meth:`Loss.per_example`; the base class
does the weighting, so every loss accepts weights (filtering and confidence-weighting methods use them).

- ``xent``: cross-entropy against the (soft) labels.
- ``logconf``: the auxiliary confidence loss. The target mixes the weak labels with the
  student's own *hardened* predictions: ``(1 - w) * weak + w * hard(student)``. For K=2 the
  hardening uses a threshold chosen so the fraction of predicted positives matches the weak
  labels' class balance in the batch (as in the paper); for K>2 the same idea, each class given as many
  of the batch's examples as the weak labels' mass on it (:func:`balanced_assignment`; the argmax when the
  batch is smaller than K, where per-batch class shares are noise). The weight ``w``
  warms up linearly from 0 to ``aux_weight`` over ``warmup_frac`` of training (default: the training
  run's own warm-up fraction). The reference code used ``w = step_frac`` during warm-up (so it
  reached only ``warmup_frac`` ≈ 5% of the maximum before jumping to it); :func:`logconf_weight` fixes that.
- ``product``: target proportional to ``student^beta * weak^alpha`` (detached).
- ``kl`` / ``reverse_kl``: KL(weak || student) (cross-entropy minus the weak labels' entropy: same
  gradient as ``xent``, zero at a perfect fit) and KL(student || weak) (mode-seeking).
- ``entropy``: ``logconf`` without hardening: the target mixes the weak labels with the student's own
  soft predictions (EleutherAI/w2s ``entropy``; its gradient lowers the student's entropy).
- ``window``: cross-entropy only on the examples where the student is unsure (max probability below
  ``1/K + radius``), summed and divided by the batch size (EleutherAI/w2s ``window``); ``radius`` is a
  number or ``midweak``, the batch's median weak-label confidence above chance.
- ``adaptive_conf``: logconf whose per-example weight comes from the student's and the teacher's
  cross-entropies (RAVEN's "V-sup"), with no schedule.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from w2slab.component import Component, registrar
from w2slab.registry import Registry
from w2slab.typed import check

LossFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]

#: The warm-up fraction of a training run (TrainConfig.warmup_frac) unless configured otherwise; also what a
#: loss whose warm-up follows the run's uses when it is called outside a run.
DEFAULT_WARMUP_FRAC = 0.1

LOSSES: Registry[type[Loss]] = Registry("loss")


@dataclass(frozen=True)
class Loss(Component):
    """Base of every registered loss: its dataclass fields are its typed, serialisable parameters."""

    registry: ClassVar[Registry] = LOSSES

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        """The loss of each example [B], from fp32 ``logits`` and ``labels`` (batch-level quantities such as
        logconf's threshold are computed over the whole batch first)."""
        raise NotImplementedError

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float = 0.0,
                 weights: torch.Tensor | None = None) -> torch.Tensor:
        return weighted_mean(self.per_example(logits.float(), labels.float(), step_frac), weights)

    def for_training(self, warmup_frac: float) -> Loss:
        """The loss as one training run uses it (fills parameters that default to the run's settings)."""
        return self


#: ``@register_loss("name")`` on a :class:`Loss` subclass (made a frozen dataclass if it is not one).
register_loss = registrar(Loss)


def make_loss(spec: str | dict | Loss) -> Loss:
    """A loss from a name, a ``{name: ..., param: ...}`` mapping or an instance (validated)."""
    return Loss.from_value(spec)


def with_params(loss: Loss, **params: Any) -> Loss:
    """A copy of ``loss`` with some parameters changed (validated like any configuration)."""
    return loss.with_params(**params)


def weighted_mean(values: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of per-example ``values``; with ``weights``, ``sum(w * v) / sum(w)`` (0 when every weight is 0)."""
    if weights is None:
        return values.mean()
    weights = weights.to(values)
    return (weights * values).sum() / weights.sum().clamp_min(1e-12)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy of ``logits`` against soft ``target`` rows: ``-sum_k t_k log p_k``."""
    return -(target * torch.log_softmax(logits, dim=-1)).sum(-1)


# --- the paper's losses -------------------------------------------------------------------------


@register_loss("xent")
@dataclass(frozen=True)
class CrossEntropy(Loss):
    """Cross-entropy with soft targets: ``-sum_k y_k log p_k`` (Burns et al. 2023)."""

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        return soft_cross_entropy(logits, labels)


def xent_loss(logits: torch.Tensor, labels: torch.Tensor, step_frac: float = 0.0) -> torch.Tensor:
    """Cross-entropy with soft targets (the function form of ``xent``)."""
    return CrossEntropy()(logits, labels, step_frac)


def logconf_weight(step_frac: float, aux_weight: float, warmup_frac: float) -> float:
    """Auxiliary weight: linear from 0 to ``aux_weight`` over the warm-up fraction, then constant."""
    if warmup_frac <= 0:
        return aux_weight
    return aux_weight * min(1.0, max(0.0, step_frac) / warmup_frac)


def harden_predictions(probs: torch.Tensor, weak_labels: torch.Tensor,
                       recent: torch.Tensor | None = None) -> torch.Tensor:
    """One-hot hardened student predictions.

    K=2: class 1 for the examples whose p(class 1) exceeds the quantile that makes the predicted-positive
    fraction equal the weak labels' mean positive mass: the quantile of this batch's p(class 0), or of
    ``recent`` p(class 0) values (a rolling buffer that includes this batch). K>2: the batch's examples shared
    out among the classes in the weak labels' proportions (:func:`balanced_assignment`), or the argmax when the
    batch has fewer examples than classes.
    """
    num_classes = probs.shape[-1]
    if num_classes == 2:
        positive_share = weak_labels[:, 1].mean()
        threshold = torch.quantile(probs[:, 0] if recent is None else recent.to(probs), positive_share)
        is_positive = probs[:, 0] < threshold
        return torch.stack([~is_positive, is_positive], dim=1).float()
    if probs.shape[0] < num_classes:
        return F.one_hot(probs.argmax(dim=-1), num_classes).float()
    return F.one_hot(balanced_assignment(probs, weak_labels.mean(dim=0)), num_classes).float()


def class_quota(n: int, share: torch.Tensor) -> list[int]:
    """``n`` examples shared out in proportion to ``share`` (largest remainders; the quotas sum to ``n``)."""
    exact = share.double().clamp_min(0) / share.double().clamp_min(0).sum() * n
    quota = exact.floor().long()
    for c in torch.argsort(exact - quota, descending=True, stable=True)[: n - int(quota.sum())]:
        quota[c] += 1
    return quota.tolist()


def balanced_assignment(probs: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
    """A class per example, class counts equal to :func:`class_quota` of ``share``: greedy over (example, class)
    pairs from the most probable down, an example taking its most probable class that still has room.

    The K-class form of the binary threshold: the student's hardened predictions keep the weak labels' class
    balance instead of collapsing onto the classes it currently favours.
    """
    n, k = probs.shape
    room = class_quota(n, share)
    order = torch.argsort(probs.detach().reshape(-1).float().cpu(), descending=True, stable=True).tolist()
    assigned = [-1] * n
    left = n
    for flat in order:
        row, cls = divmod(flat, k)
        if assigned[row] < 0 and room[cls] > 0:
            assigned[row], room[cls] = cls, room[cls] - 1
            left -= 1
            if not left:
                break
    return torch.tensor(assigned, device=probs.device)


def balance_labels(labels: torch.Tensor) -> torch.Tensor:
    """Binary soft labels with the batch's mean log-odds subtracted (EleutherAI/w2s ``balance_batch``): a small
    batch that happens to lean to one class no longer pulls the student's threshold with it."""
    logodds = torch.log(labels[:, 1] + 1e-7) - torch.log(labels[:, 0] + 1e-7)
    positive = torch.sigmoid(logodds - logodds.mean())
    return torch.stack([1 - positive, positive], dim=1)


@register_loss("logconf")
@dataclass(frozen=True)
class LogConfLoss(Loss):
    """Auxiliary confidence loss (Burns et al. 2023, eq. 1): cross-entropy against ``(1 - w) y + w hard(p)``.

    ``balance_batch`` (binary): subtract the batch's mean log-odds from the weak labels, so the hardening
    quantile is ~50% (EleutherAI/w2s), for small batches whose class balance is noise. ``buffer`` > 0: the
    threshold is the quantile of the student's last ``buffer`` predictions, this batch's included
    (EleutherAI/w2s's rolling buffer, there the batch size 32), not of this batch alone; a small batch
    then no longer decides its own threshold. The buffer lives with one training run (a resumed run
    starts it empty).
    """

    aux_weight: float = 0.5  # maximum weight of the student's hardened predictions in the target
    warmup_frac: float | None = None  # warm-up of that weight, as a fraction of training; None: the run's warm-up
    balance_batch: bool = False
    buffer: int = 0  # predictions the hardening threshold is computed over (0: this batch's)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.aux_weight <= 1.0, "aux_weight", f"must be in [0, 1], got {self.aux_weight}")
        check(self.warmup_frac is None or 0.0 <= self.warmup_frac <= 1.0, "warmup_frac",
              f"must be in [0, 1] or null, got {self.warmup_frac}")
        check(self.buffer >= 0, "buffer", f"must be >= 0, got {self.buffer}")

    def for_training(self, warmup_frac: float) -> Loss:
        loss = self if self.warmup_frac is not None else dataclasses.replace(self, warmup_frac=warmup_frac)
        if self.buffer:  # a fresh buffer per training run: state, not configuration
            loss = dataclasses.replace(loss)
            object.__setattr__(loss, "_recent", collections.deque(maxlen=self.buffer))
        return loss

    def recent(self, probs: torch.Tensor) -> torch.Tensor | None:
        """This batch's p(class 0) pushed into the rolling buffer, and the buffer (None without one)."""
        if not self.buffer or probs.shape[-1] != 2:
            return None
        if "_recent" not in self.__dict__:  # called outside a training run: a buffer for this instance
            object.__setattr__(self, "_recent", collections.deque(maxlen=self.buffer))
        self._recent.extend(probs[:, 0].tolist())
        return torch.tensor(list(self._recent))

    def weight(self, step_frac: float) -> float:
        warmup = DEFAULT_WARMUP_FRAC if self.warmup_frac is None else self.warmup_frac
        return logconf_weight(step_frac, self.aux_weight, warmup)

    def own_target(self, probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """What the student's own predictions contribute to the target: hardened here."""
        return harden_predictions(probs, labels, self.recent(probs))

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        if self.balance_batch and labels.shape[-1] == 2:
            labels = balance_labels(labels)
        weight = self.weight(step_frac)
        own = self.own_target(torch.softmax(logits, dim=-1).detach(), labels)
        return soft_cross_entropy(logits, (1.0 - weight) * labels + weight * own)


@register_loss("entropy")
@dataclass(frozen=True)
class EntropyLoss(LogConfLoss):
    """``logconf`` without hardening: cross-entropy against ``(1 - w) y + w p`` with the student's soft,
    detached predictions ``p`` (EleutherAI/w2s ``entropy``): the auxiliary term rewards confidence without
    the batch-quantile threshold."""

    def own_target(self, probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return probs


@register_loss("adaptive_conf")
@dataclass(frozen=True)
class AdaptiveConfidenceLoss(Loss):
    """Adaptive confidence ("V-sup", RAVEN, Jeon et al. 2025): logconf with a per-example weight from the
    student's and teacher's cross-entropies instead of a schedule.

    With the student's predicted class ``s`` and the weak label's class ``t``, ``alpha = exp(CE(p, s)) /
    (exp(CE(p, s)) + exp(CE(p, t))) = p_t / (p_s + p_t)`` (detached), and the target is ``(1 - alpha) y +
    alpha onehot(s)``. Where student and teacher agree alpha is 1/2; where a confident student disagrees
    alpha is small and the target leans to the teacher, so the term mostly sharpens agreement.
    """

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        probs = torch.softmax(logits, dim=-1).detach()
        own, teacher = probs.argmax(-1), labels.argmax(-1)
        p_own, p_teacher = probs.gather(1, own[:, None])[:, 0], probs.gather(1, teacher[:, None])[:, 0]
        alpha = (p_teacher / (p_own + p_teacher).clamp_min(1e-12))[:, None]
        target = (1.0 - alpha) * labels + alpha * F.one_hot(own, labels.shape[-1]).float()
        return soft_cross_entropy(logits, target)


@register_loss("product")
@dataclass(frozen=True)
class ProductLoss(Loss):
    """Cross-entropy against the detached, renormalised product ``p^beta y^alpha`` (Burns et al. 2023 code)."""

    alpha: float = 1.0  # exponent of the weak labels
    beta: float = 1.0  # exponent of the student's predictions

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        probs = torch.softmax(logits, dim=-1)
        target = probs.pow(self.beta) * labels.pow(self.alpha)
        target = (target / target.sum(dim=-1, keepdim=True).clamp_min(1e-12)).detach()
        return soft_cross_entropy(logits, target)


# --- more losses from the literature ------------------------------------------------------------

_EPS = 1e-7


@register_loss("kl")
@dataclass(frozen=True)
class KLLoss(Loss):
    """``KL(y || p) = sum_k y_k (log y_k - log p_k)``: cross-entropy minus the weak labels' entropy (the same
    gradient as ``xent``, but 0 at a perfect fit, so values compare across teachers; EleutherAI/weak-to-strong)."""

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        entropy = -(labels * torch.log(labels.clamp_min(_EPS))).sum(-1)
        return soft_cross_entropy(logits, labels) - entropy


@register_loss("reverse_kl")
@dataclass(frozen=True)
class ReverseKLLoss(Loss):
    """``KL(p || y) = sum_k p_k (log p_k - log y_k)``, weak labels clamped at 1e-7: mode-seeking, so the
    student may put its mass on one of the classes a hesitant teacher spreads over."""

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        log_probs = torch.log_softmax(logits, dim=-1)
        return (log_probs.exp() * (log_probs - torch.log(labels.clamp_min(_EPS)))).sum(-1)


@register_loss("window")
@dataclass(frozen=True)
class WindowLoss(Loss):
    """Cross-entropy only where the student is unsure, ``max_k p_k < 1/K + radius``, summed over those examples
    and divided by the batch size (EleutherAI/w2s ``window``): confident predictions are left alone even where
    the teacher disagrees. ``radius: midweak`` uses the batch's median weak confidence above chance,
    ``median(max_k y_k) - 1/K``."""

    radius: float | str = 0.15

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.radius == "midweak" or (not isinstance(self.radius, str) and 0.0 <= self.radius <= 1.0),
              "radius", f"must be a number in [0, 1] or 'midweak', got {self.radius!r}")

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        chance = 1.0 / logits.shape[-1]
        radius = (labels.max(-1).values.median() - chance) if self.radius == "midweak" else self.radius
        unsure = torch.softmax(logits, dim=-1).detach().max(-1).values < chance + radius
        return soft_cross_entropy(logits, labels) * unsure.float()
