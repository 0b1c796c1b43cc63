"""The paper's losses (Burns et al. 2023) and the relatives that share their machinery.

- ``xent``: cross-entropy against the (soft) labels.
- ``logconf``: the auxiliary confidence loss. The target mixes the weak labels with the
  student's own *hardened* predictions: ``(1 - w) * weak + w * hard(student)``. For K=2 the
  hardening uses a threshold chosen so the fraction of predicted positives matches the weak
  labels' class balance in the batch (as in the paper); for K>2 the same idea, each class given as many
  of the batch's examples as the weak labels' mass on it (:func:`balanced_assignment`; the argmax when the
  batch is smaller than K, where per-batch class shares are noise). Quotas are exact (``class_quota``) and
  ties (a zero head at the first step, equal probabilities) are broken at random, seeded by the run's seed
  and the step, never by index order. The weight ``w`` is 0 during the learning-rate warm-up, then ramps
  linearly to ``aux_weight`` over ``ramp_frac`` of training (default .2, the paper's "first 20% of
  training"). The reference code used ``w = step_frac`` during warm-up (so it reached only ``warmup_frac`` of the
  maximum, 10% at the default warm-up, before jumping to it); ramping within the lr warm-up instead (10%, ~6 steps
  of the default run) would lock the target onto the student's own hardened guesses before it has learned.
- ``entropy``: ``logconf`` without hardening: the target mixes the weak labels with the student's own
  soft predictions (EleutherAI/w2s ``entropy``). The predictions are detached, so its gradient is exactly
  ``(1 - w)`` times ``xent``'s: it scales the step down as ``w`` ramps in and does not lower the student's entropy.
- ``adaptive_conf``: logconf whose per-example weight comes from the student's and the teacher's
  cross-entropies (RAVEN's "V-sup"), ramped in like logconf's.
- ``product``: target proportional to ``student^beta * weak^alpha`` (detached).
"""

from __future__ import annotations

import collections
import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from w2slab.errors import ConfigError
from w2slab.lazy import LazyModule
from w2slab.losses.base import (
    DEFAULT_RAMP_FRAC,
    DEFAULT_WARMUP_FRAC,
    Loss,
    LossRun,
    TrainingContext,
    ramp,
    random_argmax,
    register_loss,
    soft_cross_entropy,
    step_generator,
)
from w2slab.typed import check

# torch on first use: validating a config or printing `w2s --help` needs no tensor (w2slab.lazy)
torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")


@register_loss("xent")
@dataclass(frozen=True)
class CrossEntropy(Loss):
    """Cross-entropy with soft targets: ``-sum_k y_k log p_k`` (Burns et al. 2023)."""

    source: ClassVar[str] = "Burns et al. 2023"

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        return soft_cross_entropy(logits, labels)


@dataclass(frozen=True)
class FixedWeightCrossEntropy(CrossEntropy):
    """Cross-entropy under a fixed distribution of weights over the training rows (boosting's): a batch's loss is
    ``mean(w * v)``, not ``sum(w * v) / sum(w)``.

    Every other loss renormalises the weights within each batch (right for 0/1 filtering weights: the mean over the
    kept rows), which makes a batch of low-weight rows count as much as a batch of high-weight ones and so flattens
    a boosting distribution. With weights whose mean over the whole training set is 1, the expected batch loss here
    is the weighted loss over the set, as AdaBoost's weighted training asks. Not registered: an internal of
    ``ensemw2s`` (its name stays ``xent``)."""

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float = 0.0,
                 weights: torch.Tensor | None = None, indices: torch.Tensor | None = None) -> torch.Tensor:
        values = self.per_example(logits.float(), labels.float(), step_frac)
        return values.mean() if weights is None else (weights.to(values) * values).mean()


def harden_predictions(probs: torch.Tensor, weak_labels: torch.Tensor, recent: torch.Tensor | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """One-hot hardened student predictions with the weak labels' class balance.

    Exactly ``class_quota(B, mean weak label)`` examples per class (for K=2: ``round(share * B)`` positives, the
    examples most probable for class 1), equal probabilities ordered at random by ``generator``. With a rolling
    buffer ``recent`` (K=2), class 1 for the examples whose p(class 0) lies below the quantile of the recent
    predictions (w2slab's own variant: the EleutherAI/w2s reference takes the quantile over the current batch). The
    argmax when the batch has fewer examples than classes (K > 2).
    """
    num_classes = probs.shape[-1]
    if num_classes == 2 and recent is not None:
        threshold = torch.quantile(recent.to(probs), weak_labels[:, 1].mean())
        is_positive = probs[:, 0] < threshold
        return torch.stack([~is_positive, is_positive], dim=1).float()
    if probs.shape[0] < num_classes:
        return F.one_hot(random_argmax(probs, generator), num_classes).float()
    return F.one_hot(balanced_assignment(probs, weak_labels.mean(dim=0), generator), num_classes).float()


def class_quota(n: int, share: torch.Tensor) -> list[int]:
    """``n`` examples shared out in proportion to ``share`` (largest remainders; the quotas sum to ``n``)."""
    exact = share.double().clamp_min(0) / share.double().clamp_min(0).sum() * n
    quota = exact.floor().long()
    for c in torch.argsort(exact - quota, descending=True, stable=True)[: n - int(quota.sum())]:
        quota[c] += 1
    return quota.tolist()


def balanced_assignment(probs: torch.Tensor, share: torch.Tensor,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """A class per example, class counts equal to :func:`class_quota` of ``share``: greedy over (example, class)
    pairs from the most probable down, an example taking its most probable class that still has room; pairs of
    equal probability in a random order (``generator``), so a tie never favours low indices or class 0.

    The K-class form of the binary threshold: the student's hardened predictions keep the weak labels' class
    balance instead of collapsing onto the classes it currently favours.
    """
    n, k = probs.shape
    room = class_quota(n, share)
    flat = probs.detach().reshape(-1).float().cpu()
    shuffle = torch.randperm(flat.numel(), generator=generator)
    order = shuffle[torch.argsort(flat[shuffle], descending=True, stable=True)].tolist()
    assigned = [-1] * n
    left = n
    for flat_index in order:
        row, cls = divmod(flat_index, k)
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


@dataclass(frozen=True)
class RampedLoss(Loss):
    """A loss with an auxiliary term that ramps in after the learning-rate warm-up (:func:`ramp`).

    ``ramp_start``: where the ramp begins, as a fraction of training (None: the run's lr warm-up); ``ramp_frac``:
    how long it takes. A training run calls a :class:`RampedRun`, which holds the run's seed (for the loss's random
    tie-breaking); a subclass computes its loss in :meth:`per_example_in`, from the run.
    """

    ramp_frac: float = DEFAULT_RAMP_FRAC
    ramp_start: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.ramp_frac <= 1.0, "ramp_frac", f"must be in [0, 1], got {self.ramp_frac}")
        check(self.ramp_start is None or 0.0 <= self.ramp_start <= 1.0, "ramp_start",
              f"must be in [0, 1] or null (after the lr warm-up), got {self.ramp_start}")

    def for_training(self, context: TrainingContext) -> RampedRun:
        return RampedRun(self.after_warmup(context), context.seed)

    def after_warmup(self, context: TrainingContext) -> RampedLoss:
        """A copy whose ramp starts where configured, or after this run's learning-rate warm-up."""
        return dataclasses.replace(self, ramp_start=context.warmup_frac if self.ramp_start is None else self.ramp_start)

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        """Outside a training run: one batch of a run of its own (seed 0, the ramp after the default warm-up)."""
        return self.for_training(TrainingContext()).per_example(logits, labels, step_frac)

    def ramp_factor(self, step_frac: float) -> float:
        start = DEFAULT_WARMUP_FRAC if self.ramp_start is None else self.ramp_start
        return ramp(step_frac, start, self.ramp_frac)

    def per_example_in(self, run: RampedRun, logits: torch.Tensor, labels: torch.Tensor, step_frac: float,
                       indices: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


class RampedRun(LossRun):
    """A ramped loss in one training run: the run's seed, which fixes its random tie-breaking at each step (a
    resumed run repeats it exactly), and logconf's ``buffer`` of the student's recent predictions (empty when a run
    starts, a resumed one included: it is not checkpointed)."""

    loss: RampedLoss

    def __init__(self, loss: RampedLoss, seed: int, buffer: int = 0):
        super().__init__(loss)
        self.seed = int(seed)
        self.recent_predictions: collections.deque[float] | None = (collections.deque(maxlen=buffer) if buffer
                                                                     else None)

    def generator(self, step_frac: float) -> torch.Generator:
        return step_generator(self.seed, step_frac)

    def recent(self, probs: torch.Tensor) -> torch.Tensor | None:
        """This batch's p(class 0) pushed into the rolling buffer, and the buffer (None without one)."""
        if self.recent_predictions is None or probs.shape[-1] != 2:
            return None
        self.recent_predictions.extend(probs[:, 0].tolist())
        return torch.tensor(list(self.recent_predictions))


@register_loss("logconf")
@dataclass(frozen=True)
class LogConfLoss(RampedLoss):
    """Auxiliary confidence loss (Burns et al. 2023, eq. 1): cross-entropy against ``(1 - w) y + w hard(p)``.

    ``w`` ramps from 0 to ``aux_weight`` over ``ramp_frac`` of training, after the lr warm-up.
    ``balance_batch`` (binary only): subtract the batch's mean log-odds from the weak labels, so the hardening
    quantile is ~50% (EleutherAI/w2s), for small batches whose class balance is noise. ``buffer`` (binary only,
    larger than the batch; w2slab's own variant, not the reference's: EleutherAI/w2s computes the threshold over
    the current batch): the threshold is the quantile of the student's last ``buffer`` predictions, this batch's
    included, over past minibatches; a small batch then no longer decides its own threshold. The buffer lives
    with one training run (a resumed run starts it empty).
    """

    source: ClassVar[str] = "Burns et al. 2023 (auxiliary confidence loss)"

    aux_weight: float = 0.5  # maximum weight of the student's hardened predictions in the target
    balance_batch: bool = False
    buffer: int = 0  # predictions the hardening threshold is computed over (0: this batch's)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.aux_weight <= 1.0, "aux_weight", f"must be in [0, 1], got {self.aux_weight}")
        check(self.buffer >= 0, "buffer", f"must be >= 0, got {self.buffer}")

    def check_training(self, num_classes: int, batch_size: int) -> None:
        binary_only = [name for name, on in (("buffer", self.buffer), ("balance_batch", self.balance_batch)) if on]
        if num_classes != 2 and binary_only:
            raise ConfigError(f"{self.name}.{binary_only[0]}: works on two classes only, this task has "
                              f"{num_classes}; drop it (K-class hardening already keeps the weak labels' shares)")
        if self.buffer and self.buffer <= batch_size:
            raise ConfigError(f"{self.name}.buffer: {self.buffer} predictions hold no past minibatch at batch size "
                              f"{batch_size}; use a buffer larger than the batch (e.g. {4 * batch_size}) or 0")

    def for_training(self, context: TrainingContext) -> RampedRun:
        return RampedRun(self.after_warmup(context), context.seed, buffer=self.buffer)

    def weight(self, step_frac: float) -> float:
        return self.aux_weight * self.ramp_factor(step_frac)

    def own_target(self, run: RampedRun, probs: torch.Tensor, labels: torch.Tensor,
                   step_frac: float) -> torch.Tensor:
        """What the student's own predictions contribute to the target: hardened here."""
        return harden_predictions(probs, labels, run.recent(probs), run.generator(step_frac))

    def per_example_in(self, run: RampedRun, logits: torch.Tensor, labels: torch.Tensor, step_frac: float,
                       indices: torch.Tensor | None = None) -> torch.Tensor:
        if self.balance_batch and labels.shape[-1] == 2:
            labels = balance_labels(labels)
        weight = self.weight(step_frac)
        own = self.own_target(run, torch.softmax(logits, dim=-1).detach(), labels, step_frac)
        return soft_cross_entropy(logits, (1.0 - weight) * labels + weight * own)


@register_loss("entropy")
@dataclass(frozen=True)
class EntropyLoss(LogConfLoss):
    """``logconf`` without hardening (target ``(1 - w) y + w p``, ``p`` detached): its gradient is (1 - w) x xent's.

    Cross-entropy against the weak labels mixed with the student's own detached soft predictions ``p`` (EleutherAI/w2s
    ``entropy``). With ``p`` detached, the gradient w.r.t. the logits is ``p - ((1 - w) y + w p) = (1 - w)(p - y)``: the
    auxiliary term only scales cross-entropy's step down as ``w`` ramps in (an annealed learning rate); it does not
    push the student's entropy down, whatever the name says (``tests/unit/losses/test_losses.py`` checks this)."""

    source: ClassVar[str] = "EleutherAI/w2s"

    def own_target(self, run: RampedRun, probs: torch.Tensor, labels: torch.Tensor,
                   step_frac: float) -> torch.Tensor:
        return probs


@register_loss("adaptive_conf")
@dataclass(frozen=True)
class AdaptiveConfidenceLoss(RampedLoss):
    """Adaptive confidence ("V-sup", RAVEN, Jeon et al. 2025): logconf with a per-example weight from the
    student's and teacher's cross-entropies instead of a schedule.

    With the student's predicted class ``s`` and the weak label's class ``t``, ``alpha = exp(CE(p, s)) /
    (exp(CE(p, s)) + exp(CE(p, t))) = p_t / (p_s + p_t)`` (detached), and the target is ``(1 - alpha) y +
    alpha onehot(s)``. Where student and teacher agree alpha is 1/2; where a confident student disagrees
    alpha is small and the target leans to the teacher, so the term mostly sharpens agreement. Argmax ties
    (a zero head predicts every class alike) are broken at random, and ``alpha`` ramps in like logconf's weight
    (0 during the lr warm-up, full after ``ramp_frac`` more): a student that has learned nothing yet is not
    pulled towards its own arbitrary first guesses.
    """

    source: ClassVar[str] = "mlbio-epfl/raven (V-sup)"

    def per_example_in(self, run: RampedRun, logits: torch.Tensor, labels: torch.Tensor, step_frac: float,
                       indices: torch.Tensor | None = None) -> torch.Tensor:
        probs = torch.softmax(logits, dim=-1).detach()
        generator = run.generator(step_frac)
        own, teacher = random_argmax(probs, generator), random_argmax(labels, generator)
        p_own, p_teacher = probs.gather(1, own[:, None])[:, 0], probs.gather(1, teacher[:, None])[:, 0]
        alpha = (p_teacher / (p_own + p_teacher).clamp_min(1e-12))[:, None] * self.ramp_factor(step_frac)
        target = (1.0 - alpha) * labels + alpha * F.one_hot(own, labels.shape[-1]).float()
        return soft_cross_entropy(logits, target)


@register_loss("product")
@dataclass(frozen=True)
class ProductLoss(Loss):
    """Cross-entropy against the detached, renormalised product ``p^beta y^alpha`` (Burns et al. 2023 code)."""

    source: ClassVar[str] = "Burns et al. 2023 (openai/weak-to-strong)"

    alpha: float = 1.0  # exponent of the weak labels
    beta: float = 1.0  # exponent of the student's predictions

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        probs = torch.softmax(logits, dim=-1)
        target = probs.pow(self.beta) * labels.pow(self.alpha)
        target = (target / target.sum(dim=-1, keepdim=True).clamp_min(1e-12)).detach()
        return soft_cross_entropy(logits, target)
