"""EnsemW2S (arXiv 2410.04571): weak experts combined by boosting, as one stage of its own kind (``boost``).

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
from pathlib import Path
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


def compute_boost(stage: Stage, inputs: dict[str, Path], work: Path, runtime) -> None:
    """Train the experts in turn and write the ensemble's transfer and test labels (module docstring)."""
    from w2slab.losses import make_loss
    from w2slab.methods.base import SoftLabels
    from w2slab.metrics import softmax
    from w2slab.pipeline.artifacts import StageFolder
    from w2slab.pipeline.stages import _role_model, labels_of, one_hot, record_ground_truth

    spec = stage.spec
    splits = StageFolder(inputs["split"]).splits()
    weak = _role_model(stage, runtime, "weak", splits, ("weak_train", "transfer", "test"), spec.train)
    truth = labels_of(splits, "weak_train")
    k = weak.num_labels
    n = len(truth)
    weights = np.full(n, 1.0 / n)
    experts: list[tuple[float, dict[str, np.ndarray]]] = []
    rounds = []
    for t in range(spec.rounds):
        model, result = weak.fit("weak_train", one_hot(truth, k), make_loss("xent"), seed=spec.seed + t,
                                 desc=f"boost {t + 1}/{spec.rounds}", weights=(weights * n).astype(np.float32))
        logits = weak.predict_splits(model, ("weak_train", "transfer", "test"), f"expert {t + 1}")
        wrong = (logits["weak_train"].argmax(-1) != truth).astype(np.float64)
        error = float(np.sum(weights * wrong))
        rounds.append({"round": t + 1, "weighted_error": error, "final_loss": result.stability.final_loss})
        probs = {name: softmax(logits[name]) for name in ("transfer", "test")}
        if error >= 1.0 - 1.0 / k:  # no better than chance on the reweighted rows: boosting is done
            runtime.echo(f"  expert {t + 1}: weighted error {error:.3f}, at chance; stopping")
            if not experts:  # the weak model itself is at chance: it is the ensemble (boosting has nothing to add)
                experts = [(1.0, probs)]
            break
        if error <= 0.0:  # perfect on weak-train: it labels alone (an infinite vote)
            experts = [(1.0, probs)]
            rounds[-1]["alpha"] = math.inf
            runtime.echo(f"  expert {t + 1}: no weak-train errors; it labels alone")
            break
        alpha = samme_alpha(error, k)
        rounds[-1]["alpha"] = alpha
        experts.append((alpha, probs))
        runtime.echo(f"  expert {t + 1}: weighted error {error:.3f}, vote {alpha:.3f}")
        weights = boost_weights(weights, wrong, alpha)
    total = sum(alpha for alpha, _ in experts)
    for name in ("transfer", "test"):
        mean = sum(alpha * probs[name] for alpha, probs in experts) / total
        StageFolder(work).write_labels(name, [r["id"] for r in splits[name]], SoftLabels.of(mean))
    StageFolder(work).write_json("rounds.json", rounds)
    StageFolder(work).write_resolved(weak.resolved_settings())
    record_ground_truth(work, stage, inputs, "weak", n)


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
