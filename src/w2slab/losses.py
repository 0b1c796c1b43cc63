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
  batch is smaller than K, where per-batch class shares are noise). Quotas are exact (``class_quota``) and
  ties (a zero head at the first step, equal probabilities) are broken at random, seeded by the run's seed
  and the step, never by index order. The weight ``w`` is 0 during the learning-rate warm-up, then ramps
  linearly to ``aux_weight`` over ``ramp_frac`` of training (default .2, the paper's "first 20% of
  training"). The reference code used ``w = step_frac`` during warm-up (so it reached only ``warmup_frac`` of the
  maximum, 10% at the default warm-up, before jumping to it); an earlier w2slab ramped with the lr warm-up (10%,
  ~6 steps of the default run), which locked the target onto the student's own hardened guesses before it had learned.
- ``product``: target proportional to ``student^beta * weak^alpha`` (detached).
- ``kl`` / ``reverse_kl``: KL(weak || student) (cross-entropy minus the weak labels' entropy: same
  gradient as ``xent``, zero at a perfect fit) and KL(student || weak) (mode-seeking).
- ``entropy``: ``logconf`` without hardening: the target mixes the weak labels with the student's own
  soft predictions (EleutherAI/w2s ``entropy``). The predictions are detached, so its gradient is exactly
  ``(1 - w)`` times ``xent``'s: it scales the step down as ``w`` ramps in and does not lower the student's entropy.
- ``window``: cross-entropy only on the examples where the student is unsure (max probability below
  ``1/K + radius``), summed and divided by the batch size (EleutherAI/w2s ``window``); ``radius`` is a
  number or ``midweak``, the median weak-label confidence above chance over the whole training set.
- ``adaptive_conf``: logconf whose per-example weight comes from the student's and the teacher's
  cross-entropies (RAVEN's "V-sup"), ramped in like logconf's.
- ``gce`` / ``sce`` / ``elr``: the label-noise literature's robust losses as W2S baselines: generalized
  cross-entropy (Zhang & Sabuncu 2018), symmetric cross-entropy (Wang et al. 2019) and early-learning
  regularisation (Liu et al. 2020), whose per-example memory the trainer feeds (``uses_indices``) and checkpoints.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from w2slab.component import Component, registrar
from w2slab.errors import ConfigError
from w2slab.lazy import LazyModule
from w2slab.registry import Registry
from w2slab.typed import check

# torch on first use: validating a config or printing `w2s --help` needs no tensor (w2slab.lazy)
torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")

LossFn = Callable[["torch.Tensor", "torch.Tensor", float], "torch.Tensor"]

#: The warm-up fraction of a training run (TrainConfig.warmup_frac) unless configured otherwise; also what a
#: loss whose schedule starts after the run's warm-up uses when it is called outside a run.
DEFAULT_WARMUP_FRAC = 0.1
#: The auxiliary (self-training) terms ramp in over this fraction of training after the lr warm-up: Burns et
#: al. (2023) warm the logconf weight up "over the first 20% of training".
DEFAULT_RAMP_FRAC = 0.2

LOSSES: Registry[type[Loss]] = Registry("loss")


@dataclass(frozen=True)
class TrainingContext:
    """What a loss may read of the training run that uses it (:meth:`Loss.for_training`)."""

    warmup_frac: float = DEFAULT_WARMUP_FRAC  # the learning-rate warm-up, as a fraction of training
    batch_size: int = 0
    seed: int = 0
    # the training targets [N, K] (weak labels for a student): for quantities computed once over the training set
    labels: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)


def step_generator(seed: int, step_frac: float) -> torch.Generator:
    """A generator fixed by the run's seed and the step: random tie-breaking that a resumed run repeats exactly."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(round(float(step_frac) * 2**31)))


def ramp(step_frac: float, start: float, length: float) -> float:
    """0 before ``start``, then linear to 1 over ``length`` (both fractions of training)."""
    if step_frac < start:
        return 0.0
    return 1.0 if length <= 0 else min(1.0, (step_frac - start) / length)


def random_argmax(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``argmax`` over the last axis with ties broken at random (``torch.argmax`` takes the first: class 0)."""
    noise = torch.rand(probs.shape, generator=generator).to(probs.device)
    top = probs.max(dim=-1, keepdim=True).values
    return torch.where(probs >= top, noise + 1.0, noise - 1.0).argmax(dim=-1)


@dataclass(frozen=True)
class Loss(Component):
    """Base of every registered loss: its dataclass fields are its typed, serialisable parameters."""

    registry: ClassVar[Registry] = LOSSES

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        """The loss of each example [B], from fp32 ``logits`` and ``labels`` (batch-level quantities such as
        logconf's threshold are computed over the whole batch first)."""
        raise NotImplementedError

    #: the trainer passes each example's ``indices`` (its position in the training rows) to losses that keep a
    #: per-example memory (ELR); such a loss also has ``state_dict`` / ``load_state_dict`` for checkpoints
    uses_indices: ClassVar[bool] = False
    #: the loss trains two models at once (co-teaching): the student is a :class:`~w2slab.models.loading.TwinModel`
    #: whose training logits are both models' ``[B, 2K]``, and whose predictions are their mixture
    twin: ClassVar[bool] = False
    #: the loss learns from several teachers at once: ``labels`` are ``[B, M, K]``, one soft label per teacher (an
    #: ``ensemble`` method's members); every other loss gets their mean ``[B, K]``
    teachers: ClassVar[bool] = False

    def report(self) -> dict[str, Any] | None:
        """What the loss learned besides the model (RAVEN's teacher weights), written beside the student."""
        return None

    @property
    def settled(self) -> float:
        """The fraction of training after which the objective stops changing by schedule (0: it never does): a
        warm-up on easy examples makes the loss rise when it ends, which is not divergence."""
        return 0.0

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float = 0.0,
                 weights: torch.Tensor | None = None, indices: torch.Tensor | None = None) -> torch.Tensor:
        values = (self.per_example_at(logits.float(), labels.float(), step_frac, indices) if indices is not None
                  else self.per_example(logits.float(), labels.float(), step_frac))
        return weighted_mean(values, weights)

    def per_example_at(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float,
                       indices: torch.Tensor) -> torch.Tensor:
        """:meth:`per_example` for the training rows at ``indices`` (what a loss with a per-example memory uses)."""
        return self.per_example(logits, labels, step_frac)

    def for_training(self, context: TrainingContext) -> Loss:
        """The loss as one training run uses it (fills parameters that default to the run's settings)."""
        return self

    def check_training(self, num_classes: int, batch_size: int) -> None:
        """Refuse (:class:`ConfigError`) settings that cannot mean what they say for this task and batch size;
        called when the stage graph is built, before any work."""


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


def xent_loss(logits: torch.Tensor, labels: torch.Tensor, step_frac: float = 0.0) -> torch.Tensor:
    """Cross-entropy with soft targets (the function form of ``xent``)."""
    return CrossEntropy()(logits, labels, step_frac)


def logconf_weight(step_frac: float, aux_weight: float, ramp_frac: float = DEFAULT_RAMP_FRAC,
                   start: float = 0.0) -> float:
    """Auxiliary weight: 0 until ``start`` (the lr warm-up), then linear to ``aux_weight`` over ``ramp_frac``."""
    return aux_weight * ramp(step_frac, start, ramp_frac)


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
    how long it takes. The run's seed reaches the loss here too, for its random tie-breaking.
    """

    ramp_frac: float = DEFAULT_RAMP_FRAC
    ramp_start: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.ramp_frac <= 1.0, "ramp_frac", f"must be in [0, 1], got {self.ramp_frac}")
        check(self.ramp_start is None or 0.0 <= self.ramp_start <= 1.0, "ramp_start",
              f"must be in [0, 1] or null (after the lr warm-up), got {self.ramp_start}")

    def for_training(self, context: TrainingContext) -> Loss:
        # a copy either way: the per-run state below is never shared with the configuration
        loss = dataclasses.replace(self, ramp_start=context.warmup_frac if self.ramp_start is None else self.ramp_start)
        object.__setattr__(loss, "_seed", int(context.seed))
        return loss

    def ramp_factor(self, step_frac: float) -> float:
        start = DEFAULT_WARMUP_FRAC if self.ramp_start is None else self.ramp_start
        return ramp(step_frac, start, self.ramp_frac)

    def generator(self, step_frac: float) -> torch.Generator:
        return step_generator(self.__dict__.get("_seed", 0), step_frac)


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

    def for_training(self, context: TrainingContext) -> Loss:
        loss = super().for_training(context)
        if self.buffer:  # a fresh buffer per training run: state, not configuration
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
        return self.aux_weight * self.ramp_factor(step_frac)

    def own_target(self, probs: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        """What the student's own predictions contribute to the target: hardened here."""
        return harden_predictions(probs, labels, self.recent(probs), self.generator(step_frac))

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        if self.balance_batch and labels.shape[-1] == 2:
            labels = balance_labels(labels)
        weight = self.weight(step_frac)
        own = self.own_target(torch.softmax(logits, dim=-1).detach(), labels, step_frac)
        return soft_cross_entropy(logits, (1.0 - weight) * labels + weight * own)


@register_loss("entropy")
@dataclass(frozen=True)
class EntropyLoss(LogConfLoss):
    """``logconf`` without hardening (target ``(1 - w) y + w p``, ``p`` detached): its gradient is (1 - w) x xent's.

    Cross-entropy against the weak labels mixed with the student's own detached soft predictions ``p`` (EleutherAI/w2s
    ``entropy``). With ``p`` detached, the gradient w.r.t. the logits is ``p - ((1 - w) y + w p) = (1 - w)(p - y)``: the
    auxiliary term only scales cross-entropy's step down as ``w`` ramps in (an annealed learning rate); it does not
    push the student's entropy down, whatever the name says (``tests/test_losses.py`` checks this)."""

    source: ClassVar[str] = "EleutherAI/w2s"

    def own_target(self, probs: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
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

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        probs = torch.softmax(logits, dim=-1).detach()
        generator = self.generator(step_frac)
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
    the teacher disagrees. ``radius: midweak`` is the median weak-label confidence above chance,
    ``median(max_k y_k) - 1/K``, computed once over the whole training set when the run starts (over the batch
    only when the loss is called outside a run)."""

    source: ClassVar[str] = "EleutherAI/w2s"

    radius: float | str = 0.15

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.radius == "midweak" or (not isinstance(self.radius, str) and 0.0 <= self.radius <= 1.0),
              "radius", f"must be a number in [0, 1] or 'midweak', got {self.radius!r}")

    def for_training(self, context: TrainingContext) -> Loss:
        if self.radius != "midweak" or context.labels is None or not len(context.labels):
            return self
        labels = np.asarray(context.labels, dtype=np.float64)
        loss = dataclasses.replace(self)
        object.__setattr__(loss, "_radius", float(np.median(labels.max(axis=1)) - 1.0 / labels.shape[1]))
        return loss

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        chance = 1.0 / logits.shape[-1]
        radius = self.radius
        if radius == "midweak":
            radius = self.__dict__.get("_radius")
            radius = float(labels.max(-1).values.median() - chance) if radius is None else radius
        unsure = torch.softmax(logits, dim=-1).detach().max(-1).values < chance + radius
        return soft_cross_entropy(logits, labels) * unsure.float()


# --- the label-noise literature's answers, as W2S baselines --------------------------------------


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
        probs = torch.softmax(logits, dim=-1).clamp_min(_EPS)
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
    uses_indices: ClassVar[bool] = True
    lam: float = 3.0
    beta: float = 0.7

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.lam >= 0, "lam", f"must be >= 0, got {self.lam}")
        check(0.0 <= self.beta < 1.0, "beta", f"must be in [0, 1), got {self.beta}")

    def for_training(self, context: TrainingContext) -> Loss:
        loss = dataclasses.replace(self)  # a fresh memory per training run
        object.__setattr__(loss, "_memory", None)
        return loss

    def memory(self, rows: int, classes: int) -> torch.Tensor:
        current = self.__dict__.get("_memory")
        if current is None or current.shape[0] < rows:
            grown = torch.zeros(max(rows, 1), classes)
            if current is not None:
                grown[: current.shape[0]] = current
            object.__setattr__(self, "_memory", grown)
        return self.__dict__["_memory"]

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        return soft_cross_entropy(logits, labels)

    def per_example_at(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float,
                       indices: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits, dim=-1).clamp(1e-4, 1.0 - 1e-4)
        indices = indices.long().cpu()
        memory = self.memory(int(indices.max()) + 1, logits.shape[-1])
        with torch.no_grad():
            current = (probs / probs.sum(-1, keepdim=True)).detach().cpu()
            memory[indices] = self.beta * memory[indices] + (1.0 - self.beta) * current
        target = memory[indices].to(probs.device)
        regulariser = torch.log((1.0 - (target * probs).sum(-1)).clamp_min(1e-6))
        return soft_cross_entropy(logits, labels) + self.lam * regulariser

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The memory, saved with a training's checkpoint so a resumed run continues it."""
        memory = self.__dict__.get("_memory")
        return {"memory": memory if memory is not None else torch.zeros(0, 0)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        memory = state["memory"]
        object.__setattr__(self, "_memory", memory.clone() if memory.numel() else None)


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
    twin: ClassVar[bool] = True
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


# --- multi-teacher losses: labels [B, M, K], one row per teacher (an ensemble's members) ---------------------------


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
    teachers: ClassVar[bool] = True
    lr_weights: float = 1e-2
    warmup: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.lr_weights >= 0, "lr_weights", f"must be >= 0, got {self.lr_weights}")
        check(0.0 <= self.warmup < 1.0, "warmup", f"must be in [0, 1), got {self.warmup}")

    def for_training(self, context: TrainingContext) -> Loss:
        loss = dataclasses.replace(self)  # fresh weights per training run
        object.__setattr__(loss, "_weights", None)
        return loss

    @property
    def settled(self) -> float:
        return self.warmup

    def weights(self, teachers: int) -> torch.Tensor:
        current = self.__dict__.get("_weights")
        if current is None or len(current) != teachers:
            current = torch.full((teachers,), 1.0 / teachers)
            object.__setattr__(self, "_weights", current)
        return current

    @staticmethod
    def mixture(labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        mixed = (weights.to(labels)[None, :, None] * labels).sum(1)
        return mixed / mixed.sum(-1, keepdim=True).clamp_min(1e-12)

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        _check_teachers(self, logits, labels)
        weights = self.weights(labels.shape[1])
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
            object.__setattr__(self, "_weights", updated / updated.sum())
        return values

    def state_dict(self) -> dict[str, torch.Tensor]:
        weights = self.__dict__.get("_weights")
        return {"weights": weights if weights is not None else torch.zeros(0)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        object.__setattr__(self, "_weights", state["weights"].clone() if state["weights"].numel() else None)

    def report(self) -> dict[str, Any] | None:
        weights = self.__dict__.get("_weights")
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
    teachers: ClassVar[bool] = True
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
    teachers: ClassVar[bool] = True
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
        distance = (log_probs.exp() * (log_probs - torch.log(labels.clamp_min(_EPS)))).sum(-1)  # [B, M]
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
