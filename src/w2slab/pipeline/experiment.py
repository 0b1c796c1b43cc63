"""A complete weak-to-strong experiment, from dataset name to ``metrics.json``.

    weak_train --train(weak, ground truth)--> weak model --predict--> soft labels on transfer, test
    transfer   --train(strong, ground truth)--> ceiling
    transfer + weak soft labels --train(strong, loss)--> one student per loss
    test --> accuracy / AUROC of weak, ceiling, students --> PGR

Results are written into a temporary folder that is renamed into place only when the whole
experiment has finished, so a crash never leaves a half-written result that looks complete.
"""

from __future__ import annotations

import functools
import json
import logging
import platform
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np

from w2slab import __version__
from w2slab.config import ExperimentConfig
from w2slab.data import Splits, load_task, make_splits
from w2slab.errors import DataError
from w2slab.metrics import accuracy, agreement, auroc, bootstrap_pgr_ci, pgr, softmax
from w2slab.models.loading import default_cache_dir, resolve_model
from w2slab.pipeline.runner import ModelRunner
from w2slab.train.losses import make_loss
from w2slab.train.precision import resolve_precision

log = logging.getLogger("w2slab")


def one_hot(labels: np.ndarray, num_classes: int = 2) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[labels]


def _drop_long(splits: Splits, runners: list[ModelRunner], max_ctx: int) -> tuple[Splits, list[str]]:
    """``truncation=drop``: remove rows longer than max_ctx for any model (before any training)."""
    notes = []
    kept = {}
    for name in ("weak_train", "transfer", "test"):
        rows = getattr(splits, name)
        too_long = np.zeros(len(rows), dtype=bool)
        for runner in runners:
            too_long |= np.array(runner.token_lengths([r["text"] for r in rows])) > max_ctx
        kept[name] = [r for r, drop in zip(rows, too_long, strict=False) if not drop]
        if too_long.any():
            notes.append(f"{name}: dropped {int(too_long.sum())} of {len(rows)} texts longer than {max_ctx} tokens")
        if not kept[name]:
            raise DataError(f"every {name} text is longer than max_ctx={max_ctx} tokens; raise --max-ctx or use "
                            "--truncation left")
    return Splits(kept["weak_train"], kept["transfer"], kept["test"], list(splits.notes) + notes), notes


def _save_predictions(folder: Path, stage: str, ids: list[str], logits: np.ndarray, labels: np.ndarray) -> None:
    np.savez(folder / f"{stage}.npz", ids=np.array(ids), logits=logits, probs=softmax(logits), labels=labels)


def _write_log(folder: Path, stage: str, rows: list[dict]) -> None:
    with (folder / f"{stage}.jsonl").open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def _stage_metrics(probs: np.ndarray, labels: np.ndarray) -> dict:
    return {"accuracy": accuracy(probs, labels), "auroc": auroc(probs, labels)}


def run_experiment(cfg: ExperimentConfig, *, echo=functools.partial(print, flush=True)) -> dict:
    """Run one experiment and write its folder under ``cfg.out_dir``; returns the metrics dict."""
    started = time.time()
    cache_dir = Path(cfg.model_cache) if cfg.model_cache else default_cache_dir()
    task = load_task(cfg.dataset, data_root=cfg.data_root, seed=cfg.seed, source=cfg.data_source)
    splits = make_splits(task, n_train=cfg.n_train, n_test=cfg.n_test, seed=cfg.seed)
    for note in splits.notes:
        echo(f"note: {note}")

    weak = ModelRunner("weak", resolve_model(cfg.weak, cache_dir), cfg.weak_train, cfg.max_ctx, cfg.truncation)
    strong = ModelRunner("strong", resolve_model(cfg.strong, cache_dir), cfg.strong_train, cfg.max_ctx,
                         cfg.truncation)
    if cfg.truncation == "drop":
        splits, drop_notes = _drop_long(splits, [weak, strong], cfg.max_ctx)
        for note in drop_notes:
            echo(f"note: {note}")
    labels = {name: np.array([r["label"] for r in getattr(splits, name)]) for name in ("weak_train", "transfer",
                                                                                       "test")}
    ids = {name: [r["id"] for r in getattr(splits, name)] for name in labels}
    truncated = {}
    # the weak model sees all three splits; the strong model only transfer (training) and test
    for runner, names in ((weak, ("weak_train", "transfer", "test")), (strong, ("transfer", "test"))):
        for name in names:
            split = runner.encode(name, getattr(splits, name))
            truncated[f"{runner.role}/{name}"] = split.n_truncated
    if any(truncated.values()):
        echo("note: texts truncated to max_ctx (" + cfg.truncation + " side): "
             + ", ".join(f"{k} {v}" for k, v in truncated.items() if v))

    name = cfg.name or cfg.default_name()
    out_root = Path(cfg.out_dir)
    out_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out_root))
    try:
        metrics = _run_stages(cfg, weak, strong, labels, ids, staging, echo)
        metrics["truncated"] = truncated
        metrics["notes"] = list(splits.notes)
        metrics["wall_seconds"] = round(time.time() - started, 1)
        resolved = cfg.to_dict()
        resolved["resolved"] = {
            "weak": {"location": weak.resolved.location, "source": weak.resolved.source, "lr": weak.lr,
                     "pooling": weak.resolved.defaults.pooling,
                     "precision": resolve_precision(cfg.weak_train.precision)},
            "strong": {"location": strong.resolved.location, "source": strong.resolved.source, "lr": strong.lr,
                       "pooling": strong.resolved.defaults.pooling,
                       "precision": resolve_precision(cfg.strong_train.precision)},
            "split_sizes": {k: len(v) for k, v in labels.items()},
            "w2slab_version": __version__,
            "versions": _versions(),
        }
        (staging / "config.json").write_text(json.dumps(resolved, indent=2))
        (staging / "splits.json").write_text(json.dumps(ids))
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2))
        final = out_root / name
        if final.exists():
            shutil.rmtree(final)  # same config hash: a rerun replaces its own earlier result, nothing else
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    metrics["folder"] = str(final)
    return metrics


def _run_stages(cfg: ExperimentConfig, weak: ModelRunner, strong: ModelRunner, labels: dict, ids: dict,
                folder: Path, echo) -> dict:
    preds_dir, logs_dir = folder / "predictions", folder / "logs"
    preds_dir.mkdir()
    logs_dir.mkdir()
    stability = {}
    xent = make_loss("xent")

    echo(f"[1/3] weak model {cfg.weak} ({cfg.weak_train.mode}, lr {weak.lr:g}) on {len(labels['weak_train'])} "
         "ground-truth labels")
    weak_logits, result = weak.fit_predict("weak_train", one_hot(labels["weak_train"]), xent,
                                           ["transfer", "test"], seed=cfg.seed, desc="weak")
    stability["weak"] = asdict(result.stability)
    echo(f"      stability: {result.stability.line()}")
    _write_log(logs_dir, "weak", result.log)
    for split in ("transfer", "test"):
        _save_predictions(preds_dir, f"weak_{split}", ids[split], weak_logits[split], labels[split])
    weak_soft = softmax(weak_logits["transfer"])

    echo(f"[2/3] ceiling: {cfg.strong} ({cfg.strong_train.mode}, lr {strong.lr:g}) on "
         f"{len(labels['transfer'])} ground-truth labels")
    ceiling_logits, result = strong.fit_predict("transfer", one_hot(labels["transfer"]), xent, ["test"],
                                                seed=cfg.seed, desc="ceiling")
    stability["ceiling"] = asdict(result.stability)
    echo(f"      stability: {result.stability.line()}")
    _write_log(logs_dir, "ceiling", result.log)
    _save_predictions(preds_dir, "ceiling_test", ids["test"], ceiling_logits["test"], labels["test"])

    test = labels["test"]
    weak_probs, ceiling_probs = softmax(weak_logits["test"]), softmax(ceiling_logits["test"])
    metrics: dict = {
        "weak": _stage_metrics(weak_probs, test),
        "weak_transfer_accuracy": accuracy(weak_soft, labels["transfer"]),
        "ceiling": _stage_metrics(ceiling_probs, test),
        "students": {},
    }
    weak_correct = weak_probs.argmax(-1) == test
    ceiling_correct = ceiling_probs.argmax(-1) == test
    for loss_name in cfg.losses:
        echo(f"[3/3] student {cfg.strong} on weak labels, loss {loss_name}")
        loss_fn = make_loss(loss_name, aux_weight=cfg.aux_weight, warmup_frac=cfg.strong_train.warmup_frac)
        student_logits, result = strong.fit_predict("transfer", weak_soft, loss_fn, ["test", "transfer"],
                                                    seed=cfg.seed, desc=f"student {loss_name}")
        stability[f"student_{loss_name}"] = asdict(result.stability)
        echo(f"      stability: {result.stability.line()}")
        _write_log(logs_dir, f"student_{loss_name}", result.log)
        _save_predictions(preds_dir, f"student_{loss_name}_test", ids["test"], student_logits["test"], test)
        probs = softmax(student_logits["test"])
        entry = _stage_metrics(probs, test)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            entry["pgr"] = pgr(metrics["weak"]["accuracy"], entry["accuracy"], metrics["ceiling"]["accuracy"])
            entry["pgr_auroc"] = pgr(metrics["weak"]["auroc"], entry["auroc"], metrics["ceiling"]["auroc"])
        for warning in caught:
            echo(f"warning: {warning.message}")
        entry["pgr_ci95"] = bootstrap_pgr_ci(weak_correct, probs.argmax(-1) == test, ceiling_correct,
                                             seed=cfg.seed)
        # misfit: how far the student departs from the weak labels it was trained on (transfer set)
        entry["agreement_with_weak_transfer"] = agreement(softmax(student_logits["transfer"]), weak_soft)
        entry["agreement_with_weak_test"] = agreement(probs, weak_probs)
        metrics["students"][loss_name] = entry
    metrics["stability"] = stability
    return metrics


def _versions() -> dict:
    import importlib.metadata

    versions = {"python": platform.python_version()}
    for package in ("torch", "transformers", "peft", "accelerate"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions
