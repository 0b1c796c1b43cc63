"""Experiments as a graph of stages with content identities.

Each stage has a frozen, typed spec (its own configuration) and named inputs. Its identity is the
hash of its kind, its spec, its inputs' identities and the versions that change results (w2slab,
torch, transformers, peft, the model's revision). So the weak model of (dataset, weak model, seed,
training config) is one stage however many strong models and losses use it, and the ceiling of
(dataset, strong model, seed) is shared by every weak model and loss.

    split ─┬─> weak_train ──> weak_label ─┬──────────────> student(loss) ──> evaluate(loss)
           ├─> features (probe mode only) ─┼─> ceiling ─────────────────────────┘
           └───────────────────────────────┘

A method (:mod:`w2slab.methods`) puts stages between the weak labels and the student: a ``relabel``
stage (filtering, kNN relabelling), a ``supervise`` stage instead of the weak model (synthetic
supervisors), more weak models (ensembles) or more students (bootstrapping, strong-to-strong). Each
student is one (loss, method); its evaluation measures PGR from the supervisor it learned from.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import importlib.metadata
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from w2slab import __version__, fingerprint
from w2slab.config import ExperimentConfig, TrainConfig
from w2slab.errors import ConfigError
from w2slab.losses import Loss
from w2slab.methods.base import Method, ModelInput, SelectionMethod, check_method
from w2slab.pipeline.kinds import stage_kind
from w2slab.typed import to_plain

if TYPE_CHECKING:  # the trainer imports torch; the graph is built without it
    from w2slab.train.trainer import TrainerCallback

#: Libraries whose version can change a number in a result (tokenisation, kernels, metrics, data loading).
RESULT_PACKAGES = ("torch", "transformers", "tokenizers", "peft", "accelerate", "numpy", "scikit-learn",
                   "safetensors", "datasets")


@functools.cache
def result_versions() -> dict[str, str | None]:
    """What code produced a result: w2slab's version and source digest, and the result-relevant libraries."""
    versions: dict[str, str | None] = {"w2slab": __version__, "w2slab_source": fingerprint.source_digest()}
    for package in RESULT_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def model_revision(name: str) -> str:
    """What identifies the weights behind a model name (its :class:`~w2slab.models.sources.ModelSource`).

    Packaged models: their pinned packages. A local folder: the content of every file in it (streamed
    hash, remembered by size and mtime). A Hub id: the commit ``main`` points to, resolved once here and
    loaded with that ``revision`` by the stages (``hub:<id>@<sha>``).
    """
    from w2slab.models.sources import model_source

    return model_source(name).revision(name)


def model_defaults(name: str) -> str:
    """What the model trains with besides its weights, as JSON text: its family's defaults with the model's own
    overrides (pooling, learning rates, LoRA targets) and, for a plugin's model source, its code. Re-registering a
    family or a model with another pooling or lr changes what trains, so it is in every stage that loads it."""
    from w2slab.models.sources import model_source

    source = model_source(name)
    defaults = source.defaults(name)
    value: dict[str, Any] = {"family": to_plain(defaults) if defaults is not None else None}
    if code := fingerprint.code_digest(type(source)):
        value["source_code"] = code
    return json.dumps(value, sort_keys=True, default=str)


def pinned_revision(revision: str) -> str | None:
    """The commit to load a Hub model or dataset at, from its recorded revision (None: not a pinned Hub source)."""
    if revision.startswith("hub:") and "@" in revision:
        sha = revision.rsplit("@", 1)[1]
        return None if sha == "unresolved" else sha
    return None


def dataset_revision(name: str, source: str = "auto", data_root: str | None = None) -> str:
    """What identifies the rows a split stage reads (its :class:`~w2slab.data.sources.DataSource`).

    A user's file: its content. A registered dataset read offline: the content of the files it reads
    under the data root. Read from the Hub: the dataset repository's commit, loaded at that revision.
    """
    from w2slab.data.sources import data_source

    reader = data_source(name)
    code = fingerprint.code_digest(type(reader))  # a plugin's data source: its code reads the rows
    return reader.revision(name, source, data_root) + (f"+source:{code}" if code else "")


def check_data_unchanged(name: str, planned: str, source: str = "auto", data_root: str | None = None) -> None:
    """Refuse to read a dataset whose rows changed since the run was planned: the stage would be stored under the
    old rows' identity (and reverting the file later would reuse the wrong split). A Hub dataset is loaded at the
    commit pinned then, so only local content is compared."""
    from w2slab.errors import DataError

    if pinned_revision(planned) is not None or planned.startswith("hub:"):
        return
    if dataset_revision(name, source, data_root) != planned:
        raise DataError(f"data {name} changed since the run was planned; run again")


def check_model_unchanged(name: str, planned: str) -> None:
    """Refuse to load a local model folder whose files changed since the run was planned (its revision is its
    content, taken at plan time; training what is there now would store it under the old identity)."""
    from w2slab.errors import ModelError

    if not planned.startswith("folder:"):
        return
    if model_revision(name) != planned:
        raise ModelError(f"model folder {name} changed since the run was planned; run again")


def resolved_precision(precision: str) -> dict[str, str]:
    """``auto`` as this machine resolves it, and the device type: fp32 on CPU and bf16 on a GPU are not one result."""
    from w2slab.distributed import device
    from w2slab.train.precision import resolve_precision

    where = device()
    return {"precision": resolve_precision(precision, where), "device": where.type}


# --- stage specs: what each kind of stage is configured by (frozen, typed, serialisable) -------------


@dataclass(frozen=True)
class SplitSpec:
    dataset: str
    dataset_revision: str
    n_train: int
    n_test: int
    seed: int  # the partition of the pool into weak_train and transfer
    data_source: str
    drop_longer_than: int | None = None  # truncation=drop: rows longer than this for any of drop_for_models
    drop_for_models: tuple[str, ...] = ()
    # their revisions (a local folder's content, tokenizer.json included; a Hub commit, loaded pinned): which rows
    # drop depends on the tokenizers, so an edited tokenizer is another split
    drop_model_revisions: tuple[str, ...] = ()
    file_fields: dict[str, Any] | None = None  # a user's file: text_field, label_field, label_map
    data_seed: int = 0  # which rows form the pool and the test set
    n_val: int = 0  # validation rows beside the pool (ground truth for tuning; 0: none)


def callback_identities(callbacks: tuple[TrainerCallback, ...]) -> tuple[str, ...]:
    """What identifies the user's trainer callbacks in a training stage: each one's class and, for the user's own
    code, its source digest. A callback can change what is trained (stop early, change the learning rate), so it
    is part of the identity unless its class declares ``observes_only = True`` (logging, progress)."""
    out = []
    for callback in callbacks:
        if callback.observes_only:
            continue
        cls = type(callback)
        digest = fingerprint.code_digest(cls)
        out.append(f"{cls.__module__}.{cls.__qualname__}" + (f"@{digest}" if digest else ""))
    return tuple(out)


def user_code(**components: Any) -> dict[str, Any]:
    """``{"user_code": {role: digest}}`` for the components defined outside w2slab (empty when all are its own,
    so stages of built-in components keep the identities they always had)."""
    digests = {role: c.code_digest() for role, c in components.items() if c is not None}
    digests = {role: d for role, d in digests.items() if d}
    return {"user_code": digests} if digests else {}


@dataclass(frozen=True)
class TrainSpec:
    """weak_train and ceiling: one model trained on ground truth."""

    model: ModelInput
    train: TrainConfig
    seed: int
    # train on a bootstrap resample of the rows (drawn with the seed): ensemble members then differ by their data,
    # not only by shuffle order (a zero head and no dropout leave little else to differ by)
    bagged: bool = False
    # the user's trainer callbacks that can change what is trained (RuntimeConfig.callbacks): class and source
    callbacks: tuple[str, ...] = ()

    def to_value(self) -> dict[str, Any]:
        train = {**self.train.identity(), **resolved_precision(self.train.precision)}
        return {"model": to_plain(self.model), "train": train, "seed": self.seed,
                **({"bagged": True} if self.bagged else {}), **({"callbacks": list(self.callbacks)}
                                                                 if self.callbacks else {})}


@dataclass(frozen=True)
class StudentSpec(TrainSpec):
    """The strong model trained on soft labels (its ``labels`` input) with one loss and one method."""

    loss: Loss = None  # type: ignore[assignment] - always given; dataclass field order needs a default
    method: Method | None = None  # None: the plain recipe (no selection)

    def to_value(self) -> dict[str, Any]:
        selection = {"method": self.method.to_value()} if self.method is not None else {}
        return {**super().to_value(), "loss": self.loss.to_value(), **selection,
                **user_code(loss=self.loss, method=self.method)}


@dataclass(frozen=True)
class RelabelSpec:
    """A label method applied to its ``labels`` input (the seed draws any randomness it needs)."""

    method: Method
    seed: int

    def to_value(self) -> dict[str, Any]:
        return {"method": self.method.to_value(), "seed": self.seed, **user_code(method=self.method)}


@dataclass(frozen=True)
class SuperviseSpec:
    """A synthetic supervisor: labels transfer and test from ground truth with its error structure."""

    method: Method
    seed: int
    num_classes: int

    def to_value(self) -> dict[str, Any]:
        return {"method": self.method.to_value(), "seed": self.seed, "num_classes": self.num_classes,
                **user_code(method=self.method)}


@dataclass(frozen=True)
class EnsembleSpec:
    """The weighted mean of its ``member_<i>`` inputs' soft labels (weights normalised; empty: equal)."""

    weights: tuple[float, ...] = ()


@dataclass(frozen=True)
class WeakLabelSpec:
    """Predictions of the trained weak model: everything that matters is in its inputs."""


@dataclass(frozen=True)
class FeaturesSpec:
    model: ModelInput
    precision: str

    def to_value(self) -> dict[str, Any]:
        return {"model": to_plain(self.model), **resolved_precision(self.precision)}


@dataclass(frozen=True)
class EvaluateSpec:
    """Metrics of one (experiment, loss); ``config`` is the experiment restricted to that loss."""

    config: ExperimentConfig

    @property
    def loss(self) -> Loss:
        return self.config.losses[0]

    @property
    def method(self) -> Method:
        return self.config.methods[0]


StageSpec = (SplitSpec | TrainSpec | StudentSpec | WeakLabelSpec | FeaturesSpec | EvaluateSpec | RelabelSpec
             | SuperviseSpec | EnsembleSpec)



def plain_identity(value: Any, path: str) -> Any:
    """``value`` as JSON data that says all of it: an array (numpy, torch) by its dtype, shape and a digest of its
    bytes (``str`` of a 2,000-element array elides its middle, so an edit there kept the identity), sets sorted;
    anything else that is not plain data is refused in one line naming the field, since its ``str`` may not say
    what the stage computes from."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): plain_identity(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_identity(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, set | frozenset):
        return sorted((plain_identity(v, path) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if (array := _array_identity(value)) is not None:
        return array
    if isinstance(value, enum.Enum):
        return plain_identity(value.value, path)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise ConfigError(f"{path}: a {type(value).__name__} is not plain data, so it cannot be hashed into the stage's "
                      "identity; hold numbers, strings, lists, mappings or arrays in the spec")


def _array_identity(value: Any) -> dict[str, Any] | None:
    """``{"array": {dtype, shape, sha256}}`` for a numpy array or scalar, or a torch tensor; None otherwise."""
    import sys

    np = sys.modules.get("numpy")
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if np is None or not isinstance(value, np.ndarray | np.generic):
        return None
    if isinstance(value, np.generic) and not isinstance(value, np.void):
        return value.item()  # a numpy scalar: its plain value
    data = np.ascontiguousarray(value)
    if data.dtype.hasobject:
        raise ConfigError("an array of Python objects cannot be hashed by content; hold a numeric array")
    digest = hashlib.sha256(data.tobytes()).hexdigest()
    return {"array": {"dtype": str(data.dtype), "shape": list(data.shape), "sha256": digest}}


@dataclass(eq=False)
class Stage:
    kind: str  # a registered stage kind (w2slab.pipeline.kinds)
    spec: Any  # its frozen spec dataclass (StageSpec for the built-in kinds)
    inputs: dict[str, Stage] = field(default_factory=dict)
    label: str = ""
    force: bool = False  # compute again even if finished (--recompute); not part of the identity

    def __post_init__(self) -> None:
        stage_kind(self.kind)  # an unregistered kind is one line naming the registered ones

    @property
    def trains(self) -> bool:
        return stage_kind(self.kind).trains

    def config(self) -> dict[str, Any]:
        """The spec as plain data (what is hashed and recorded), with the kind's compute code when it is the user's
        (a plugin kind: editing its function reruns exactly its stages)."""
        code = stage_kind(self.kind).code_digest()
        plain = plain_identity(to_plain(self.spec), f"stage {self.kind!r} spec")
        return {**plain, **({"user_code": {"stage": code}} if code else {})}

    @functools.cached_property
    def id(self) -> str:
        return self.identity_here()

    def identity_here(self) -> str:
        """The id as *this* process resolves it (precision, device, code and library versions, revisions), not
        the one remembered from where the stage was planned: a Ray worker compares the two before computing."""
        payload = {"kind": self.kind, "config": self.config(), "versions": result_versions(),
                   "inputs": {role: stage.id for role, stage in sorted(self.inputs.items())}}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def describe(self) -> dict:
        return {"kind": self.kind, "id": self.id, "label": self.label, "config": self.config(),
                "inputs": {role: stage.id for role, stage in self.inputs.items()}, "versions": result_versions()}


def upstream_revisions(stage: Stage) -> dict[str, str]:
    """The data and weights behind a stage: the dataset's revision and each model's, from every stage it reads.

    A result records them (and :func:`result_versions`) so that reports never average runs of other data, other
    weights or another code revision as if they were more seeds of one configuration.
    """
    revisions: dict[str, str] = {}
    seen: set[str] = set()

    def visit(node: Stage) -> None:
        if node.id in seen:
            return
        seen.add(node.id)
        spec = node.spec
        if isinstance(spec, SplitSpec):
            revisions[f"dataset:{spec.dataset}"] = spec.dataset_revision
        model = getattr(spec, "model", None)
        if isinstance(model, ModelInput):
            revisions[f"model:{model.model}"] = model.revision
        for dependency in node.inputs.values():
            visit(dependency)

    visit(stage)
    return dict(sorted(revisions.items()))


@dataclass
class ExperimentGraph:
    """The stages of one experiment: one student and one evaluation per (loss, method), keyed by the student's
    label (``xent``, ``xent+conf_filter``, ...)."""

    config: ExperimentConfig
    split: Stage
    weak_train: Stage
    weak_label: Stage
    ceiling: Stage
    students: dict[str, Stage]
    evaluations: dict[str, Stage]
    features: Stage | None = None

    def stages(self) -> list[Stage]:
        """All stages in dependency order (inputs before the stages that read them)."""
        ordered: dict[str, Stage] = {}

        def visit(stage: Stage) -> None:
            if stage.id in ordered:
                return
            for dependency in stage.inputs.values():
                visit(dependency)
            ordered[stage.id] = stage

        for stage in (self.split, self.weak_train, self.weak_label, *([self.features] if self.features else []),
                      self.ceiling):
            visit(stage)
        for label in self.students:
            visit(self.students[label])
            visit(self.evaluations[label])
        return list(ordered.values())

    def trained(self) -> dict[str, Stage]:
        """Training stages by the name results use: weak, ceiling, student_<label>."""
        return {"weak": self.weak_train, "ceiling": self.ceiling,
                **{f"student_{label}": stage for label, stage in self.students.items()}}


class GraphBuilder:
    """Builds one experiment's stages; methods call it for the stages they add (:mod:`w2slab.methods`).

    Every stage is made once per identity, so two methods that need the same weak model or features share it.
    """

    def __init__(self, cfg: ExperimentConfig, data_root: str | None = None, callbacks: tuple[Any, ...] = ()):
        self.cfg = cfg
        self.callbacks = callback_identities(callbacks)
        self.name = f"{cfg.dataset}/{cfg.weak}->{cfg.strong}/s{cfg.seed}"
        self._made: dict[str, Stage] = {}
        self.data_root = data_root
        drop = cfg.truncation == "drop" and cfg.modality == "text"  # which rows survive depends on both tokenizers
        revision = dataset_revision(cfg.dataset, cfg.data_source, data_root)
        self.split = self.make(Stage(
            "split", SplitSpec(cfg.dataset, revision, cfg.n_train, cfg.n_test, cfg.seed, cfg.data_source,
                               drop_longer_than=cfg.max_ctx if drop else None,
                               drop_for_models=tuple(sorted({cfg.weak, cfg.strong})) if drop else (),
                               drop_model_revisions=tuple(model_revision(m) for m in sorted({cfg.weak, cfg.strong}))
                               if drop else (),
                               file_fields={"text_field": cfg.text_field, "label_field": cfg.label_field,
                                            "label_map": cfg.label_map} if cfg.reads_a_file() else None,
                               data_seed=cfg.data_seed, n_val=cfg.n_val),
            label=f"{cfg.dataset} s{cfg.seed}" + (f" d{cfg.data_seed}" if cfg.data_seed else "")))
        self.weak_train, self.weak_label = self.weak_model(cfg.weak, cfg.seed)
        self.strong = TrainSpec(self.model_input(cfg.strong), cfg.strong_train, cfg.seed, callbacks=self.callbacks)
        self.features = self.features_of(cfg.strong) if cfg.strong_train.mode == "probe" else None
        self.ceiling = self.make(Stage("ceiling", self.strong, self.strong_inputs(),
                                       label=f"ceiling {cfg.strong} on {cfg.dataset} s{cfg.seed}"))

    def make(self, stage: Stage) -> Stage:
        """The stage, or the one already made with its identity."""
        return self._made.setdefault(stage.id, stage)

    def add(self, kind: str, spec: Any, inputs: dict[str, Stage], label: str = "") -> Stage:
        """A stage of any registered kind (a plugin's too): ``spec`` a frozen dataclass, ``inputs`` by role."""
        return self.make(Stage(kind, spec, dict(inputs), label=label or f"{kind} {self.name}"))

    def model_input(self, model: str) -> ModelInput:
        return ModelInput(model, model_revision(model), self.cfg.max_ctx, self.cfg.truncation, self.cfg.image_size,
                          model_defaults(model))

    @functools.cached_property
    def num_classes(self) -> int:
        """K of the dataset, known before any stage runs (methods check that they fit it)."""
        from w2slab.data import dataset_num_classes

        cfg = self.cfg
        return dataset_num_classes(cfg.dataset, data_root=self.data_root, source=cfg.data_source,
                                   **({"text_field": cfg.text_field, "label_field": cfg.label_field,
                                       "label_map": cfg.label_map} if cfg.reads_a_file() else {}))

    def weak_model(self, model: str, seed: int, train: TrainConfig | None = None,
                   bagged: bool = False) -> tuple[Stage, Stage]:
        """A weak model trained on ground truth (``bagged``: on a bootstrap resample of it), and its labels of
        transfer and test."""
        cfg = self.cfg
        spec = TrainSpec(self.model_input(model), train or cfg.weak_train, seed, bagged=bagged,
                         callbacks=self.callbacks)
        trained = self.make(Stage("weak_train", spec, {"split": self.split},
                                  label=f"weak {model} on {cfg.dataset} s{seed}" + (" bagged" if bagged else "")))
        labels = self.make(Stage("weak_label", WeakLabelSpec(), {"split": self.split, "weak_train": trained},
                                 label=f"labels of {model} on {cfg.dataset} s{seed}"))
        return trained, labels

    def features_of(self, model: str) -> Stage:
        """Frozen-backbone features of ``model`` on every split (probe students, kNN and probe relabelling)."""
        precision = self.cfg.strong_train.precision
        return self.make(Stage("features", FeaturesSpec(self.model_input(model), precision), {"split": self.split},
                               label=f"features of {model} on {self.cfg.dataset} s{self.cfg.seed}"))

    def strong_inputs(self) -> dict[str, Stage]:
        return {"split": self.split, **({"features": self.features} if self.features is not None else {})}

    def relabel(self, method: Method, labels: Stage | None = None) -> Stage:
        inputs = {"split": self.split, "labels": labels or self.weak_label}
        if "strong_features" in method.reads:
            inputs["features"] = self.features_of(self.cfg.strong)
        return self.make(Stage("relabel", RelabelSpec(method, self.cfg.seed), inputs,
                               label=f"{method.label} labels {self.name}"))

    def supervise(self, method: Method) -> Stage:
        method.check_classes(self.num_classes)
        spec = SuperviseSpec(method, self.cfg.seed, self.num_classes)
        return self.make(Stage("supervise", spec, {"split": self.split},
                               label=f"{method.label} supervisor {self.name}"))

    def ensemble(self, members: list[Stage], weights: tuple[float, ...] = ()) -> Stage:
        inputs = {"split": self.split, **{f"member_{i}": stage for i, stage in enumerate(members)}}
        return self.make(Stage("ensemble", EnsembleSpec(tuple(weights)), inputs, label=f"ensemble {self.name}"))

    def student(self, loss: Loss, labels: Stage, method: Method | None = None, model: str | None = None,
                train: TrainConfig | None = None, label: str = "") -> Stage:
        """A student of ``model`` (default: the strong model) trained on ``labels``' transfer labels."""
        model_input = self.model_input(model) if model else self.strong.model
        loss.check_training(self.num_classes, (train or self.strong.train).batch_size)
        if "teachers" in loss.needs and labels.kind != "ensemble":
            raise ConfigError(f"loss {loss.name!r} learns from several teachers; pair it with --method ensemble "
                              "(its members are the teachers: seeds, or other weak models with ensemble.models)")
        spec = StudentSpec(model_input, train or self.strong.train, self.cfg.seed, callbacks=self.callbacks,
                           loss=loss, method=method if isinstance(method, SelectionMethod) else None)
        inputs = {"labels": labels, "split": self.split}
        if (train or self.strong.train).mode == "probe":
            inputs["features"] = self.features_of(model_input.model)
        return self.make(Stage("student", spec, inputs, label=label or f"student {self.name} {loss.label}"))

    def evaluate(self, loss: Loss, method: Method, student: Stage) -> Stage:
        supervisor = method.supervisor_stage(self)
        inputs = {"split": self.split, "supervisor": supervisor, "ceiling": self.ceiling, "student": student}
        if supervisor is self.weak_label:  # the trained weak model: its settings and stability go in the result
            inputs["weak_train"] = self.weak_train
        config = dataclasses.replace(self.cfg, losses=(loss,), methods=(method,))
        return self.make(Stage("evaluate", EvaluateSpec(config), inputs,
                               label=f"evaluate {self.name} {method.student_label(loss.label)}"))


def models_to_load(cfg: ExperimentConfig) -> list[tuple[str, str]]:
    """``(role, name)`` of every model the experiment will load: weak, strong, and those named in method parameters
    (``bootstrap.via``, ``ensemble.models``), which otherwise failed inside a stage after the weak model and the
    ceiling had trained."""
    models = [("weak", cfg.weak), ("strong", cfg.strong)]
    for method in cfg.methods:
        models.extend((f"method {method.name}", name) for name in method.extra_models())
    return models


def _check_coordinates(cfg: ExperimentConfig, data_root: str | None) -> None:
    """Refuse, before any work, a ``coords:`` model reading past the vectors' last coordinate (it failed inside its
    first stage)."""
    from w2slab.data import load_task
    from w2slab.data.vectors import decode_vector
    from w2slab.models.sources import coordinate_range

    task = load_task(cfg.dataset, data_root=data_root, seed=cfg.data_seed, source=cfg.data_source)
    width = len(decode_vector((task.train or task.test)[0]["vector"]))
    for role, name in models_to_load(cfg):
        span = coordinate_range(name)
        if span is not None and span[1] >= width:
            raise ConfigError(f"{role}: {name!r} reads coordinate {span[1]} but {cfg.dataset!r} has vectors "
                              f"of {width}; choose coordinates 0..{width - 1}")


def build_experiment(cfg: ExperimentConfig, data_root: str | None = None,
                     callbacks: tuple[Any, ...] = ()) -> ExperimentGraph:
    """The experiment's stages; ``data_root`` decides where a registered dataset is read from (part of its identity);
    ``callbacks`` (``RuntimeConfig.callbacks``) enter every training's identity unless they only observe."""
    from w2slab.models.loading import model_modality

    for role, name in models_to_load(cfg):
        reads = model_modality(name)
        if reads != cfg.modality:
            kind = {"image": "an image", "vector": "a vector"}.get(cfg.modality, "a text")
            raise ConfigError(f"{role}: {name!r} reads {reads} but {cfg.dataset!r} holds {cfg.modality}; "
                              f"pick {kind} model (`w2s models` lists them)")
    if cfg.modality == "vector":
        _check_coordinates(cfg, data_root)
    builder = GraphBuilder(cfg, data_root, callbacks)
    students, evaluations = {}, {}
    for method in cfg.methods:
        check_method(method)
        if cfg.modality not in method.modalities:
            raise ConfigError(f"method {method.name!r} has no meaning for {cfg.modality} data ({cfg.dataset}): it "
                              f"works on {', '.join(sorted(method.modalities))}; choose another method")
        for loss in cfg.losses:
            label = method.student_label(loss.label)
            students[label] = method.build_student(builder, loss, f"student {builder.name} {label}")
            evaluations[label] = builder.evaluate(loss, method, students[label])
    return ExperimentGraph(cfg, builder.split, builder.weak_train, builder.weak_label, builder.ceiling, students,
                           evaluations, builder.features)


def unique_stages(graphs: list[ExperimentGraph]) -> list[Stage]:
    """The deduplicated union of the graphs' stages, in a dependency order."""
    seen: dict[str, Stage] = {}
    for graph in graphs:
        for stage in graph.stages():
            seen.setdefault(stage.id, stage)
    return list(seen.values())
