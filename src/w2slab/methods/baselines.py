"""Matched baselines: what a method is compared against when the plain recipe would confound the comparison.

- ``subset`` is select's baseline. ``select`` trains on the transfer rows it does not hold out (about 90%) and keeps
  the checkpoint that best fits the held-out rows, so "select vs xent" mixes selection with less training data.
  ``subset`` holds out the same rows (the same size rule and seed: ``holdout_rows``), trains on the rest and keeps
  the final checkpoint; it reads no ground truth.
- ``truth_swap`` is an oracle's baseline. ``oracle_select``, ``trust`` and ``selective`` read ground truth on the
  student's side; ``truth_swap`` learns the weak labels with as many transfer rows' labels replaced by their one-hot
  ground truth, so the comparison isolates what the oracle does with its labels from simply having them. The rows
  are drawn like the oracle's: ``labelled_sample``'s rule for ``labelled`` rows (trust, selective: the same rows),
  or, with ``holdout`` > 0, the rows an oracle selection holds out (``holdout`` of the transfer set, at least
  ``labelled``, at most half: oracle_select's rule, the same rows). It is an oracle itself (marked in every table),
  and its ground truth is counted.

:meth:`~w2slab.methods.base.Method.matched_baseline` says which baseline a method has; the report pairs each student
with it (:func:`w2slab.report.methods.matched_baseline`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from w2slab.methods.base import (
    ChainMethod,
    LabelMethod,
    Method,
    RelabelContext,
    SelectionMethod,
    SoftLabels,
    holdout_size,
    register_method,
)
from w2slab.typed import check


@register_method("subset")
@dataclass(frozen=True)
class HoldoutSubset(SelectionMethod):
    """Train on the rows select trains on (the same rows held out) and keep the final checkpoint: no selection."""

    source: ClassVar[str] = ("the matched baseline of select: its training rows (the same holdout and seed), the "
                             "final checkpoint, no selection")
    selects: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.every == 0 and self.patience == 0 and self.metric == "accuracy", "every",
              "subset selects no checkpoint: every, patience and metric do not apply")


@register_method("truth_swap")
@dataclass(frozen=True)
class TruthSwap(LabelMethod):
    """ORACLE: the weak labels with ``labelled`` transfer rows replaced by their ground truth (an oracle's baseline)."""

    source: ClassVar[str] = ("the matched baseline of the oracles trust and selective (labelled rows) and "
                             "oracle_select (holdout): the weak labels with as many rows' ground truth")
    reads: ClassVar[frozenset[str]] = frozenset({"weak_labels", "ground_truth"})
    oracle: ClassVar[bool] = True
    labelled: int = 100  # rows whose label becomes ground truth (with holdout: at least this many)
    holdout: float = 0.0  # > 0: holdout of the transfer set, at least labelled, at most half (oracle_select's rows)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.labelled >= 1, "labelled", f"must be >= 1, got {self.labelled}")
        check(0.0 <= self.holdout < 1.0, "holdout", f"must be in [0, 1), got {self.holdout}")

    def truth_count(self, n: int) -> int:
        """Ground-truth labels read of ``n`` transfer rows: what the matched oracle reads at that size."""
        size = holdout_size(n, self.holdout, self.labelled) if self.holdout else self.labelled
        return max(1, min(size, n - 1))

    def truth_sample(self, n: int) -> tuple[str, int]:
        """With ``holdout``, the rows oracle_select holds out; else ``labelled`` rows drawn as trust and selective
        draw theirs."""
        return ("holdout", self.truth_count(n)) if self.holdout else ("labelled", self.labelled)

    def transform(self, labels: SoftLabels, context: RelabelContext) -> SoftLabels:
        rows, truth = context.ground_truth()
        probs = labels.probs.astype(np.float32).copy()
        probs[rows] = np.eye(probs.shape[1], dtype=np.float32)[truth]
        return SoftLabels(probs, labels.weights)


@dataclass(frozen=True)
class LabelledOracle(ChainMethod):
    """A chain method that learns from ``labelled`` rows of the transfer set with their ground truth (trust
    functions, selective W2S): an oracle, its ground truth counted and its results marked in every table. Its
    matched baseline is :class:`TruthSwap` of as many rows."""

    reads: ClassVar[frozenset[str]] = frozenset({"weak_labels", "ground_truth", "strong_features",
                                                 "student_labels"})
    oracle: ClassVar[bool] = True
    labelled: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.labelled >= 2, "labelled", f"must be >= 2, got {self.labelled}")

    def matched_baseline(self) -> Method:
        """``truth_swap`` of as many rows, drawn by the same rule (``labelled_sample``): the ground truth it reads,
        learnt directly, without what the method does with it."""
        return TruthSwap(labelled=self.labelled)
