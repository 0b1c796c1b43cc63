"""The folder of one ``w2s run`` experiment, assembled from its finished stages.

    RUN_ROOT/<dataset>_<weak>_to_<strong>_s<seed>_<config hash>/
        config.json       the experiment config + what the stages resolved (lr, precision, device, ...)
        metrics.json      ExperimentSummary (w2slab.results)
        results/*.json    one ExperimentResult per student (what w2s report and w2slab.load_results read)
        splits.json       example ids per split
        predictions/*.npz logs/*.jsonl
        predictions/test.jsonl   per test example: id, text (or image), label, every model's prediction
        weights/*.safetensors    with --keep-weights: the trained parameters of weak, ceiling and each student

It is filled in a temporary sibling and renamed into place, so a crash never leaves a half-written
folder that looks complete. Every value comes from a stage's output; nothing is recomputed here.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np

from w2slab import atomic
from w2slab.config import RuntimeConfig, check_experiment_name
from w2slab.errors import ConfigError
from w2slab.pipeline.artifacts import SPLIT_NAMES, StageFolder
from w2slab.pipeline.graph import ExperimentGraph, Stage, result_versions
from w2slab.pipeline.store import StageStore
from w2slab.results import ExperimentResult, ExperimentSummary


def summarize(graph: ExperimentGraph, store: StageStore) -> ExperimentSummary:
    """The experiment's summary, read from its evaluate, training and split stages."""

    def folder(stage: Stage) -> Path:
        return store.final_dir(stage.kind, stage.id)

    results = {loss: ExperimentResult.read(folder(stage) / StageFolder.RESULT)
               for loss, stage in graph.evaluations.items()}
    splits = StageFolder(folder(graph.split)).splits()
    first = next(iter(results.values()))
    return ExperimentSummary(
        config=graph.config.to_dict(), results=results,
        stability={name: StageFolder(folder(stage)).stability()
                   for name, stage in graph.trained().items()},
        notes=splits["notes"], stages={stage.label or stage.kind: stage.id for stage in graph.stages()},
        resolved={**first.resolved, "split_sizes": {k: len(splits[k]) for k in SPLIT_NAMES},
                  "versions": result_versions()})


def file_safe(label: str) -> str:
    """A student's label as a file name: parameters may hold paths or Hub ids (``bootstrap[via=/models/x]``)."""
    return re.sub(r"[^A-Za-z0-9_.+=,()\[\]-]", "_", label)


def _with_labels(source: Path, target: Path, rows: list[dict]) -> None:
    """A stage's predictions with the ground-truth labels of their split (student-side stages never hold them)."""
    with np.load(source) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["labels"] = np.array([row["label"] for row in rows])
    with open(target, "wb") as fh:
        np.savez(fh, **arrays)


def copy_weights(folder: Path, graph: ExperimentGraph, store: StageStore) -> None:
    """``weights/<role>.safetensors`` for every role whose stage kept its trained parameters (the weak model always;
    the ceiling and students with ``strong.keep_weights``): reflinks where the file system has them, copies elsewhere.
    Never hard links: the experiment folder is the user's to edit, and writing into a link (``cp other.safetensors
    weights/ceiling.safetensors``) would change the cached stage every later run reuses."""
    roles = {"weak": graph.weak_train, "ceiling": graph.ceiling,
             **{f"student_{file_safe(label)}": stage for label, stage in graph.students.items()}}
    for role, stage in roles.items():
        source = StageFolder(store.final_dir(stage.kind, stage.id)).file(StageFolder.WEIGHTS)
        if not source.is_file() or (role == "weak" and not graph.config.strong_train.keep_weights):
            continue
        folder.mkdir(exist_ok=True)
        atomic.copy_file(source, folder / f"{role}.safetensors")


def write_test_predictions(folder: Path, rows: list[dict], graph: ExperimentGraph) -> Path:
    """``predictions/test.jsonl``: each test example with its content, label and every model's prediction and
    probabilities, for error analysis without joining ids against the split by hand."""
    files = {"weak": folder / "weak_test.npz", "ceiling": folder / "ceiling_test.npz",
             **{f"student {label}": folder / f"student_{file_safe(label)}_test.npz" for label in graph.students}}
    probs = {}
    for role, path in files.items():
        with np.load(path) as data:
            if [str(i) for i in data["ids"]] != [row["id"] for row in rows]:
                raise ConfigError(f"{path.name}: its examples are not the test split's; recompute the experiment")
            probs[role] = data["probs"]
    target = folder / "test.jsonl"
    with open(target, "w", encoding="utf-8") as fh:
        for i, row in enumerate(rows):
            record = {key: value for key, value in row.items()}
            for role, values in probs.items():
                record[role] = {"prediction": int(values[i].argmax()), "probs": [round(float(v), 6) for v in values[i]]}
            fh.write(json.dumps(record) + "\n")
    return target


def experiment_folder(graph: ExperimentGraph, runtime: RuntimeConfig) -> Path:
    """``RUN_ROOT/<name>``, refused (before any work) if it names something that is not an experiment folder."""
    name = runtime.name or graph.config.default_name()
    check_experiment_name(name)
    final = Path(runtime.run_root) / name
    if final.exists() or final.is_symlink():
        is_experiment = final.is_dir() and not final.is_symlink() and (final / "metrics.json").is_file() \
            and (final / "config.json").is_file()
        if not is_experiment:
            raise ConfigError(f"name: {final} exists and is not an experiment folder (no metrics.json and "
                              "config.json); it would be replaced: choose another --name or move it away")
        if not _same_experiment(final / "config.json", graph):
            raise ConfigError(f"name: {final} holds another experiment (its config.json differs); it would be "
                              "replaced with everything in it: choose another --name or delete the folder")
    return final


def _same_experiment(config_file: Path, graph: ExperimentGraph) -> bool:
    """Whether an existing folder's ``config.json`` is this experiment (rewriting it then only refreshes it); an
    unreadable one is not, so a folder the user filled is never replaced by a run of another config."""
    try:
        stored = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    if not isinstance(stored, dict):
        return False
    stored = {key: value for key, value in stored.items() if key != "resolved"}
    return stored == json.loads(json.dumps(graph.config.to_dict()))


def write_experiment_folder(graph: ExperimentGraph, store: StageStore, runtime: RuntimeConfig,
                            summary: ExperimentSummary) -> Path:
    final = experiment_folder(graph, runtime)
    copies = {"predictions/weak_transfer.npz": (graph.weak_label, "transfer.npz"),
              "predictions/weak_test.npz": (graph.weak_label, "test.npz"),
              "predictions/ceiling_test.npz": (graph.ceiling, "test.npz"),
              "logs/weak.jsonl": (graph.weak_train, StageFolder.LOG),
              "logs/ceiling.jsonl": (graph.ceiling, StageFolder.LOG)}
    for label, student in graph.students.items():
        copies[f"predictions/student_{file_safe(label)}_test.npz"] = (student, "test.npz")
        copies[f"logs/student_{file_safe(label)}.jsonl"] = (student, StageFolder.LOG)
    split = StageFolder(store.final_dir(graph.split.kind, graph.split.id))
    splits = split.splits()
    # written after evaluation, for error analysis: the test rows get their labels back here, never in a stage
    labels = split.test_labels("experiment folder")
    splits["test"] = [{**row, "label": int(label)} for row, label in zip(splits["test"], labels, strict=True)]
    with atomic.staged_dir(final) as staging:
        (staging / "predictions").mkdir()
        (staging / "logs").mkdir()
        (staging / "results").mkdir()
        for label, result in summary.results.items():
            result.write(staging / "results" / f"{file_safe(label)}.json")
        for target, (stage, source) in copies.items():
            if target.endswith(".npz"):  # a user recomputes metrics from a folder: the split's labels go with it
                _with_labels(store.final_dir(stage.kind, stage.id) / source, staging / target,
                             splits[source.removesuffix(".npz")])
            else:
                shutil.copy2(store.final_dir(stage.kind, stage.id) / source, staging / target)
        copy_weights(staging / "weights", graph, store)
        (staging / "config.json").write_text(json.dumps({**summary.config, "resolved": summary.resolved}, indent=2))
        write_test_predictions(staging / "predictions", splits["test"], graph)
        (staging / "splits.json").write_text(json.dumps({k: [r["id"] for r in splits[k]] for k in SPLIT_NAMES}))
        (staging / "metrics.json").write_text(json.dumps(summary.to_dict(), indent=2))
    summary.folder = str(final)
    return final
