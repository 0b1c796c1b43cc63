"""EnsemW2S (arXiv 2410.04571): weak experts combined by boosting, as one stage of its own kind, ``boost``: its spec
(:class:`BoostSpec`), its compute function (:func:`compute_boost`), the loop (:func:`boost`) and the method.

The weak side of the experiment, so it reads the weak-train split's ground truth (and counts it, role ``weak``).
Round ``t`` trains fresh weak models on weak-train with per-example loss weights from the boosting distribution
``w`` (a weighted cross-entropy whose weights keep their proportions across batches:
:class:`~w2slab.losses.FixedWeightCrossEntropy`), measures the round's weighted error ``err`` on rows it did not
train on, and gets the SAMME vote ``alpha = ln((1 - err) / err) + ln(K - 1)`` (Zhu et al. 2009, AdaBoost for K
classes); the rows it got wrong gain weight ``exp(alpha)`` for the next round. Boosting stops early when a round is
no better than chance (``err >= 1 - 1/K``; a first expert at chance labels alone) or perfect (``err`` 0: its vote
would be infinite; it then labels alone). The ensemble labels transfer and test with the experts' ``alpha``-weighted
mean probability, and it is the supervisor PGR is measured from (as for ``ensemble``).

Held-out error: an expert's error on its own training rows says nothing of a model that can fit them (a fine-tuned
expert reaches 0 there and would label alone after one round). So weak-train is cut into ``folds`` parts; each round
trains one model per fold on the other folds' rows (their boosting weights rescaled to mean 1) and predicts the
held-out fold, so every row's mistake is an out-of-fold one; the round's expert, for transfer and test, is the mean
of its fold models' probabilities.

Adapted: the paper boosts the token-level outputs of generative weak models and measures the error on the rows the
expert trained on; here every expert is the experiment's weak classifier (probe or fine-tune, per its training
config), so the method applies to every task, and its error is out-of-fold (each fold model sees ``1 - 1/folds`` of
weak-train, ``folds`` trainings per round).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from w2slab.losses import FixedWeightCrossEntropy
from w2slab.methods.base import ChainMethod, ModelInput, SoftLabels, StageBuilder, StageNode, register_method
from w2slab.methods.stage_api import PREDICTED, StageContext, register_stage
from w2slab.metrics import softmax
from w2slab.typed import check


@dataclass(frozen=True)
class BoostSpec:
    """What identifies a boosted ensemble: the weak model, how each expert trains, the seed and the rounds."""

    model: ModelInput
    train: Any  # TrainConfig
    seed: int
    rounds: int
    folds: int = 2


def samme_alpha(error: float, num_classes: int) -> float:
    """The SAMME vote of an expert with weighted error ``error`` (0 for one at chance, K classes)."""
    return math.log((1.0 - error) / error) + math.log(num_classes - 1)


def boost_weights(weights: np.ndarray, wrong: np.ndarray, alpha: float) -> np.ndarray:
    """AdaBoost's reweighting: the rows an expert got wrong gain ``exp(alpha)``; the weights sum to 1 again."""
    new = weights * np.exp(alpha * wrong)
    return new / new.sum()


def boost_folds(n: int, folds: int, seed: int) -> list[np.ndarray]:
    """The weak-train rows cut at random (by ``seed``) into ``folds`` held-out parts of near-equal size."""
    order = np.random.default_rng([seed, 4_099]).permutation(n)
    return [np.sort(part) for part in np.array_split(order, folds)]


#: ``train(fit_rows, weights, seed, desc)``: a weak model trained on ``fit_rows`` of weak-train with loss ``weights``
#: (mean 1 over those rows) -> (its probabilities on every weak-train row [n, K], on each labelled split, final loss)
TrainExpert = Callable[[np.ndarray, np.ndarray, int, str], tuple[np.ndarray, dict[str, np.ndarray], float]]


def boost(truth: np.ndarray, num_classes: int, rounds: int, folds: int, seed: int, train: TrainExpert,
          echo: Callable[[str], None] = print) -> tuple[list[tuple[float, dict[str, np.ndarray]]], list[dict]]:
    """SAMME over ``rounds`` with out-of-fold errors (module docstring): ((vote, probabilities per split) of each
    expert that votes, one record per round)."""
    n = len(truth)
    weights = np.full(n, 1.0 / n)
    parts = boost_folds(n, folds, seed)
    experts: list[tuple[float, dict[str, np.ndarray]]] = []
    records: list[dict] = []
    for t in range(rounds):
        wrong = np.zeros(n)
        fold_probs: list[dict[str, np.ndarray]] = []
        losses = []
        for f, held in enumerate(parts):
            fit_rows = np.setdiff1d(np.arange(n), held)
            fit_weights = weights[fit_rows] / weights[fit_rows].mean()
            train_probs, probs, final_loss = train(fit_rows, fit_weights, seed + t * folds + f,
                                                   f"boost {t + 1}/{rounds}, fold {f + 1}/{folds}")
            wrong[held] = (train_probs[held].argmax(-1) != truth[held]).astype(np.float64)
            fold_probs.append(probs)
            losses.append(final_loss)
        probs = {name: np.mean([p[name] for p in fold_probs], axis=0) for name in fold_probs[0]}
        error = float(np.sum(weights * wrong))
        records.append({"round": t + 1, "weighted_error": error, "held_out": "out-of-fold", "folds": folds,
                        "final_loss": float(np.mean(losses))})
        if error >= 1.0 - 1.0 / num_classes:  # no better than chance on the reweighted rows: boosting is done
            echo(f"  expert {t + 1}: held-out weighted error {error:.3f}, at chance; stopping")
            if not experts:  # the weak model itself is at chance: it is the ensemble (boosting has nothing to add)
                experts = [(1.0, probs)]
            break
        if error <= 0.0:  # perfect on held-out rows: it labels alone (an infinite vote)
            experts = [(1.0, probs)]
            records[-1]["alpha"] = math.inf
            echo(f"  expert {t + 1}: no held-out weak-train errors; it labels alone")
            break
        alpha = samme_alpha(error, num_classes)
        records[-1]["alpha"] = alpha
        experts.append((alpha, probs))
        echo(f"  expert {t + 1}: held-out weighted error {error:.3f}, vote {alpha:.3f}")
        weights = boost_weights(weights, wrong, alpha)
    return experts, records


@register_stage("boost", trains=True, order=1.5,
                description="weak experts trained in turn on reweighted rows (EnsemW2S), their vote")
def compute_boost(context: StageContext) -> None:
    """Train the experts in turn (out-of-fold, :func:`boost`) and write the ensemble's transfer, validation and test
    labels."""
    spec = context.spec
    splits = context.input("split").splits()
    weak = context.role_model("weak", splits, ("weak_train", *PREDICTED), spec.train)
    truth = np.array([row["label"] for row in splits["weak_train"]])
    k = weak.num_labels

    def train(fit_rows: np.ndarray, weights: np.ndarray, seed: int, desc: str
              ) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
        # boosting's weights are one distribution over the rows: not renormalised per batch (mean 1 over fit_rows)
        targets = np.eye(k, dtype=np.float32)[truth[fit_rows]]
        model, result = weak.fit(weak.subset("weak_train", fit_rows), targets, FixedWeightCrossEntropy(), seed=seed,
                                 desc=desc, weights=weights.astype(np.float32))
        logits = weak.predict_splits(model, ("weak_train", *PREDICTED), desc)
        return (softmax(logits["weak_train"]), {name: softmax(logits[name]) for name in PREDICTED},
                result.stability.final_loss)

    experts, rounds = boost(truth, k, spec.rounds, spec.folds, spec.seed, train, context.echo)
    total = sum(alpha for alpha, _ in experts)
    for name in PREDICTED:
        mean = sum(alpha * probs[name] for alpha, probs in experts) / total
        context.output.write_labels(name, [r["id"] for r in splits[name]], SoftLabels.of(mean))
    context.output.write_json("rounds.json", rounds)
    context.output.write_resolved(weak.resolved_settings())
    # the weak side of the experiment: it reads every weak-train row's ground truth
    context.record_ground_truth("weak", len(truth), rows={"weak_train": np.arange(len(truth))})


@register_method("ensemw2s")
@dataclass(frozen=True)
class EnsemW2S(ChainMethod):
    """Weak experts combined by boosting (SAMME): each round's weak model trains on the rows the previous ones got
    wrong, weighted up; the experts vote by their held-out accuracy. The ensemble is the supervisor PGR is measured
    from. ``folds``: each round's error is out-of-fold over this many parts of weak-train (module docstring)."""

    source: ClassVar[str] = ("Agrawal et al. 2024, EnsemW2S, arXiv 2410.04571 (SAMME: Zhu et al. 2009); adapted: "
                             "classifier experts, out-of-fold errors")
    stage_kind: ClassVar[str] = "boost"
    rounds: int = 3
    folds: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.rounds >= 1, "rounds", f"must be >= 1, got {self.rounds}")
        check(self.folds >= 2, "folds", f"must be >= 2 (errors are measured on held-out rows), got {self.folds}")

    def labels_stage(self, builder: StageBuilder) -> StageNode:
        cfg = builder.cfg
        spec = BoostSpec(builder.model_input(cfg.weak), cfg.weak_train, cfg.seed, self.rounds, self.folds)
        return builder.add("boost", spec, {"split": builder.split},
                           label=f"boosted {self.rounds} x {cfg.weak} {builder.name}")

    def supervisor_stage(self, builder: StageBuilder) -> StageNode:
        return self.labels_stage(builder)
