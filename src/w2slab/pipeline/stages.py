"""What each stage kind computes, reading its inputs' folders and writing into its work folder.

Every function here is ``compute(stage, inputs: {role: finished folder}, work: Path, ctx)``. They
only read finished input folders and only write inside ``work``; the store makes that atomic.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from w2slab.config import TrainConfig
from w2slab.data import Splits, load_task, make_splits
from w2slab.errors import DataError
from w2slab.metrics import accuracy, agreement, auroc, bootstrap_pgr_ci, pgr, softmax
from w2slab.models.loading import default_cache_dir, resolve_model
from w2slab.pipeline.graph import Stage
from w2slab.pipeline.runner import ModelRunner, trainable_state
from w2slab.pipeline.store import distributed_state
from w2slab.train.losses import make_loss

SPLIT_NAMES = ("weak_train", "transfer", "test")


@dataclass
class StageContext:
    """Where things are (not part of any identity: moving the data or the cache changes no result)."""

    data_root: str | None = None
    model_cache: str | None = None
    checkpoint_every: int = 50
    echo: Callable[..., None] = field(default=print)
    trackers: tuple[str, ...] = ()  # tensorboard, wandb (JSONL step logs are always written)
    tracking_dir: str | None = None

    def training_options(self, work: Path, label: str) -> dict:
        """Checkpointing and tracking arguments of ModelRunner.fit for a stage's training."""
        tracking = Path(self.tracking_dir) / label if self.tracking_dir and self.trackers else None
        # Multi-process (accelerate launch) stages restart from their beginning after a crash: only the
        # main rank writes the stage folder, so the other ranks could not find a shared checkpoint.
        checkpoint_dir = None if distributed_state() else work
        return {"checkpoint_dir": checkpoint_dir, "checkpoint_every": self.checkpoint_every,
                "trackers": self.trackers, "tracking_dir": tracking}

    def cache_dir(self) -> Path:
        return Path(self.model_cache) if self.model_cache else default_cache_dir()


def one_hot(labels: np.ndarray, num_classes: int = 2) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[labels]


def read_splits(folder: Path) -> dict:
    return json.loads((folder / "splits.json").read_text())


def labels_of(splits: dict, name: str) -> np.ndarray:
    return np.array([row["label"] for row in splits[name]])


def save_predictions(path: Path, ids: list[str], logits: np.ndarray, labels: np.ndarray) -> None:
    with open(path, "wb") as fh:  # np.savez on a handle: no ".npz" appended behind our back
        np.savez(fh, ids=np.array(ids), logits=logits, probs=softmax(logits), labels=labels)


def load_logits(path: Path) -> np.ndarray:
    with np.load(path) as data:
        return data["logits"]


def write_training(work: Path, result) -> None:
    with open(work / "log.jsonl", "w") as fh:
        for row in result.log:
            fh.write(json.dumps(row) + "\n")
    (work / "stability.json").write_text(json.dumps(asdict(result.stability), indent=2))


def _runner(stage: Stage, ctx: StageContext, role: str, splits: dict, names: tuple[str, ...]) -> ModelRunner:
    cfg = stage.config
    train = TrainConfig(**cfg["train"]) if "train" in cfg else TrainConfig(mode="probe",
                                                                             precision=cfg.get("precision", "auto"))
    runner = ModelRunner(role, resolve_model(cfg["model"], ctx.cache_dir()), train, cfg["max_ctx"], cfg["truncation"])
    truncated = {name: runner.encode(name, splits[name]).n_truncated for name in names}
    if any(truncated.values()):
        ctx.echo(f"note: {cfg['model']}: texts truncated to {cfg['max_ctx']} tokens ({cfg['truncation']} side): "
                 + ", ".join(f"{k} {v}" for k, v in truncated.items() if v))
    return runner


# --- stage kinds ------------------------------------------------------------------------------


def compute_split(stage: Stage, inputs: dict[str, Path], work: Path, ctx: StageContext) -> None:
    cfg = stage.config
    task = load_task(cfg["dataset"], data_root=ctx.data_root, seed=cfg["seed"], source=cfg["data_source"])
    splits = make_splits(task, n_train=cfg["n_train"], n_test=cfg["n_test"], seed=cfg["seed"])
    if "drop_longer_than" in cfg:
        splits = _drop_long(splits, cfg["drop_for_models"], cfg["drop_longer_than"], ctx)
    payload = {name: getattr(splits, name) for name in SPLIT_NAMES}
    payload["notes"] = list(splits.notes)
    for note in splits.notes:  # stand-in datasets, carved splits, dropped duplicates: said, not hidden
        ctx.echo(f"note: {note}")
    (work / "splits.json").write_text(json.dumps(payload))


def _drop_long(splits: Splits, models: list[str], max_ctx: int, ctx: StageContext) -> Splits:
    """``truncation=drop``: remove rows longer than max_ctx for any of the models, before any training."""
    from w2slab.models.loading import load_tokenizer

    tokenizers = [load_tokenizer(resolve_model(m, ctx.cache_dir())) for m in models]
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


def compute_weak_train(stage: Stage, inputs: dict[str, Path], work: Path, ctx: StageContext) -> None:
    from safetensors.torch import save_file

    splits = read_splits(inputs["split"])
    runner = _runner(stage, ctx, "weak", splits, ("weak_train",))
    ctx.echo(f"  training weak {stage.config['model']} ({runner.train_cfg.mode}, lr {runner.lr:g}) on "
             f"{len(splits['weak_train'])} ground-truth labels")
    model, result = runner.fit("weak_train", one_hot(labels_of(splits, "weak_train")), make_loss("xent"),
                               seed=stage.config["seed"], desc="weak",
                               **ctx.training_options(work, f"weak_train-{stage.id}"))
    save_file(trainable_state(model), str(work / "trainable.safetensors"))
    write_training(work, result)
    ctx.echo(f"  stability: {result.stability.line()}")


def compute_weak_label(stage: Stage, inputs: dict[str, Path], work: Path, ctx: StageContext) -> None:
    from safetensors.torch import load_file

    splits = read_splits(inputs["split"])
    train_stage = stage.inputs["weak_train"]
    runner = _runner(train_stage, ctx, "weak", splits, ("transfer", "test"))
    if runner.train_cfg.mode == "probe":
        for name in ("transfer", "test"):
            runner.features(name)
    model = runner.new_model()
    missing, unexpected = model.load_state_dict(load_file(str(inputs["weak_train"] / "trainable.safetensors")),
                                                strict=False)
    if unexpected or any(p.requires_grad for n, p in model.named_parameters() if n in missing):
        raise RuntimeError(f"weak model state does not fit its model (unexpected={unexpected[:3]})")
    for name in ("transfer", "test"):
        ids = [row["id"] for row in splits[name]]
        save_predictions(work / f"{name}.npz", ids, runner.predict(model, name, "weak labels"),
                         labels_of(splits, name))


def compute_features(stage: Stage, inputs: dict[str, Path], work: Path, ctx: StageContext) -> None:
    splits = read_splits(inputs["split"])
    runner = _runner(stage, ctx, "strong", splits, ("transfer", "test"))
    np.savez(work / "features.npz", **{name: runner.features(name) for name in ("transfer", "test")})


def _strong_runner(stage: Stage, inputs: dict[str, Path], ctx: StageContext, splits: dict) -> ModelRunner:
    runner = _runner(stage, ctx, "strong", splits, ("transfer", "test"))
    if "features" in inputs:
        with np.load(inputs["features"] / "features.npz") as data:
            for name in ("transfer", "test"):
                runner.set_features(name, data[name])
    return runner


def compute_ceiling(stage: Stage, inputs: dict[str, Path], work: Path, ctx: StageContext) -> None:
    splits = read_splits(inputs["split"])
    runner = _strong_runner(stage, inputs, ctx, splits)
    ctx.echo(f"  training ceiling {stage.config['model']} ({runner.train_cfg.mode}, lr {runner.lr:g}) on "
             f"{len(splits['transfer'])} ground-truth labels")
    model, result = runner.fit("transfer", one_hot(labels_of(splits, "transfer")), make_loss("xent"),
                               seed=stage.config["seed"], desc="ceiling",
                               **ctx.training_options(work, f"ceiling-{stage.id}"))
    save_predictions(work / "test.npz", [r["id"] for r in splits["test"]], runner.predict(model, "test", "ceiling"),
                     labels_of(splits, "test"))
    write_training(work, result)
    ctx.echo(f"  stability: {result.stability.line()}")


def compute_student(stage: Stage, inputs: dict[str, Path], work: Path, ctx: StageContext) -> None:
    cfg = stage.config
    splits = read_splits(inputs["split"])
    runner = _strong_runner(stage, inputs, ctx, splits)
    weak_soft = softmax(load_logits(inputs["weak_label"] / "transfer.npz"))
    ctx.echo(f"  training student {cfg['model']} on weak labels, loss {cfg['loss']}")
    loss_fn = make_loss(cfg["loss"], aux_weight=cfg.get("aux_weight", 0.5), warmup_frac=runner.train_cfg.warmup_frac)
    model, result = runner.fit("transfer", weak_soft, loss_fn, seed=cfg["seed"], desc=f"student {cfg['loss']}",
                               **ctx.training_options(work, f"student-{stage.id}"))
    for name in ("transfer", "test"):
        save_predictions(work / f"{name}.npz", [r["id"] for r in splits[name]],
                         runner.predict(model, name, "student"), labels_of(splits, name))
    write_training(work, result)
    ctx.echo(f"  stability: {result.stability.line()}")


def compute_evaluate(stage: Stage, inputs: dict[str, Path], work: Path, ctx: StageContext) -> None:
    splits = read_splits(inputs["split"])
    test = labels_of(splits, "test")
    weak = softmax(load_logits(inputs["weak_label"] / "test.npz"))
    weak_transfer = softmax(load_logits(inputs["weak_label"] / "transfer.npz"))
    ceiling = softmax(load_logits(inputs["ceiling"] / "test.npz"))
    student = softmax(load_logits(inputs["student"] / "test.npz"))
    student_transfer = softmax(load_logits(inputs["student"] / "transfer.npz"))
    record = dict(stage.config)
    record.update({
        "experiment_id": stage.id,
        "weak_accuracy": accuracy(weak, test), "weak_auroc": auroc(weak, test),
        "weak_transfer_accuracy": accuracy(weak_transfer, labels_of(splits, "transfer")),
        "ceiling_accuracy": accuracy(ceiling, test), "ceiling_auroc": auroc(ceiling, test),
        "student_accuracy": accuracy(student, test), "student_auroc": auroc(student, test),
        "agreement_with_weak_transfer": agreement(student_transfer, weak_transfer),
        "agreement_with_weak_test": agreement(student, weak),
    })
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record["pgr"] = pgr(record["weak_accuracy"], record["student_accuracy"], record["ceiling_accuracy"])
        record["pgr_auroc"] = pgr(record["weak_auroc"], record["student_auroc"], record["ceiling_auroc"])
    for warning in caught:
        ctx.echo(f"warning: {record['loss']}: {warning.message}")
    record["pgr_ci95"] = bootstrap_pgr_ci(weak.argmax(-1) == test, student.argmax(-1) == test,
                                          ceiling.argmax(-1) == test, seed=record["seed"])
    record.update(_pair_marks(record["weak"], record["strong"]))
    (work / "result.json").write_text(json.dumps(record, indent=2))


def _pair_marks(weak: str, strong: str) -> dict:
    """Self-pairs and weak >= strong pairs are allowed (as in the paper) and marked."""
    from w2slab.models.registry import parameter_count

    weak_params, strong_params = parameter_count(weak), parameter_count(strong)
    return {"self_pair": weak == strong, "weak_params": weak_params, "strong_params": strong_params,
            "weak_not_smaller": bool(weak_params and strong_params and weak_params >= strong_params)}


COMPUTE = {"split": compute_split, "weak_train": compute_weak_train, "weak_label": compute_weak_label,
           "features": compute_features, "ceiling": compute_ceiling, "student": compute_student,
           "evaluate": compute_evaluate}

