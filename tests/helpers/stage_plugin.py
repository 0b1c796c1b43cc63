"""A stage kind defined outside w2slab, in one file: its spec, its compute function, and the method that adds it.

``smooth`` mixes the weak model's transfer labels with the uniform distribution (label smoothing as its own cached
stage); the method ``smooth_labels`` puts it between the weak labels and the student.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from w2slab.methods import ChainMethod, SoftLabels, register_method
from w2slab.pipeline.artifacts import StageFolder
from w2slab.pipeline.kinds import register_stage

#: set to a file path to make the next compute stop half-way once (a killed stage, for the resume test)
INTERRUPT_ONCE = "W2SLAB_TEST_INTERRUPT_SMOOTH"


@dataclass(frozen=True)
class SmoothSpec:
    alpha: float


@register_stage("smooth", order=7.5, replace=True)
def compute_smooth(stage, inputs: dict[str, Path], work: Path, runtime) -> None:
    """weak labels mixed with the uniform distribution"""
    labels = StageFolder(inputs["labels"]).labels("transfer")
    ids = StageFolder(inputs["labels"]).ids("transfer")
    (work / "half.txt").write_text("started")
    flag = os.environ.get(INTERRUPT_ONCE)
    if flag and not Path(flag).exists():
        Path(flag).write_text("interrupted once")
        raise KeyboardInterrupt
    k = labels.probs.shape[1]
    smoothed = (1 - stage.spec.alpha) * labels.probs + stage.spec.alpha / k
    StageFolder(work).write_labels("transfer", ids, SoftLabels(smoothed.astype(np.float32), labels.weights))
    runtime.echo(f"  smoothed {len(ids)} labels with alpha {stage.spec.alpha}")


@register_method("smooth_labels", replace=True)
@dataclass(frozen=True)
class SmoothLabels(ChainMethod):
    """Students learn from the weak labels smoothed towards uniform (a plugin stage kind)."""

    stage_kind: ClassVar[str] = "smooth"
    alpha: float = 0.2

    def labels_stage(self, builder):
        return builder.add("smooth", SmoothSpec(self.alpha), {"labels": builder.weak_label},
                           label=f"smooth {self.alpha} {builder.name}")
