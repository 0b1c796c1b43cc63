"""Losses that learn from several teachers at once: labels ``[B, M, K]``, one row per teacher (an ``ensemble``
method's members), where every other loss gets their mean.

- ``raven``: RAVEN's learned mixture of the teachers (mlbio-epfl/raven).
- ``edl``: the evidential multi-teacher loss (Cui et al. 2024).
- ``csl``: co-supervised learning (Liu & Alahi 2024): each example follows the teacher closest to the student.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from w2slab.lazy import LazyModule
from w2slab.losses.base import EPS, Loss, LossRun, TrainingContext, register_loss, soft_cross_entropy
from w2slab.typed import check

# torch on first use: validating a config or printing `w2s --help` needs no tensor (w2slab.lazy)
torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")


@register_loss("raven")
@dataclass(frozen=True)
class Raven(Loss):
    """RAVEN (mlbio-epfl/raven, NeurIPS 2025): cross-entropy against a learned mixture of the teachers' soft labels,
    ``q = sum_m w_m p_m`` (renormalised), with one weight per teacher on the simplex. After each step the weights
    take a plain SGD step (``lr_weights``) on the same loss with the student's logits held fixed, are clipped at
    1e-6 and renormalised, so teachers the student can fit gain weight. For the first ``warmup`` of training the
    weights stay uniform and only examples all teachers agree on count (the reference's easy-sample start; default
    .2, as in the reference's configs). Learned weights are written beside the student (``loss_report.json``)."""

    source: ClassVar[str] = "RAVEN, mlbio-epfl/raven (NeurIPS 2025); warm-up .2 as in its configs"
    needs: ClassVar[frozenset[str]] = frozenset({"teachers"})
    lr_weights: float = 1e-2
    warmup: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.lr_weights >= 0, "lr_weights", f"must be >= 0, got {self.lr_weights}")
        check(0.0 <= self.warmup < 1.0, "warmup", f"must be in [0, 1), got {self.warmup}")

    def for_training(self, context: TrainingContext) -> RavenRun:
        return RavenRun(self)  # fresh weights per training run

    @property
    def settled(self) -> float:
        return self.warmup

    @staticmethod
    def mixture(labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        mixed = (weights.to(labels)[None, :, None] * labels).sum(1)
        return mixed / mixed.sum(-1, keepdim=True).clamp_min(1e-12)

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        """Outside a training run: one batch of a run of its own (uniform weights)."""
        return self.for_training(TrainingContext()).per_example(logits, labels, step_frac)

    def per_example_in(self, run: RavenRun, logits: torch.Tensor, labels: torch.Tensor, step_frac: float,
                       indices: torch.Tensor | None = None) -> torch.Tensor:
        _check_teachers(self, logits, labels)
        weights = run.weights(labels.shape[1])
        warming = step_frac < self.warmup
        votes = labels.argmax(-1)
        mask = (votes == votes[:, :1]).all(-1).float() if warming else torch.ones(len(labels)).to(logits)
        values = mask.to(logits) * soft_cross_entropy(logits, self.mixture(labels, weights))
        if not warming and self.lr_weights > 0 and torch.is_grad_enabled():
            variable = weights.clone().requires_grad_(True)
            with torch.enable_grad():
                objective = (mask.to(logits) * soft_cross_entropy(logits.detach(), self.mixture(labels, variable))
                             ).mean()
                (gradient,) = torch.autograd.grad(objective, variable)
            updated = (weights - self.lr_weights * gradient.cpu()).clamp_min(1e-6)
            run.teacher_weights = updated / updated.sum()
        return values


class RavenRun(LossRun):
    """RAVEN in one training run: the teacher weights it learns (uniform until the first update), saved with every
    checkpoint so a resumed run continues them, and written beside the student when the run ends."""

    loss: Raven

    def __init__(self, loss: Raven):
        super().__init__(loss)
        self.teacher_weights: torch.Tensor | None = None

    def weights(self, teachers: int) -> torch.Tensor:
        """The current weights of ``teachers`` teachers (uniform when none are learned yet for that many)."""
        if self.teacher_weights is None or len(self.teacher_weights) != teachers:
            self.teacher_weights = torch.full((teachers,), 1.0 / teachers)
        return self.teacher_weights

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"weights": self.teacher_weights if self.teacher_weights is not None else torch.zeros(0)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.teacher_weights = state["weights"].clone() if state["weights"].numel() else None

    def report(self) -> dict[str, Any] | None:
        weights = self.teacher_weights
        return None if weights is None else {"teacher_weights": [round(float(w), 6) for w in weights]}


def dirichlet_kl_to_uniform(alpha: torch.Tensor) -> torch.Tensor:
    """KL(Dir(alpha) || Dir(1, ..., 1)) per row."""
    total = alpha.sum(-1)
    k = alpha.shape[-1]
    return (torch.lgamma(total) - torch.lgamma(alpha).sum(-1) - math.lgamma(k)
            + ((alpha - 1.0) * (torch.digamma(alpha) - torch.digamma(total)[..., None])).sum(-1))


def evidential_loss(logits: torch.Tensor, target: torch.Tensor, anneal: float) -> torch.Tensor:
    """The evidential (Dirichlet) loss of ``target`` rows [B, K]: evidence ``softplus(logits)``, ``alpha`` = evidence +
    1, ``sum_k y_k (log S - log alpha_k)`` plus ``anneal`` times the KL to the uniform Dirichlet of the evidence left
    on the wrong classes (``alpha~ = y + (1 - y) alpha``). The reference's evidence is ``relu(logits)``, which has no
    gradient at all at the zero logits of w2slab's zero-initialised heads (training never starts); softplus is the
    smooth evidence function of the same family (Sensoy et al. 2018)."""
    alpha = torch.nn.functional.softplus(logits) + 1.0
    strength = alpha.sum(-1, keepdim=True)
    fit = (target * (torch.log(strength) - torch.log(alpha))).sum(-1)
    return fit + anneal * dirichlet_kl_to_uniform(target + (1.0 - target) * alpha)


@register_loss("edl")
@dataclass(frozen=True)
class EvidentialMultiTeacher(Loss):
    """Evidential multi-teacher loss (Cui et al. 2024, arXiv 2406.03199, as in RAVEN's ``rw2s/losses.py``): the
    student's logits are Dirichlet evidence; each teacher's argmax (one-hot) label is fit by the evidential loss.

    The loss is summed over teachers, and ``gamma`` of it fits the student's own hard prediction; the KL term that
    removes misleading evidence anneals in linearly over training. As in the reference, the targets are one-hot: the
    KL term penalises the evidence on the classes where the target is 0, so a soft target (``soft: true``, the
    teachers' probabilities as they are) would also penalise evidence for the teacher's own class. Predictions are
    the logits' argmax, as for every loss. Adapted: softplus evidence instead of the reference's ReLU (see
    :func:`evidential_loss`)."""

    source: ClassVar[str] = ("Cui et al. 2024, arXiv 2406.03199 (evidential loss as in mlbio-epfl/raven); adapted: "
                             "softplus evidence")
    needs: ClassVar[frozenset[str]] = frozenset({"teachers"})
    gamma: float = 0.5
    soft: bool = False  # fit each teacher's soft label instead of its argmax (not the reference's loss)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.gamma <= 1.0, "gamma", f"must be in [0, 1], got {self.gamma}")

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        _check_teachers(self, logits, labels)
        anneal = float(step_frac)
        targets = labels if self.soft else F.one_hot(labels.argmax(-1), labels.shape[-1]).to(labels)
        teachers = sum(evidential_loss(logits, targets[:, m], anneal) for m in range(labels.shape[1]))
        own = torch.nn.functional.one_hot(logits.detach().argmax(-1), logits.shape[-1]).to(logits)
        return (1.0 - self.gamma) * teachers + self.gamma * evidential_loss(logits, own, anneal)


@register_loss("csl")
@dataclass(frozen=True)
class CoSupervised(Loss):
    """Co-supervised learning (Liu & Alahi 2024, arXiv 2402.15505), within one training: each example follows the
    teacher closest to the student, ``argmin_m KL(student || teacher_m)``, if the two name the same class.

    After ``warmup`` on the teachers' mean, each example is assigned the teacher the student agrees with most (the
    E-step, the reference's ``KL(student || teacher)``), and an example whose assigned teacher names another class
    than the student's own prediction fails the consistency check and is dropped (weight 0).

    Adapted, in three ways: (1) the paper alternates these steps over rounds of training with a growing student;
    here they run at every step; (2) the reference's consistency filter keeps a rank-based share of the examples
    (those where student and teacher agree best), here any top-1 disagreement drops the example; (3) CSL assumes
    teachers that are specialists of different domains, and w2slab's ensemble members are generalists (the weak
    model on bootstrap resamples of weak-train, or other weak models, all trained on every domain), so assignment
    has less to find."""

    source: ClassVar[str] = ("Liu & Alahi 2024, arXiv 2402.15505; adapted: assignment every step, top-1 consistency, "
                             "generalist teachers")
    needs: ClassVar[frozenset[str]] = frozenset({"teachers"})
    warmup: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.warmup < 1.0, "warmup", f"must be in [0, 1), got {self.warmup}")

    @property
    def settled(self) -> float:
        return self.warmup

    def assign(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(each example's assigned teacher label [B, K], whether it passes the consistency check [B]): the teacher
        with the least ``KL(student || teacher)`` (teachers' zero probabilities clamped at 1e-7)."""
        log_probs = torch.log_softmax(logits.detach(), -1)[:, None, :]  # [B, 1, K]
        distance = (log_probs.exp() * (log_probs - torch.log(labels.clamp_min(EPS)))).sum(-1)  # [B, M]
        chosen = labels[torch.arange(len(labels)), distance.argmin(-1)]
        return chosen, chosen.argmax(-1) == logits.detach().argmax(-1)

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        _check_teachers(self, logits, labels)
        if step_frac < self.warmup:
            return soft_cross_entropy(logits, labels.mean(1))
        chosen, consistent = self.assign(logits, labels)
        return consistent.to(logits) * soft_cross_entropy(logits, chosen)


def _check_teachers(loss: Loss, logits: torch.Tensor, labels: torch.Tensor) -> None:
    if labels.dim() != 3 or labels.shape[-1] != logits.shape[-1]:
        raise ValueError(f"{loss.name} learns from several teachers: expected labels [B, M, {logits.shape[-1]}] "
                         f"(use it with --method ensemble), got {list(labels.shape)}")
