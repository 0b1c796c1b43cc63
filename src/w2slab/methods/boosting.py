"""EnsemW2S (arXiv 2410.04571): weak experts combined by boosting, as one stage of its own kind (``boost``; its
folder reading and writing is ``w2slab.pipeline.method_stages.compute_boost``).

The weak side of the experiment, so it reads the weak-train split's ground truth (and counts it, role ``weak``).
Round ``t`` trains a fresh weak model on weak-train with per-example loss weights ``n * w`` (a weighted
cross-entropy, the weights summing to ``n``), measures its weighted error ``err`` on weak-train, and gets the
SAMME vote ``alpha = ln((1 - err) / err) + ln(K - 1)`` (Zhu et al. 2009, AdaBoost for K classes); the rows it
got wrong gain weight ``exp(alpha)`` for the next round. Boosting stops early when a round is no better than
chance (``err >= 1 - 1/K``; a first expert at chance labels alone) or perfect (``err`` 0: its vote would be
infinite; it then labels alone). The ensemble
labels transfer and test with the experts' ``alpha``-weighted mean probability, and it is the supervisor PGR is
measured from (as for ``ensemble``).

Unlike the paper, which boosts the token-level outputs of generative weak models, every expert here is the
experiment's weak classifier (probe or fine-tune, per its training config), so the method applies to every task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from w2slab.methods.base import ChainMethod, register_method
from w2slab.typed import check

if TYPE_CHECKING:
    from w2slab.pipeline.graph import GraphBuilder, ModelInput, Stage


@dataclass(frozen=True)
class BoostSpec:
    """What identifies a boosted ensemble: the weak model, how each expert trains, the seed and the rounds."""

    model: ModelInput
    train: Any  # TrainConfig
    seed: int
    rounds: int


def samme_alpha(error: float, num_classes: int) -> float:
    """The SAMME vote of an expert with weighted error ``error`` (0 for one at chance, K classes)."""
    return math.log((1.0 - error) / error) + math.log(num_classes - 1)


def boost_weights(weights: np.ndarray, wrong: np.ndarray, alpha: float) -> np.ndarray:
    """AdaBoost's reweighting: the rows an expert got wrong gain ``exp(alpha)``; the weights sum to 1 again."""
    new = weights * np.exp(alpha * wrong)
    return new / new.sum()


@register_method("ensemw2s")
@dataclass(frozen=True)
class EnsemW2S(ChainMethod):
    """Weak experts combined by boosting (SAMME): each round's weak model trains on the rows the previous ones got
    wrong, weighted up; the experts vote by their accuracy. The ensemble is the supervisor PGR is measured from."""

    source: ClassVar[str] = "Agrawal et al. 2024, EnsemW2S, arXiv 2410.04571 (SAMME: Zhu et al. 2009)"
    rounds: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.rounds >= 1, "rounds", f"must be >= 1, got {self.rounds}")

    def labels_stage(self, builder: GraphBuilder) -> Stage:
        cfg = builder.cfg
        spec = BoostSpec(builder.model_input(cfg.weak), cfg.weak_train, cfg.seed, self.rounds)
        return builder.add("boost", spec, {"split": builder.split},
                           label=f"boosted {self.rounds} x {cfg.weak} {builder.name}")

    def supervisor_stage(self, builder: GraphBuilder) -> Stage:
        return self.labels_stage(builder)
