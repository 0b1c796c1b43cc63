"""The base of every weak-to-strong loss: the :class:`Loss` class, its registry and the helpers the families share.

A loss is a frozen dataclass registered by name; its fields are its typed parameters, and an
instance is at once the loss's configuration (serialised into results and stage identities) and the
callable that computes it::

    @register_loss("focal")
    @dataclass(frozen=True)
    class Focal(Loss):
        gamma: float = 2.0
        def per_example(self, logits, labels, step_frac): ...

Every loss takes ``logits`` [B, K], soft ``labels`` [B, K] (rows sum to 1), ``step_frac``
(fraction of training done, in [0, 1]) and optional per-example ``weights`` [B], and returns the
(weighted) mean loss over the batch. A loss implements :meth:`Loss.per_example`; the base class
does the weighting, so every loss accepts weights (filtering and confidence-weighting methods use them).
Losses are written for K classes and computed in fp32.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from w2slab.component import Component, registrar
from w2slab.errors import ConfigError
from w2slab.lazy import LazyModule
from w2slab.registry import Registry

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

#: The vocabulary of :attr:`Loss.needs`: what a loss may ask of the training that uses it, beyond logits, soft labels
#: [B, K], the fraction of training done and per-example weights (what every loss gets).
NEEDS: dict[str, str] = {
    "indices": "the trainer passes each example's position in the training rows (``indices`` [B]) to the loss's "
               "training run, which keeps a per-example memory (ELR) and saves it with checkpoints",
    "teachers": "``labels`` are ``[B, M, K]``, one soft label per teacher (an ``ensemble`` method's members) instead "
                "of their mean; the graph refuses the loss without an ensemble to learn from (RAVEN, edl, CSL)",
    "twin": "the loss trains two networks at once (co-teaching): the role model makes the student a TwinModel of "
            "two students started apart, whose training logits are both networks' ``[B, 2K]``; the loss's "
            "``twin_prediction`` says what the trained pair predicts (``first`` network or their ``mean``)",
}


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
    #: what the loss asks of the training that uses it, words of :data:`NEEDS`, declared once on the class and read
    #: (:func:`needs_of`) by the trainer (indices), the role model (twin), the graph and the student stage (teachers)
    needs: ClassVar[frozenset[str]] = frozenset()

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float) -> torch.Tensor:
        """The loss of each example [B], from fp32 ``logits`` and ``labels`` (batch-level quantities such as
        logconf's threshold are computed over the whole batch first)."""
        raise NotImplementedError

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse a declaration outside the vocabulary when the class is defined: a misspelt need would otherwise
        be ignored by every reader, and the loss trained without what it asked for."""
        super().__init_subclass__(**kwargs)
        if not isinstance(cls.needs, frozenset) or not cls.needs <= NEEDS.keys():
            raise ConfigError(f"{cls.__name__}.needs: a frozenset of {', '.join(NEEDS)}, got {cls.needs!r}")
        flags = [flag for flag in ("uses_indices", "twin", "teachers") if flag in cls.__dict__]
        if flags:
            raise ConfigError(f"{cls.__name__}.{flags[0]}: a loss declares what it needs in one place, "
                              f"needs = frozenset({{...}}) from {', '.join(NEEDS)}")

    def report(self) -> dict[str, Any] | None:
        """What the loss learned besides the model, written beside the student: nothing for a loss without state
        (what a stateful loss learns is its training run's, :meth:`LossRun.report`)."""
        return None

    @property
    def settled(self) -> float:
        """The fraction of training after which the objective stops changing by schedule (0: it never does): a
        warm-up on easy examples makes the loss rise when it ends, which is not divergence."""
        return 0.0

    @property
    def twin_prediction(self) -> str:
        """What the trained pair of a loss that needs ``twin`` predicts: the ``first`` network's probabilities or the
        ``mean`` of both (read by the role model; a loss without twins is never asked)."""
        return "first"

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float = 0.0,
                 weights: torch.Tensor | None = None, indices: torch.Tensor | None = None) -> torch.Tensor:
        if indices is not None and "indices" in self.needs:  # the memory they address is a training run's
            raise TypeError(f"{self.name}: example indices go to the loss's training run, "
                            "loss.for_training(context), not to the loss itself")
        return weighted_mean(self.per_example(logits.float(), labels.float(), step_frac), weights)

    def for_training(self, context: TrainingContext) -> Loss | LossRun:
        """What one training run calls: the loss itself, its parameters that default to the run's settings filled
        (co-teaching's ``forget``), or for a loss with state (a seed, a memory, learned weights) a :class:`LossRun`
        built afresh for the run, so the frozen loss, which is also the configuration, never changes."""
        return self

    def per_example_in(self, run: LossRun, logits: torch.Tensor, labels: torch.Tensor, step_frac: float,
                       indices: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`per_example` in a training run, whose state (``run``) it reads and updates; ``indices``: the
        training rows of the batch, for a loss that needs them. The arithmetic is the loss's, the state the run's."""
        return self.per_example(logits, labels, step_frac)

    def check_training(self, num_classes: int, batch_size: int) -> None:
        """Refuse (:class:`ConfigError`) settings that cannot mean what they say for this task and batch size;
        called when the stage graph is built, before any work."""


class LossRun:
    """A loss with training-time state, as one training run uses it (:meth:`Loss.for_training`).

    The frozen :attr:`loss` is the configuration (serialised into results and stage identities) and does the
    arithmetic (:meth:`Loss.per_example_in`); what the run builds up as it trains (ELR's per-example memory, RAVEN's
    teacher weights, logconf's buffer of recent predictions) and what it took from the run (its seed) live here,
    one object per run. A subclass whose state must survive a resumed run adds ``state_dict`` / ``load_state_dict``
    (the trainer saves it with each checkpoint; tensors and plain values, never a pickle).
    """

    def __init__(self, loss: Loss):
        self.loss = loss

    @property
    def needs(self) -> frozenset[str]:
        return self.loss.needs

    @property
    def settled(self) -> float:
        return self.loss.settled

    @property
    def twin_prediction(self) -> str:
        return self.loss.twin_prediction

    @property
    def name(self) -> str:
        return self.loss.name

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float,
                    indices: torch.Tensor | None = None) -> torch.Tensor:
        return self.loss.per_example_in(self, logits, labels, step_frac, indices)

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, step_frac: float = 0.0,
                 weights: torch.Tensor | None = None, indices: torch.Tensor | None = None) -> torch.Tensor:
        return weighted_mean(self.per_example(logits.float(), labels.float(), step_frac, indices), weights)

    def report(self) -> dict[str, Any] | None:
        """What the loss learned in this run besides the model (RAVEN's teacher weights), written beside the
        student."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.loss!r})"


#: ``@register_loss("name")`` on a :class:`Loss` subclass (made a frozen dataclass if it is not one).
register_loss = registrar(Loss)


def needs_of(loss_fn: LossFn) -> frozenset[str]:
    """What ``loss_fn`` declares it needs (:data:`NEEDS`): a :class:`Loss`'s class declaration, or that of the
    object its training run calls; a plain function needs nothing."""
    return frozenset(getattr(loss_fn, "needs", ()))


def settled_of(loss_fn: LossFn) -> float:
    """:attr:`Loss.settled` of a loss or its training run; 0 for a plain function (its objective has no schedule)."""
    return loss_fn.settled if isinstance(loss_fn, Loss | LossRun) else 0.0


def make_loss(spec: str | dict | Loss) -> Loss:
    """A loss from a name, a ``{name: ..., param: ...}`` mapping or an instance (validated)."""
    return Loss.from_value(spec)


def weighted_mean(values: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of per-example ``values``; with ``weights``, ``sum(w * v) / sum(w)`` (0 when every weight is 0)."""
    if weights is None:
        return values.mean()
    weights = weights.to(values)
    return (weights * values).sum() / weights.sum().clamp_min(1e-12)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy of ``logits`` against soft ``target`` rows: ``-sum_k t_k log p_k``."""
    return -(target * torch.log_softmax(logits, dim=-1)).sum(-1)


#: where a probability is clamped before its log
EPS = 1e-7
