"""Weak-to-strong methods: registered components that change what a student learns from or how it trains.

A *student* of an experiment is one loss together with one method (``none`` is the plain recipe of the
paper). A method is a frozen dataclass registered by name, like a loss; its class says which hooks it
uses and which labels it reads:

- :class:`LabelMethod` rewrites the transfer set's soft labels and per-example weights in a ``relabel``
  stage (confidence filtering, kNN / logistic-regression relabelling); weight 0 removes a row;
- :class:`SupervisorMethod` replaces the trained weak model by a supervisor that labels transfer and
  test itself (synthetic supervisors with a chosen error structure); it is the *weak* side of the
  experiment, so it may read ground truth, which it turns into labels;
- :class:`SelectionMethod` holds out part of the transfer set and picks the student's checkpoint on it
  (against the weak labels, or against ground truth as a named oracle);
- :class:`ChainMethod` builds a chain of stages that ends in the labels the student learns from
  (ensembles of weak models, bootstrapping through an intermediate model, strong-to-strong rounds).

**Ground truth.** Every method declares ``reads``, a subset of :data:`LABEL_SOURCES`. A student-side
method that reads ``ground_truth`` must be an ``oracle`` (its label says so, and every table marks it);
the graph refuses any other (:func:`check_no_leakage`). Student-side stages are also handed splits
without their labels, and the ground truth a stage did read is counted in its folder, so a result says
how many ground-truth labels each role consumed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from w2slab.component import Component, registrar
from w2slab.errors import ConfigError
from w2slab.registry import Registry

if TYPE_CHECKING:
    from w2slab.losses import Loss

#: What a method may read: the weak model's labels on the transfer set, ground truth, the strong model's
#: frozen features of the transfer set, or a trained student's labels.
LABEL_SOURCES = ("weak_labels", "ground_truth", "strong_features", "student_labels")

METHODS: Registry[type[Method]] = Registry("method")


class LeakageError(ConfigError):
    """A student-side stage tried to read ground truth without being a named oracle."""


@dataclass
class SoftLabels:
    """What a student learns from on the transfer set: soft labels [N, K] and per-example weights [N].

    ``weights`` 0 removes a row from training (filtering); other values scale its loss.
    """

    probs: np.ndarray
    weights: np.ndarray

    @classmethod
    def of(cls, probs: np.ndarray) -> SoftLabels:
        return cls(np.asarray(probs, dtype=np.float32), np.ones(len(probs), dtype=np.float32))

    @property
    def kept(self) -> np.ndarray:
        return self.weights > 0


# --- the stage graph as a method sees it ----------------------------------------------------------------
# A method's hooks are called with the pipeline's graph builder (w2slab.pipeline.graph.GraphBuilder) and return its
# stages. The pipeline sits a layer above the methods, so a method names them by these protocols, which the builder
# and its stages implement, and never imports the pipeline.


@dataclass(frozen=True)
class ModelInput:
    """A model as a stage sees it: its name, the revision of its weights, and how texts are encoded."""

    model: str
    revision: str
    max_ctx: int
    truncation: str
    image_size: int | None = None  # images: the side they are resized to (None: the model's own)
    # w2slab.pipeline.graph.model_defaults at plan time: family defaults, overrides, a plugin source's code
    defaults: str = ""

    def to_value(self) -> dict[str, Any]:
        """Plain data; ``image_size`` and ``defaults`` only when set."""
        value = {"model": self.model, "revision": self.revision, "max_ctx": self.max_ctx, "truncation": self.truncation}
        if self.defaults:
            value["defaults"] = json.loads(self.defaults)
        return value if self.image_size is None else {**value, "image_size": self.image_size}


@runtime_checkable
class StageNode(Protocol):
    """One stage of the graph (:class:`w2slab.pipeline.graph.Stage`): its kind, its spec, its inputs by role."""

    kind: str
    spec: Any
    inputs: dict[str, StageNode]
    label: str

    @property
    def id(self) -> str:
        """The stage's content identity."""
        ...


@runtime_checkable
class StageBuilder(Protocol):
    """What a method builds its stages with (:class:`w2slab.pipeline.graph.GraphBuilder`): the experiment's shared
    stages, and a stage of each kind, made once per identity."""

    cfg: Any  # the experiment's ExperimentConfig (w2slab.config, a layer above the methods)
    name: str  # dataset/weak->strong/seed, for stage labels
    split: StageNode
    weak_train: StageNode
    weak_label: StageNode
    ceiling: StageNode

    @property
    def num_classes(self) -> int:
        """K of the dataset, known before any stage runs."""
        ...

    def add(self, kind: str, spec: Any, inputs: dict[str, StageNode], label: str = "") -> StageNode:
        """A stage of any registered kind (``spec`` a frozen dataclass, ``inputs`` by role)."""
        ...

    def model_input(self, model: str) -> ModelInput: ...

    def weak_model(self, model: str, seed: int, train: Any = None, bagged: bool = False
                   ) -> tuple[StageNode, StageNode]:
        """A weak model's training stage and its labelling stage."""
        ...

    def features_of(self, model: str) -> StageNode: ...

    def relabel(self, method: Method, labels: StageNode | None = None) -> StageNode: ...

    def supervise(self, method: Method) -> StageNode: ...

    def ensemble(self, members: list[StageNode], weights: tuple[float, ...] = ()) -> StageNode: ...

    def student(self, loss: Loss, labels: StageNode, method: Method | None = None, model: str | None = None,
                train: Any = None, label: str = "") -> StageNode: ...


@dataclass(frozen=True)
class Method(Component):
    """Base of every registered method (see the module docstring for the kinds)."""

    registry: ClassVar[Registry] = METHODS
    #: the sources the method reads besides nothing (a subset of LABEL_SOURCES)
    reads: ClassVar[frozenset[str]] = frozenset({"weak_labels"})
    #: an oracle reads ground truth on the student's side on purpose: its results are upper references
    oracle: ClassVar[bool] = False
    #: the stage kind this method adds or configures ("" for none); a kind of its own is registered in its module
    stage_kind: ClassVar[str] = ""
    #: the dataset modalities the method has a meaning for (a cue in a text's wording has none for images)
    modalities: ClassVar[frozenset[str]] = frozenset({"text", "image", "vector"})

    @property
    def plain(self) -> bool:
        """The paper's recipe: no method at all."""
        return False

    def extra_models(self) -> tuple[str, ...]:
        """Models the method trains besides the experiment's weak and strong ones (checked before any work)."""
        return ()

    def student_label(self, loss_label: str) -> str:
        """The student's name in tables: the loss, then ``+method`` (and ``ORACLE`` for an oracle)."""
        if self.plain:
            return loss_label
        return f"{loss_label}+{self.label}" + ("(oracle)" if self.oracle else "")

    def labels_stage(self, builder: StageBuilder) -> StageNode:
        """The stage whose ``transfer.npz`` the student learns from (default: the weak model's labels)."""
        return builder.weak_label

    def supervisor_stage(self, builder: StageBuilder) -> StageNode:
        """The stage whose ``test.npz`` is the *weak* accuracy PGR is measured from (default: the weak model)."""
        return builder.weak_label

    def build_student(self, builder: StageBuilder, loss: Loss, label: str) -> StageNode:
        """The final student of this (loss, method): by default one student on :meth:`labels_stage`."""
        return builder.student(loss, self.labels_stage(builder), self, label=label)

    def matched_baseline(self) -> Method | None:
        """The method this one's student is compared against, when the plain recipe is not a fair comparison.

        A method that trains on fewer rows, or reads ground truth on the student's side, differs from plain xent by
        more than what it does: its matched baseline has the same rows or the same ground-truth labels and does
        nothing else with them (``subset`` for ``select``, ``truth_swap`` for an oracle). None: the report's
        default rule (the plain baseline student) applies.
        """
        return None


@dataclass(frozen=True)
class LabelMethod(Method):
    """Rewrites the transfer set's labels and weights in a ``relabel`` stage before the student trains."""

    stage_kind: ClassVar[str] = "relabel"

    def transform(self, labels: SoftLabels, context: RelabelContext) -> SoftLabels:
        raise NotImplementedError

    def truth_sample(self, n: int) -> tuple[str, int]:
        """An oracle label method's ground truth (asked only of one that reads ``ground_truth``): the rule that draws
        the transfer rows it reads, as the oracle it matches draws them, and how many of ``n``: ``("holdout",
        count)``, the rows a selection oracle holds out, or ``("labelled", count)``, a labelled sample (trust's and
        selective's rows). The relabel stage draws them through the leakage guard and counts them."""
        raise ConfigError(f"method {self.name!r} reads ground truth: say which transfer rows (truth_sample)")

    def labels_stage(self, builder: StageBuilder) -> StageNode:
        return builder.relabel(self)


@dataclass(frozen=True)
class SupervisorMethod(Method):
    """Replaces the trained weak model: labels transfer and test itself in a ``supervise`` stage."""

    reads: ClassVar[frozenset[str]] = frozenset({"ground_truth"})
    stage_kind: ClassVar[str] = "supervise"

    def check_classes(self, num_classes: int) -> None:
        """Refuse, before any work, parameters that do not fit the task's number of classes."""

    def supervise(self, texts: dict[str, list[str]], labels: dict[str, np.ndarray], num_classes: int,
                  seed: int) -> dict[str, np.ndarray]:
        """Soft labels [N, K] on ``transfer`` and ``test`` from their texts and ground-truth ``labels``."""
        raise NotImplementedError

    def labels_stage(self, builder: StageBuilder) -> StageNode:
        return builder.supervise(self)

    def supervisor_stage(self, builder: StageBuilder) -> StageNode:
        return builder.supervise(self)


def holdout_size(n: int, fraction: float, minimum: int) -> int:
    """Rows held out of ``n``: ``fraction`` of them, at least ``minimum``, at most half (and at least one).

    One rule for a selection method's held-out rows and for the ground truth its label-matched baseline reads,
    so that the two count the same labels at every transfer size.
    """
    return max(1, min(n // 2, max(minimum, int(round(fraction * n)))))


@dataclass(frozen=True)
class SelectionMethod(Method):
    """Holds out ``holdout`` of the transfer set and keeps the student's best checkpoint on it (or stops early).

    At least ``min_holdout`` rows are held out (at most half the transfer set): with 100 held-out rows, one
    example is a point of accuracy and the choice between checkpoints is mostly noise. The default metric is
    accuracy, the metric every result reports.
    """

    stage_kind: ClassVar[str] = "student"
    #: keep the best checkpoint on the held-out rows; False: only leave them out (``subset``, select's baseline)
    selects: ClassVar[bool] = True
    holdout: float = 0.1
    min_holdout: int = 200
    every: int = 0  # evaluate every this many steps (0: ten times per training)
    patience: int = 0  # stop after this many evaluations without improvement (0: never stop early)
    metric: str = "accuracy"  # against the held-out labels: accuracy, auroc or loss

    def __post_init__(self) -> None:
        super().__post_init__()
        from w2slab.typed import check

        check(0.0 < self.holdout < 1.0, "holdout", f"must be in (0, 1), got {self.holdout}")
        check(self.every >= 0 and self.patience >= 0, "every", "every and patience must be >= 0")
        check(self.min_holdout >= 1, "min_holdout", f"must be >= 1, got {self.min_holdout}")
        check(self.metric in ("accuracy", "auroc", "loss"), "metric",
              f"must be accuracy, auroc or loss, got {self.metric!r}")

    def holdout_size(self, n: int) -> int:
        """Rows held out of ``n``: ``holdout`` of them, at least ``min_holdout``, at most half."""
        return holdout_size(n, self.holdout, self.min_holdout)

    def validation_targets(self, weak: np.ndarray, truth: Callable[[], np.ndarray] | None) -> np.ndarray:
        """What the held-out rows are scored against: the weak labels (an oracle overrides this)."""
        return weak


@dataclass(frozen=True)
class ChainMethod(Method):
    """Builds its own chain of stages ending in the student's labels (and, for ensembles, the supervisor)."""


@dataclass
class RelabelContext:
    """What a :class:`LabelMethod` may see: transfer texts, the strong model's frozen features when it
    reads them, and a seed. Ground truth only for an oracle label method: the relabel stage draws its rows
    through the leakage guard (which refuses any other method) and counts them; every other method gets none."""

    texts: list[str]
    seed: int
    num_classes: int
    features: np.ndarray | None = None
    truth_rows: np.ndarray | None = None  # the transfer rows whose ground truth an oracle label method reads
    truth: np.ndarray | None = None  # their ground-truth classes

    def strong_features(self) -> np.ndarray:
        if self.features is None:
            raise ConfigError("this method reads strong_features but declares no such input; add "
                              "'strong_features' to its reads")
        return self.features

    def ground_truth(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, their ground-truth classes), handed to an oracle label method only."""
        if self.truth_rows is None or self.truth is None:
            raise LeakageError("this relabel stage holds no ground truth: only an oracle label method that reads "
                               "ground_truth is given any")
        return self.truth_rows, self.truth


#: ``@register_method("name")`` on a :class:`Method` subclass (made a frozen dataclass if it is not one).
register_method = registrar(Method)


def make_method(spec: str | dict | Method) -> Method:
    """A method from a name, a ``{name: ..., param: ...}`` mapping or an instance (validated)."""
    return Method.from_value(spec)


def check_method(method: Method) -> None:
    """Refuse a student-side method that reads ground truth without being a named oracle (exit 2, before work)."""
    unknown = set(method.reads) - set(LABEL_SOURCES)
    if unknown:
        raise ConfigError(f"method {method.name!r} reads unknown sources {sorted(unknown)}; choose from "
                          f"{', '.join(LABEL_SOURCES)}")
    if "ground_truth" in method.reads and not (method.oracle or isinstance(method, SupervisorMethod)):
        raise LeakageError(f"method {method.name!r} reads ground truth on the student's side; declare it an "
                           "oracle (oracle = True, and its results are marked as such) or read weak labels only")


def describe(method_cls: type[Method]) -> dict[str, Any]:
    """One row of ``w2s methods``."""
    kind = next((k.__name__.removesuffix("Method").lower() for k in (LabelMethod, SupervisorMethod,
                                                                     SelectionMethod, ChainMethod)
                 if issubclass(method_cls, k)), "plain")
    return {"name": method_cls.name, "kind": kind, "oracle": method_cls.oracle, "reads": sorted(method_cls.reads),
            "summary": method_cls.summary()}
