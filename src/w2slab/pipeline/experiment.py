"""``w2s run``: one weak-to-strong experiment, from dataset name to an experiment folder.

    weak_train --train(weak, ground truth)--> weak model --predict--> soft labels on transfer, test
    transfer   --train(strong, ground truth)--> ceiling
    transfer + weak soft labels --train(strong, loss)--> one student per loss
    test --> accuracy / AUROC of weak, ceiling, students --> PGR

The experiment runs as a stage graph (:mod:`w2slab.pipeline.graph`) in a store under ``out_dir``,
so re-running it, or another experiment sharing its weak model or ceiling, reuses finished stages,
and a killed run resumes. The experiment folder is then assembled from the stages' outputs into a
temporary folder renamed into place, so a crash never leaves a half-written result that looks complete.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import time
from pathlib import Path

from w2slab.config import ExperimentConfig
from w2slab.models.loading import resolve_model
from w2slab.pipeline.executors import run_local
from w2slab.pipeline.graph import ExperimentGraph, build_experiment, result_versions
from w2slab.pipeline.runner import learning_rate
from w2slab.pipeline.stages import StageContext, read_splits
from w2slab.pipeline.store import StageStore, distributed_state
from w2slab.pipeline.sweep import publish_results
from w2slab.train.precision import resolve_precision

STUDENT_KEYS = ("pgr", "pgr_ci95", "pgr_auroc", "agreement_with_weak_transfer", "agreement_with_weak_test")


def run_experiment(cfg: ExperimentConfig, *, echo=functools.partial(print, flush=True),
                   checkpoint_every: int = 50, trackers: tuple[str, ...] = ()) -> dict:
    """Run one experiment and write its folder under ``cfg.out_dir``; returns the metrics dict."""
    started = time.time()
    store = StageStore(cfg.out_dir)
    ctx = StageContext(cfg.data_root, cfg.model_cache, checkpoint_every, echo, tuple(trackers),
                       str(store.root / "tracking"))
    graph = build_experiment(cfg)
    cached = [s for s in graph.stages() if store.is_done(s.kind, s.id)]
    if cached:
        echo(f"reusing {len(cached)} finished stage(s) from {store.root / 'stages'}")
    if graph.split in cached:
        for note in read_splits(_stage_dir(store, graph.split))["notes"]:
            echo(f"note: {note}")
    run_local(graph.stages(), store, ctx)
    distributed = distributed_state()
    if distributed and not distributed.is_main_process:
        return {}  # under accelerate launch the main rank writes the results
    publish_results([graph], store)
    metrics = assemble_folder(graph, store, ctx, started)
    return metrics


def _stage_dir(store: StageStore, stage) -> Path:
    return store.final_dir(stage.kind, stage.id)


def assemble_folder(graph: ExperimentGraph, store: StageStore, ctx: StageContext, started: float) -> dict:
    cfg = graph.config
    results = {loss: json.loads((_stage_dir(store, ev) / "result.json").read_text())
               for loss, ev in graph.evaluations.items()}
    first = next(iter(results.values()))
    splits = read_splits(_stage_dir(store, graph.split))
    metrics: dict = {
        "weak": {"accuracy": first["weak_accuracy"], "auroc": first["weak_auroc"]},
        "weak_transfer_accuracy": first["weak_transfer_accuracy"],
        "ceiling": {"accuracy": first["ceiling_accuracy"], "auroc": first["ceiling_auroc"]},
        "students": {loss: {"accuracy": r["student_accuracy"], "auroc": r["student_auroc"],
                            **{key: r[key] for key in STUDENT_KEYS}} for loss, r in results.items()},
        "stability": {},
        "notes": splits["notes"],
        "pair": {k: first[k] for k in ("self_pair", "weak_not_smaller", "weak_params", "strong_params")},
    }
    trained = {"weak": graph.weak_train, "ceiling": graph.ceiling,
               **{f"student_{loss}": st for loss, st in graph.students.items()}}
    for name, stage in trained.items():
        metrics["stability"][name] = json.loads((_stage_dir(store, stage) / "stability.json").read_text())
    metrics["stages"] = {stage.label or stage.kind: stage.id for stage in graph.stages()}
    metrics["wall_seconds"] = round(time.time() - started, 1)

    resolved = cfg.to_dict()
    resolved["resolved"] = {"split_sizes": {k: len(splits[k]) for k in ("weak_train", "transfer", "test")},
                            "versions": result_versions()}
    for role, train in (("weak", cfg.weak_train), ("strong", cfg.strong_train)):
        model = resolve_model(cfg.weak if role == "weak" else cfg.strong, ctx.cache_dir())
        resolved["resolved"][role] = {"location": model.location, "source": model.source,
                                      "lr": learning_rate(train, model), "pooling": model.defaults.pooling,
                                      "precision": resolve_precision(train.precision)}

    name = cfg.name or cfg.default_name()
    out_root = Path(cfg.out_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out_root))
    try:
        (staging / "predictions").mkdir()
        (staging / "logs").mkdir()
        copies = {"predictions/weak_transfer.npz": (graph.weak_label, "transfer.npz"),
                  "predictions/weak_test.npz": (graph.weak_label, "test.npz"),
                  "predictions/ceiling_test.npz": (graph.ceiling, "test.npz"),
                  "logs/weak.jsonl": (graph.weak_train, "log.jsonl"),
                  "logs/ceiling.jsonl": (graph.ceiling, "log.jsonl")}
        for loss, student in graph.students.items():
            copies[f"predictions/student_{loss}_test.npz"] = (student, "test.npz")
            copies[f"logs/student_{loss}.jsonl"] = (student, "log.jsonl")
        for target, (stage, source) in copies.items():
            shutil.copy2(_stage_dir(store, stage) / source, staging / target)
        (staging / "config.json").write_text(json.dumps(resolved, indent=2))
        (staging / "splits.json").write_text(json.dumps({k: [r["id"] for r in splits[k]]
                                                         for k in ("weak_train", "transfer", "test")}))
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
