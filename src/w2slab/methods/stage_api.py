"""What a stage kind is written against: the registry of kinds and what a compute function is handed.

A kind of stage is a registered object (its name, its compute function, whether it trains or runs a model, its
place in the dependency order). Its spec is any frozen dataclass, whose fields, as plain data, are hashed into the
stage's identity with its inputs' ids and the versions; its compute function reads its inputs' finished folders
and writes its outputs into its work folder. Everything that lists the kinds reads them from the registry: the stage
graph (which kinds train), the executors (what each computes, which resources it takes), ``--recompute`` and its
help, the sweep plan's counts.

A method with a stage of its own keeps all of it in its file: the spec, the compute function registered with
:func:`register_stage`, and the method, whose hooks add the stage with ``builder.add(kind, spec, inputs)``::

    @dataclass(frozen=True)
    class SmoothSpec:
        alpha: float

    @register_stage("smooth", order=7.5, description="weak labels mixed with the uniform distribution")
    def compute_smooth(context: StageContext) -> None:
        labels = context.input("labels").labels("transfer")
        smoothed = (1 - context.spec.alpha) * labels.probs + context.spec.alpha / labels.probs.shape[1]
        context.output.write_labels("transfer", context.input("labels").ids("transfer"),
                                    SoftLabels(smoothed, labels.weights))

This module sits below the method modules and the pipeline: the methods import it and register their kinds when
they are imported; the pipeline registers its own kinds (``w2slab.pipeline.kinds``) and hands every compute function
its :class:`StageContext` (``w2slab.pipeline.compute.FolderContext``), so a method never imports the pipeline.

A compute function takes either the context alone, as above, or ``(stage, inputs, work, runtime)``: the stage,
its inputs' folders by role, its work folder and the ``RuntimeConfig``, read and written through
``w2slab.pipeline.artifacts.StageFolder`` (the form a plugin outside w2slab may use; it then imports the pipeline).

Identity: a kind's compute function defined outside w2slab is in the identity of every stage of that kind (editing it
reruns exactly those stages). w2slab's own, the built-in methods' included, are covered by the package's source
digest, which is in every stage's identity (``w2slab.pipeline.graph.result_versions``).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from w2slab.errors import ConfigError
from w2slab.methods.base import SoftLabels, StageNode
from w2slab.registry import Registry

#: The four splits of an experiment, in the split stage's order.
SPLIT_NAMES = ("weak_train", "transfer", "validation", "test")
#: The splits every trained model predicts (transfer: the weak labels and misfit; validation: tuning; test: the
#: table).
PREDICTED = ("transfer", "validation", "test")


@runtime_checkable
class StageFiles(Protocol):
    """A stage's folder as a compute function reads and writes it, by what each file holds and never by its name
    (:class:`w2slab.pipeline.artifacts.StageFolder` implements it)."""

    def splits(self, *, blind: bool = False) -> dict[str, Any]:
        """The split stage's rows of each split (no split's labels with ``blind``; the test rows' never)."""
        ...

    def ids(self, split: str) -> list[str]: ...

    def probs(self, split: str) -> np.ndarray:
        """A split's predicted probabilities [N, K]."""
        ...

    def labels(self, split: str) -> SoftLabels:
        """A split's soft labels and per-example weights: what a student learns from."""
        ...

    def features(self, split: str, *, pair_difference: bool = False) -> np.ndarray:
        """The frozen features of a split [N, H] (preference pairs: [N, 2, H], or their difference)."""
        ...

    def teachers(self) -> np.ndarray:
        """An ensemble's per-member transfer labels [N, M, K]."""
        ...

    def write_predictions(self, split: str, ids: list[str], logits: np.ndarray,
                          weights: np.ndarray | None = None) -> None: ...

    def write_labels(self, split: str, ids: list[str], labels: SoftLabels) -> None: ...

    def write_json(self, name: str, value: Any) -> None:
        """A stage's own report (a method's rounds, what it kept)."""
        ...

    def write_resolved(self, resolved: dict[str, Any]) -> None:
        """What a stage's model resolved at run time (learning rate, precision, device, pooling)."""
        ...


@runtime_checkable
class TrainableModel(Protocol):
    """A model of one role, loaded for a stage with its splits encoded: it trains fresh copies and predicts
    (:class:`w2slab.pipeline.role_model.RoleModel` implements it)."""

    num_labels: int

    def subset(self, name: str, rows: np.ndarray) -> str:
        """The name of a new split made of some ``rows`` of split ``name``."""
        ...

    def fit(self, train_split: str, targets: np.ndarray, loss_fn: Any, *, seed: int, desc: str,
            weights: np.ndarray | None = None, **options: Any) -> tuple[Any, Any]:
        """A fresh copy trained on ``train_split`` with soft ``targets`` (and per-example loss ``weights``): the
        model and its ``TrainResult``."""
        ...

    def predict_splits(self, model: Any, names: Sequence[str], desc: str = "predict") -> dict[str, np.ndarray]:
        """``model``'s logits on each split of ``names``."""
        ...

    def resolved_settings(self) -> dict[str, Any]: ...


@runtime_checkable
class StageContext(Protocol):
    """What a compute function of one argument is handed: its stage, its inputs' finished folders, its work
    folder, the stage's model and the ground-truth bookkeeping (``w2slab.pipeline.compute.FolderContext``
    implements it)."""

    stage: StageNode
    inputs: dict[str, Path]  # the finished input folders, by role
    work: Path  # where the outputs go (made atomic by the store)
    runtime: Any  # the RuntimeConfig (w2slab.config, a layer above the methods)

    @property
    def spec(self) -> Any:
        """The stage's spec."""
        ...

    @property
    def output(self) -> StageFiles:
        """The work folder."""
        ...

    def input(self, role: str) -> StageFiles:
        """The finished folder of the input ``role``."""
        ...

    def echo(self, message: str) -> None:
        """A line of progress, where the run's messages go."""
        ...

    def role_model(self, role: str, splits: dict[str, Any], names: Sequence[str], train: Any) -> TrainableModel:
        """The model of the stage's spec (``spec.model``, a :class:`~w2slab.methods.base.ModelInput`) in ``role``
        (weak, strong), training with ``train`` (a ``TrainConfig``), with the splits ``names`` of ``splits``
        encoded."""
        ...

    def labelled_sample(self, n: int, count: int, seed: int, method: Any) -> tuple[np.ndarray, np.ndarray]:
        """``count`` transfer rows of ``n`` drawn by ``seed`` and their ground truth, for an oracle ``method`` (the
        leakage guard refuses any other); the same rows for every stage of one experiment seed."""
        ...

    def record_ground_truth(self, role: str | None = None, count: int = 0,
                            rows: dict[str, np.ndarray] | None = None) -> None:
        """The ground truth this stage read (``count`` labels for ``role``, and which ``rows`` of which split where
        known), added to its inputs' records. A stage that records none passes its inputs' on."""
        ...


#: ``compute(context)``, or ``compute(stage, inputs, work, runtime)`` (module docstring)
ComputeFn = Callable[..., None]


def takes_context(compute: ComputeFn) -> bool:
    """Whether ``compute`` is ``compute(context)`` (one parameter) rather than ``compute(stage, inputs, work,
    runtime)``."""
    try:
        return len(inspect.signature(compute).parameters) == 1
    except (TypeError, ValueError):  # a callable without a signature: the four-argument form
        return False


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

    def run(self, context: StageContext) -> None:
        """The compute function, called in the form it takes."""
        compute = self.compute
        if takes_context(compute):
            compute(context)
        else:
            compute(context.stage, context.inputs, context.work, context.runtime)

    def code_digest(self) -> str | None:
        """The source digest of a compute function defined outside w2slab (None for w2slab's own)."""
        if isinstance(self.compute_ref, str):
            return None
        from w2slab.fingerprint import code_digest

        return code_digest(self.compute_ref)


STAGES: Registry[StageKind] = Registry("stage kind")


def register_stage(name: str, *, trains: bool = False, uses_device: bool = False, order: float = 100.0,
                   description: str = "", replace: bool = False) -> Callable[[ComputeFn], ComputeFn]:
    """Decorator on a compute function, ``compute(context)`` or ``compute(stage, inputs, work, runtime)``:
    registers the stage kind ``name`` (module docstring); the function is returned unchanged. ``description``
    (default: the docstring's first line) is what ``--recompute``'s help lists."""

    def add(compute: ComputeFn) -> ComputeFn:
        if not callable(compute):
            raise ConfigError(f"register_stage({name!r}) decorates a function compute(context) or "
                              "compute(stage, inputs, work, runtime)")
        STAGES.register(name, StageKind(name, compute, trains, uses_device, order,
                                        description or (compute.__doc__ or "").strip().split("\n")[0]),
                        replace=replace)
        return compute

    return add
