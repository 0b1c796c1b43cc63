"""Model selection without ground truth (and its oracle): pick the student's checkpoint on held-out rows.

``select`` holds out ``holdout`` of the transfer set, trains on the rest and keeps the checkpoint whose
predictions best match the held-out *weak* labels (AUROC against the weak labels' argmax, as
EleutherAI/w2s and EleutherAI/weak-to-strong select; or their cross-entropy), evaluated ``every`` steps;
``patience`` stops early. ``oracle_select`` does the same against ground truth: it is the upper
reference a method without ground truth could reach, and every table marks it ``(oracle)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from w2slab.methods.base import Method, SelectionMethod, register_method
from w2slab.methods.baselines import HoldoutSubset, TruthSwap


@register_method("select")
@dataclass(frozen=True)
class WeakLabelSelection(SelectionMethod):
    """Keep the student checkpoint that best fits held-out weak labels (no ground truth; optional early stop)."""

    def matched_baseline(self) -> Method:
        """``subset``: the same training rows (the same held-out rows left out), the final checkpoint."""
        return HoldoutSubset(holdout=self.holdout, min_holdout=self.min_holdout)


@register_method("oracle_select")
@dataclass(frozen=True)
class OracleSelection(SelectionMethod):
    """ORACLE: keep the student checkpoint that best fits held-out ground truth (an upper reference)."""

    reads: ClassVar[frozenset[str]] = frozenset({"weak_labels", "ground_truth"})
    oracle: ClassVar[bool] = True

    def matched_baseline(self) -> Method:
        """``truth_swap`` of the rows it holds out (the same size rule and draw): its ground truth, learnt directly."""
        return TruthSwap(labelled=self.min_holdout, holdout=self.holdout)

    def validation_targets(self, weak: np.ndarray, truth: Callable[[], np.ndarray] | None) -> np.ndarray:
        if truth is None:
            raise RuntimeError("oracle_select needs ground truth and was given none")
        labels = truth()
        return np.eye(weak.shape[1], dtype=np.float32)[labels]
