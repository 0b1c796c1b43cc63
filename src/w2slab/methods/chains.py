"""Methods that add models to the chain of supervision: ensembles, bootstrapping, strong-to-strong.

- ``ensemble``: several weak supervisors (the weak model with other seeds, other weak models), their
  soft labels averaged (optionally weighted). The ensemble is the supervisor PGR is measured from.
- ``bootstrap``: weak -> intermediate -> strong (Burns et al. 2023, section 4.3.1): an intermediate model is
  trained on the weak labels (with ``xent``), and the strong student learns from its labels of the
  transfer set. PGR stays measured from the weak model.
- ``s2s``: strong-to-strong rounds (EleutherAI/w2s ``s2s_iters``): the student relabels the transfer set
  and a fresh student (same loss) learns from those labels, ``rounds`` times.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from w2slab.methods.base import ChainMethod, StageBuilder, StageNode, register_method
from w2slab.typed import check

if TYPE_CHECKING:
    from w2slab.losses import Loss


@register_method("ensemble")
@dataclass(frozen=True)
class WeakEnsemble(ChainMethod):
    """Supervise with the (weighted) mean soft labels of several weak models: seeds x (weak, *models).

    ``bagging`` (default): every member but the experiment's own weak model trains on a bootstrap resample of the
    weak-train rows, so members differ by their data and not only by shuffle order (fine-tuned from the same
    pretrained weights with a zero head and no dropout, seeds alone give near-identical models).
    """

    seeds: int = 3  # members per model: seeds seed, seed+1, ... (the first is the experiment's weak model)
    bagging: bool = True
    models: tuple[str, ...] = ()  # more weak models besides the experiment's
    weights: tuple[float, ...] = ()  # one per member in order (model-major); empty: equal weights

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.seeds >= 1, "seeds", f"must be >= 1, got {self.seeds}")
        check(all(math.isfinite(w) and w >= 0 for w in self.weights) and (not self.weights or sum(self.weights) > 0),
              "weights", f"must be finite, >= 0 and not all 0, got {self.weights}")

    def extra_models(self) -> tuple[str, ...]:
        return self.models

    def members(self, builder: StageBuilder) -> list[StageNode]:
        cfg = builder.cfg
        stages = [builder.weak_model(model, cfg.seed + i, bagged=self.bagging and (model, i) != (cfg.weak, 0))[1]
                  for model in (cfg.weak, *self.models) for i in range(self.seeds)]
        check(not self.weights or len(self.weights) == len(stages), "weights",
              f"needs one weight per member ({len(stages)}: {self.seeds} seeds x {1 + len(self.models)} models), "
              f"got {len(self.weights)}")
        return stages

    def labels_stage(self, builder: StageBuilder) -> StageNode:
        return builder.ensemble(self.members(builder), self.weights)

    def supervisor_stage(self, builder: StageBuilder) -> StageNode:
        return self.labels_stage(builder)


@register_method("bootstrap")
@dataclass(frozen=True)
class Bootstrap(ChainMethod):
    """Weak -> intermediate -> strong: the student learns from an intermediate model trained on the weak labels."""

    source: ClassVar[str] = "Burns et al. 2023 (bootstrapping through an intermediate model)"

    reads: ClassVar[frozenset[str]] = frozenset({"weak_labels", "student_labels"})
    via: str = "minilm-l6"  # the intermediate model (a packaged name, Hub id or folder)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(bool(self.via.strip()), "via", "name the intermediate model, e.g. via=minilm-l6")

    def extra_models(self) -> tuple[str, ...]:
        return (self.via,)

    def labels_stage(self, builder: StageBuilder) -> StageNode:
        from w2slab.losses import make_loss

        train = dataclasses.replace(builder.cfg.strong_train, lr=None)  # the intermediate family's own lr
        return builder.student(make_loss("xent"), builder.weak_label, model=self.via, train=train,
                               label=f"intermediate {self.via} {builder.name}")


@register_method("s2s")
@dataclass(frozen=True)
class StrongToStrong(ChainMethod):
    """Strong-to-strong: the student relabels the transfer set and a fresh student learns from it, per round."""

    reads: ClassVar[frozenset[str]] = frozenset({"weak_labels", "student_labels"})
    rounds: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.rounds >= 1, "rounds", f"must be >= 1, got {self.rounds}")

    def build_student(self, builder: StageBuilder, loss: Loss, label: str) -> StageNode:
        student = builder.student(loss, builder.weak_label, label=f"student {builder.name} {loss.label}")
        for round_ in range(1, self.rounds + 1):
            student = builder.student(loss, student, label=f"{label} round {round_}" if round_ < self.rounds
                                      else label)
        return student
