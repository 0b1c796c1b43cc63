"""Stage kinds: each one registered object (name, what it computes, whether it trains), so a new kind of stage is
one file.

A kind's spec is any frozen dataclass (its fields, as plain data, are hashed into the stage's identity with its
inputs' ids and the versions); its compute function ``compute(stage, inputs, work, runtime)`` reads its inputs'
folders and writes its outputs into ``work``. Everything that once listed the kinds by hand reads them here: the
stage graph (which kinds train), the executors (what each computes, which resources it takes), ``--recompute``
and its help, the sweep plan's counts. A method adds a stage of any kind with ``GraphBuilder.add(kind, spec,
inputs)``::

    @register_stage("smooth", description="weak labels mixed with the uniform distribution")
    def compute_smooth(stage, inputs, work, runtime):
        ...

Built-in kinds name their compute function by import path (``module:function``), so listing the kinds (for
``w2s --help``) loads no torch; a plugin passes the function itself. A kind's compute defined outside w2slab is in
the identity of every stage of that kind (editing it reruns exactly those stages).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from w2slab.errors import ConfigError
from w2slab.registry import Registry

ComputeFn = Callable[..., None]  # (stage, inputs: dict[str, Path], work: Path, runtime: RuntimeConfig) -> None


@dataclass(frozen=True)
class StageKind:
    """One kind of stage."""

    name: str
    compute_ref: ComputeFn | str  # the function, or "module:function" imported on first use
    trains: bool = False  # trains a model: counted as a training, given --gpus-per-training under Ray
    uses_device: bool = False  # runs a model (predicting, extracting features) without training one
    order: float = 100.0  # position among the kinds (the dependency order the help lists them in)
    description: str = ""

    @property
    def compute(self) -> ComputeFn:
        if isinstance(self.compute_ref, str):
            module, _, function = self.compute_ref.partition(":")
            return getattr(importlib.import_module(module), function)
        return self.compute_ref

    def code_digest(self) -> str | None:
        """The source digest of a compute function defined outside w2slab (None for w2slab's own)."""
        if isinstance(self.compute_ref, str):
            return None
        from w2slab.fingerprint import code_digest

        return code_digest(self.compute_ref)


STAGES: Registry[StageKind] = Registry("stage kind")


def register_stage(name: str, *, trains: bool = False, uses_device: bool = False, order: float = 100.0,
                   description: str = "", replace: bool = False) -> Callable[[ComputeFn], ComputeFn]:
    """Decorator on a compute function ``compute(stage, inputs, work, runtime)``: registers the stage kind ``name``
    (see :mod:`w2slab.pipeline.kinds`); the function is returned unchanged."""

    def add(compute: ComputeFn) -> ComputeFn:
        if not callable(compute):
            raise ConfigError(f"register_stage({name!r}) decorates a function compute(stage, inputs, work, runtime)")
        STAGES.register(name, StageKind(name, compute, trains, uses_device, order,
                                        description or (compute.__doc__ or "").strip().split("\n")[0]),
                        replace=replace)
        return compute

    return add


_BUILTIN = "w2slab.pipeline.stages"
_METHODS = "w2slab.pipeline.method_stages"  # the kinds methods add (their algorithms live in w2slab.methods)
for _kind in (
    StageKind("split", f"{_BUILTIN}:compute_split", order=0, description="read the data, draw the three splits"),
    StageKind("weak_train", f"{_BUILTIN}:compute_weak_train", trains=True, order=1,
              description="train the weak model on ground truth"),
    StageKind("boost", f"{_METHODS}:compute_boost", trains=True, order=1.5,
              description="weak experts trained in turn on reweighted rows (EnsemW2S), their vote"),
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
    StageKind("trust", f"{_METHODS}:compute_trust", order=7.5,
              description="a trust score per teacher label, learned from a few labelled rows, filters them"),
    StageKind("select_labels", f"{_METHODS}:compute_select_labels", order=8.5,
              description="a selector keeps the student's or the weak label where they disagree"),
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


def describe_kinds() -> list[dict[str, Any]]:
    return [{"name": k, "trains": STAGES.get(k).trains, "description": STAGES.get(k).description}
            for k in stage_kinds()]
