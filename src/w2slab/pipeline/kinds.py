"""The pipeline's own stage kinds, and the lookups every list of kinds goes through.

The registry, :class:`StageKind` and ``@register_stage`` live below the methods (:mod:`w2slab.methods.stage_api`),
so that a method with a stage of its own registers it in its own file, as a plugin does. This module registers the
kinds the pipeline computes itself (:mod:`w2slab.pipeline.compute`), by import path, so that listing the kinds (for
``w2s --help``) loads no torch; it imports :mod:`w2slab.methods`, which registers the built-in methods' kinds, so
that :func:`stage_kind` and :func:`stage_kinds` know every built-in kind.
"""

from __future__ import annotations

import w2slab.methods  # noqa: F401 - registers the built-in methods and the stage kinds they own
from w2slab.errors import ConfigError
from w2slab.methods.stage_api import STAGES, ComputeFn, StageKind, register_stage

__all__ = ["STAGES", "ComputeFn", "StageKind", "register_stage", "stage_kind", "stage_kinds"]

_BUILTIN = "w2slab.pipeline.compute"
for _kind in (
    StageKind("split", f"{_BUILTIN}:compute_split", order=0, description="read the data, draw the three splits"),
    StageKind("weak_train", f"{_BUILTIN}:compute_weak_train", trains=True, order=1,
              description="train the weak model on ground truth"),
    StageKind("weak_label", f"{_BUILTIN}:compute_weak_label", uses_device=True, order=2,
              description="the weak model labels transfer and test"),
    StageKind("features", f"{_BUILTIN}:compute_features", uses_device=True, order=3,
              description="frozen-backbone features (probes, feature-reading methods)"),
    StageKind("ceiling", f"{_BUILTIN}:compute_ceiling", trains=True, order=4,
              description="train the strong model on ground truth"),
    StageKind("supervise", f"{_BUILTIN}:compute_supervise", order=5,
              description="a synthetic supervisor labels transfer and test"),
    StageKind("ensemble", f"{_BUILTIN}:compute_ensemble", order=6, description="average several weak models' labels"),
    StageKind("relabel", f"{_BUILTIN}:compute_relabel", order=7,
              description="a label method rewrites the transfer labels and weights"),
    StageKind("student", f"{_BUILTIN}:compute_student", trains=True, order=8,
              description="train the strong model on its labels with one loss"),
    StageKind("evaluate", f"{_BUILTIN}:compute_evaluate", order=9,
              description="metrics, intervals and diagnostics of one student"),
):
    STAGES.register(_kind.name, _kind)


def stage_kind(name: str) -> StageKind:
    """The registered kind, or a one-line error listing them."""
    if name not in STAGES:
        raise ConfigError(f"unknown stage kind {name}; choose from {', '.join(stage_kinds())}")
    return STAGES.get(name)


def stage_kinds() -> tuple[str, ...]:
    """Every registered kind, in their dependency order (plugins after the built-ins unless they say otherwise)."""
    return tuple(sorted(STAGES.names(), key=lambda name: (STAGES.get(name).order, name)))
