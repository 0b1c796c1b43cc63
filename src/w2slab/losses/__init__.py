"""Weak-to-strong losses: registered, typed, written for K classes, computed in fp32.

One module per family, as :mod:`w2slab.methods` is: :mod:`~w2slab.losses.base` (the :class:`Loss` base, its
registry and the helpers every family shares), :mod:`~w2slab.losses.paper` (Burns et al. 2023's losses and their
relatives), :mod:`~w2slab.losses.literature` (KL both ways, EleutherAI's window),
:mod:`~w2slab.losses.noise_robust` (the label-noise literature's losses) and :mod:`~w2slab.losses.multi_teacher`
(losses that learn from an ensemble's members). Every public name is importable from ``w2slab.losses``; the
families are imported in this order, which is the registry's (what ``w2s losses`` lists).
"""

# isort: off
# the families in registration order (what `w2s losses` lists), not alphabetical
from w2slab.losses.base import (
    DEFAULT_RAMP_FRAC,
    DEFAULT_WARMUP_FRAC,
    EPS,
    LOSSES,
    NEEDS,
    Loss,
    LossFn,
    LossRun,
    TrainingContext,
    make_loss,
    needs_of,
    ramp,
    random_argmax,
    register_loss,
    settled_of,
    soft_cross_entropy,
    step_generator,
    weighted_mean,
)
from w2slab.losses.paper import (
    AdaptiveConfidenceLoss,
    CrossEntropy,
    EntropyLoss,
    FixedWeightCrossEntropy,
    LogConfLoss,
    ProductLoss,
    RampedLoss,
    RampedRun,
    balance_labels,
    balanced_assignment,
    class_quota,
    harden_predictions,
)
from w2slab.losses.literature import (
    KLLoss,
    ReverseKLLoss,
    WindowLoss,
    WindowRun,
)
from w2slab.losses.noise_robust import (
    CoTeaching,
    EarlyLearningRegularization,
    ElrRun,
    GeneralizedCrossEntropy,
    SymmetricCrossEntropy,
)
from w2slab.losses.multi_teacher import (
    CoSupervised,
    EvidentialMultiTeacher,
    Raven,
    RavenRun,
    dirichlet_kl_to_uniform,
    evidential_loss,
)
# isort: on

__all__ = [
    "DEFAULT_RAMP_FRAC", "DEFAULT_WARMUP_FRAC", "EPS", "LOSSES", "NEEDS", "Loss", "LossFn", "LossRun",
    "TrainingContext", "make_loss", "needs_of", "ramp", "random_argmax", "register_loss", "settled_of",
    "soft_cross_entropy", "step_generator", "weighted_mean",
    "AdaptiveConfidenceLoss", "CrossEntropy", "EntropyLoss", "FixedWeightCrossEntropy", "LogConfLoss", "ProductLoss",
    "RampedLoss", "RampedRun", "balance_labels", "balanced_assignment", "class_quota", "harden_predictions",
    "KLLoss", "ReverseKLLoss", "WindowLoss", "WindowRun",
    "CoTeaching", "EarlyLearningRegularization", "ElrRun", "GeneralizedCrossEntropy", "SymmetricCrossEntropy",
    "CoSupervised", "EvidentialMultiTeacher", "Raven", "RavenRun", "dirichlet_kl_to_uniform", "evidential_loss",
]
