"""What each stage kind computes, reading its inputs' folders and writing into its work folder.

Every function here is ``compute(stage, inputs: {role: finished folder}, work: Path, runtime)``. They
only read finished input folders and only write inside ``work``; the store makes that atomic.
Training stages record what they resolved at run time (learning rate, precision, device, pooling,
model location) in ``resolved.json``; results read it from there and never recompute it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from w2slab.config import RuntimeConfig, TrainConfig
from w2slab.data import Splits, load_task, make_splits
from w2slab.distributed import distributed_state
from w2slab.errors import DataError
from w2slab.losses import make_loss
from w2slab.metrics import softmax
from w2slab.models.loading import resolve_model
from w2slab.pipeline.graph import Stage, pinned_revision, result_versions
from w2slab.pipeline.role_model import RoleModel, trainable_state
from w2slab.results import ExperimentResult

SPLIT_NAMES = ("weak_train", "transfer", "test")
RESOLVED = "resolved.json"


def one_hot(labels: np.ndarray, num_classes: int = 2) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[labels]


def read_splits(folder: Path) -> dict:
    return json.loads((folder / "splits.json").read_text())


def read_resolved(folder: Path) -> dict:
    return json.loads((folder / RESOLVED).read_text())


def labels_of(splits: dict, name: str) -> np.ndarray:
    return np.array([row["label"] for row in splits[name]])


def save_predictions(path: Path, ids: list[str], logits: np.ndarray, labels: np.ndarray) -> None:
    with open(path, "wb") as fh:  # np.savez on a handle: no ".npz" appended behind our back
        np.savez(fh, ids=np.array(ids), logits=logits, probs=softmax(logits), labels=labels)


def load_probs(path: Path) -> np.ndarray:
    with np.load(path) as data:
        return softmax(data["logits"])


def training_options(stage: Stage, work: Path, runtime: RuntimeConfig) -> dict:
    """Checkpointing, tracking and extra callbacks of a stage's training (see :class:`Trainer`)."""
    # Multi-process (accelerate launch) stages restart from their beginning after a crash: only the
    # main rank writes the stage folder, so the other ranks could not find a shared checkpoint.
    checkpoint_dir = None if distributed_state() else work
    return {"checkpoint_dir": checkpoint_dir, "checkpoint_every": runtime.checkpoint_every,
            "checkpoint_seconds": runtime.checkpoint_seconds,
            "trackers": runtime.trackers, "tracking_dir": runtime.tracking_dir(f"{stage.kind}-{stage.id}"),
            "callbacks": runtime.callbacks}


def write_training(work: Path, model: RoleModel, result) -> None:
    with open(work / "log.jsonl", "w") as fh:
        for row in result.log:
            fh.write(json.dumps(row) + "\n")
    (work / "stability.json").write_text(json.dumps(asdict(result.stability), indent=2))
    (work / RESOLVED).write_text(json.dumps(model.resolved_settings(), indent=2))


def _role_model(stage: Stage, runtime: RuntimeConfig, role: str, splits: dict, names: tuple[str, ...],
                train: TrainConfig) -> RoleModel:
    spec = stage.spec.model
    resolved = resolve_model(spec.model, runtime.cache_dir(), revision=pinned_revision(spec.revision))
    model = RoleModel(role, resolved, train, spec.max_ctx, spec.truncation, store_root=runtime.example_dir(),
                      identity={"model": spec.model, "revision": spec.revision, "versions": result_versions()})
    truncated = {name: model.encode(name, splits[name]).n_truncated for name in names}
    if any(truncated.values()):
        runtime.echo(f"note: {spec.model}: texts truncated to {spec.max_ctx} tokens ({spec.truncation} side): "
                     + ", ".join(f"{k} {v}" for k, v in truncated.items() if v))
    return model


# --- stage kinds ------------------------------------------------------------------------------


def compute_split(stage: Stage, inputs: dict[str, Path], work: Path, runtime: RuntimeConfig) -> None:
    spec = stage.spec
    task = load_task(spec.dataset, data_root=runtime.data_root, seed=spec.data_seed, source=spec.data_source,
                     hub_revision=pinned_revision(spec.dataset_revision), **(spec.file_fields or {}))
    splits = make_splits(task, n_train=spec.n_train, n_test=spec.n_test, seed=spec.seed, data_seed=spec.data_seed)
    if spec.drop_longer_than is not None:
        splits = _drop_long(splits, spec.drop_for_models, spec.drop_longer_than, runtime)
    payload = {name: getattr(splits, name) for name in SPLIT_NAMES}
    payload["notes"] = list(splits.notes)
    for note in splits.notes:  # stand-in datasets, carved splits, dropped duplicates: said, not hidden
        runtime.echo(f"note: {note}")
    (work / "splits.json").write_text(json.dumps(payload))


def _drop_long(splits: Splits, models: tuple[str, ...], max_ctx: int, runtime: RuntimeConfig) -> Splits:
    """``truncation=drop``: remove rows longer than max_ctx for any of the models, before any training."""
    from w2slab.models.loading import load_tokenizer

    tokenizers = [load_tokenizer(resolve_model(m, runtime.cache_dir())) for m in models]
    kept, notes = {}, list(splits.notes)
    for name in SPLIT_NAMES:
        rows = getattr(splits, name)
        texts = [r["text"] for r in rows]
        too_long = np.zeros(len(rows), dtype=bool)
        for tokenizer in tokenizers:
            too_long |= np.array([len(ids) for ids in tokenizer(texts)["input_ids"]]) > max_ctx
        kept[name] = [r for r, drop in zip(rows, too_long, strict=True) if not drop]
        if too_long.any():
            notes.append(f"{name}: dropped {int(too_long.sum())} of {len(rows)} texts longer than {max_ctx} tokens")
        if not kept[name]:
            raise DataError(f"every {name} text is longer than max_ctx={max_ctx} tokens; raise --max-ctx or use "
                            "--truncation left")
    return Splits(kept["weak_train"], kept["transfer"], kept["test"], notes)


def compute_weak_train(stage: Stage, inputs: dict[str, Path], work: Path, runtime: RuntimeConfig) -> None:
    from safetensors.torch import save_file

    spec = stage.spec
    splits = read_splits(inputs["split"])
    weak = _role_model(stage, runtime, "weak", splits, ("weak_train",), spec.train)
    runtime.echo(f"  training weak {spec.model.model} ({spec.train.mode}, lr {weak.lr:g}) on "
                 f"{len(splits['weak_train'])} ground-truth labels")
    model, result = weak.fit("weak_train", one_hot(labels_of(splits, "weak_train")), make_loss("xent"),
                             seed=spec.seed, desc="weak", **training_options(stage, work, runtime))
    save_file(trainable_state(model), str(work / "trainable.safetensors"))
    write_training(work, weak, result)
    runtime.echo(f"  stability: {result.stability.line()}")


def compute_weak_label(stage: Stage, inputs: dict[str, Path], work: Path, runtime: RuntimeConfig) -> None:
    from safetensors.torch import load_file

    splits = read_splits(inputs["split"])
    train_stage = stage.inputs["weak_train"]
    weak = _role_model(train_stage, runtime, "weak", splits, ("transfer", "test"), train_stage.spec.train)
    if weak.train_cfg.mode == "probe":
        for name in ("transfer", "test"):
            weak.features(name)
    model = weak.new_model()
    missing, unexpected = model.load_state_dict(load_file(str(inputs["weak_train"] / "trainable.safetensors")),
                                                strict=False)
    if unexpected or any(p.requires_grad for n, p in model.named_parameters() if n in missing):
        raise RuntimeError(f"weak model state does not fit its model (unexpected={unexpected[:3]})")
    logits = weak.predict_splits(model, ("transfer", "test"), "weak labels")
    for name in ("transfer", "test"):
        save_predictions(work / f"{name}.npz", [row["id"] for row in splits[name]], logits[name],
                         labels_of(splits, name))


def compute_features(stage: Stage, inputs: dict[str, Path], work: Path, runtime: RuntimeConfig) -> None:
    splits = read_splits(inputs["split"])
    # the whole pool, weak_train included: another seed partitions the same pool differently, and its
    # transfer set then finds every feature in the example store
    strong = _role_model(stage, runtime, "strong", splits, SPLIT_NAMES,
                         TrainConfig(mode="probe", precision=stage.spec.precision))
    np.savez(work / "features.npz", **{name: strong.features(name) for name in ("transfer", "test")})
    (work / RESOLVED).write_text(json.dumps(strong.resolved_settings(), indent=2))


def _strong_model(stage: Stage, inputs: dict[str, Path], runtime: RuntimeConfig, splits: dict) -> RoleModel:
    strong = _role_model(stage, runtime, "strong", splits, ("transfer", "test"), stage.spec.train)
    if "features" in inputs:
        with np.load(inputs["features"] / "features.npz") as data:
            for name in ("transfer", "test"):
                strong.set_features(name, data[name])
    return strong


def compute_ceiling(stage: Stage, inputs: dict[str, Path], work: Path, runtime: RuntimeConfig) -> None:
    spec = stage.spec
    splits = read_splits(inputs["split"])
    strong = _strong_model(stage, inputs, runtime, splits)
    runtime.echo(f"  training ceiling {spec.model.model} ({spec.train.mode}, lr {strong.lr:g}) on "
                 f"{len(splits['transfer'])} ground-truth labels")
    model, result = strong.fit("transfer", one_hot(labels_of(splits, "transfer")), make_loss("xent"),
                               seed=spec.seed, desc="ceiling", **training_options(stage, work, runtime))
    save_predictions(work / "test.npz", [r["id"] for r in splits["test"]], strong.predict(model, "test", "ceiling"),
                     labels_of(splits, "test"))
    write_training(work, strong, result)
    runtime.echo(f"  stability: {result.stability.line()}")


def compute_student(stage: Stage, inputs: dict[str, Path], work: Path, runtime: RuntimeConfig) -> None:
    spec = stage.spec
    splits = read_splits(inputs["split"])
    strong = _strong_model(stage, inputs, runtime, splits)
    weak_soft = load_probs(inputs["weak_label"] / "transfer.npz")
    runtime.echo(f"  training student {spec.model.model} on weak labels, loss {spec.loss.label}")
    loss = spec.loss.for_training(warmup_frac=spec.train.warmup_frac)
    model, result = strong.fit("transfer", weak_soft, loss, seed=spec.seed, desc=f"student {spec.loss.label}",
                               **training_options(stage, work, runtime))
    logits = strong.predict_splits(model, ("transfer", "test"), "student")
    for name in ("transfer", "test"):
        save_predictions(work / f"{name}.npz", [r["id"] for r in splits[name]], logits[name], labels_of(splits, name))
    write_training(work, strong, result)
    runtime.echo(f"  stability: {result.stability.line()}")


def compute_evaluate(stage: Stage, inputs: dict[str, Path], work: Path, runtime: RuntimeConfig) -> None:
    config = stage.spec.config
    splits = read_splits(inputs["split"])
    result = ExperimentResult.compute(
        labels={name: labels_of(splits, name) for name in ("transfer", "test")},
        weak={name: load_probs(inputs["weak_label"] / f"{name}.npz") for name in ("transfer", "test")},
        ceiling=load_probs(inputs["ceiling"] / "test.npz"),
        student={name: load_probs(inputs["student"] / f"{name}.npz") for name in ("transfer", "test")},
        config=config.to_dict(), loss=stage.spec.loss.label, experiment_id=stage.id, seed=config.seed,
        resolved={"weak": read_resolved(inputs["weak_train"]), "strong": read_resolved(inputs["student"])},
        warn=runtime.echo,  # the trainings' stability reports, so the result carries their suspect reasons
        stability={role: json.loads((inputs[key] / "stability.json").read_text())
                   for role, key in (("weak", "weak_train"), ("ceiling", "ceiling"), ("student", "student"))})
    result.write(work / "result.json")


COMPUTE = {"split": compute_split, "weak_train": compute_weak_train, "weak_label": compute_weak_label,
           "features": compute_features, "ceiling": compute_ceiling, "student": compute_student,
           "evaluate": compute_evaluate}
