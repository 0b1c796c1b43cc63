"""What each stage kind computes, reading its inputs' folders and writing into its work folder.

Every function here is ``compute(stage, inputs: {role: finished folder}, work: Path, runtime)``. They
only read finished input folders and only write inside ``work``; the store makes that atomic. A method's own stage
kinds live in its file and are handed a :class:`FolderContext` instead.
Training stages record what they resolved at run time (learning rate, precision, device, pooling,
model location) in ``resolved.json``; results read it from there and never recompute it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from w2slab.config import RuntimeConfig, TrainConfig
from w2slab.data import Splits, load_task, make_splits
from w2slab.data.types import PAIR_FIELD, content, is_pair
from w2slab.distributed import distributed_state
from w2slab.errors import DataError
from w2slab.losses import TrainingContext, make_loss
from w2slab.methods import (
    LabelMethod,
    LeakageError,
    Method,
    RelabelContext,
    SelectionMethod,
    SoftLabels,
    SupervisorMethod,
)
from w2slab.metrics import softmax
from w2slab.models.loading import resolve_model
from w2slab.pipeline.artifacts import PREDICTED, SPLIT_NAMES, StageFolder
from w2slab.pipeline.graph import Stage, pinned_revision, result_versions, upstream_revisions
from w2slab.pipeline.role_model import RoleModel, trainable_state
from w2slab.results import (
    ExperimentResult,
    SplitPredictions,
    convergence_problems,
    labels_sure_enough,
    length_note,
)
from w2slab.train.selection import Attempt, KeepBest, RecordPredictions, search_length, stable


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[labels]


def num_classes_of(splits: dict) -> int:
    """K of a split stage's rows (2 for split folders written before K classes were recorded)."""
    return int(splits.get("num_classes", 2))


def is_pair_split(splits: dict) -> bool:
    """The split stage's rows are preference pairs (their models are Bradley-Terry scorers)."""
    return any(is_pair(rows[0]) for name in SPLIT_NAMES if (rows := splits.get(name)))


def labels_of(splits: dict, name: str) -> np.ndarray:
    return np.array([row["label"] for row in splits[name]])


# --- ground truth: who read how much ------------------------------------------------------------------

GROUND_TRUTH = StageFolder.GROUND_TRUTH


def record_ground_truth(work: Path, stage: Stage, inputs: dict[str, Path], role: str | None = None,
                        count: int = 0, rows: dict[str, np.ndarray] | None = None) -> None:
    """``ground_truth.json``: the ground-truth labels this stage and everything upstream of it read, by stage id.

    Each stage adds its own reading (``role``, ``count``, and where known which ``rows`` of which split) to its
    inputs' records, so the evaluate stage can say how many ground-truth labels each role consumed without
    counting a shared stage twice, nor a row that several stages read (an ensemble's members all train on
    weak-train: its rows are read once).
    """
    seen: dict[str, dict] = {}
    for folder in inputs.values():
        seen.update(StageFolder(folder).ground_truth())
    if role is not None and count:
        seen[stage.id] = {"role": role, "kind": stage.kind, "labels": count}
        if rows is not None:
            seen[stage.id]["rows"] = {split: sorted(int(i) for i in np.unique(ids)) for split, ids in rows.items()}
    StageFolder(work).write_ground_truth(seen)


def ground_truth_by_role(records: dict[str, dict]) -> dict[str, int]:
    """Labels read per role: the distinct rows of each split where the stages said which, plus the counts of the
    stages that did not."""
    totals: dict[str, int] = {}
    distinct: dict[tuple[str, str], set[int]] = {}
    for record in records.values():
        if "rows" in record:
            for split, ids in record["rows"].items():
                distinct.setdefault((record["role"], split), set()).update(ids)
        else:
            totals[record["role"]] = totals.get(record["role"], 0) + int(record["labels"])
    for (role, _), ids in distinct.items():
        totals[role] = totals.get(role, 0) + len(ids)
    return dict(sorted(totals.items()))


def training_options(stage: Stage, work: Path, runtime: RuntimeConfig) -> dict:
    """Checkpointing, tracking and extra callbacks of a stage's training (see :class:`Trainer`)."""
    # Multi-process (accelerate launch) stages restart from their beginning after a crash: only the
    # main rank writes the stage folder, so the other ranks could not find a shared checkpoint.
    checkpoint_dir = None if distributed_state() else work
    return {"checkpoint_dir": checkpoint_dir, "checkpoint_every": runtime.checkpoint_every,
            "checkpoint_seconds": runtime.checkpoint_seconds,
            "trackers": runtime.trackers, "tracking_dir": runtime.tracking_dir(f"{stage.kind}-{stage.id}"),
            "tracking": {"run_root": runtime.run_root, "name": stage.label or stage.kind, "kind": stage.kind,
                         "group": runtime.tracking_groups.get(stage.id, "ungrouped"), "config": stage.config()},
            "callbacks": runtime.callbacks}


#: The trained parameters a stage keeps (always for the weak model; with ``keep_weights`` for the strong ones).
WEIGHTS = StageFolder.WEIGHTS


def keep_weights(work: Path, model, train: TrainConfig) -> None:
    """The trained parameters as safetensors in the stage folder, when the role's ``keep_weights`` asks."""
    if train.keep_weights:
        from safetensors.torch import save_file

        save_file(trainable_state(model), str(work / WEIGHTS))


def write_training(work: Path, model: RoleModel, result, length: dict[str, Any] | None = None) -> None:
    """The kept training's log, its stability report with the ``length`` search's record, and what it resolved
    (the kept attempt's learning rate, and its epochs where a retry ran)."""
    length = length or {}
    result.stability.length = length
    settings = model.resolved_settings()
    if len(length.get("attempts", ())) > 1:
        kept = length["attempts"][length["kept"]]
        settings.update(epochs=kept["epochs"], lr=kept["lr"], head_lr=kept["head_lr"])
    StageFolder(work).write_training(result.log, result.stability, settings)


# --- length: auto (w2slab.train.selection.search_length) ----------------------------------------------------


@contextlib.contextmanager
def trained_as(model: RoleModel, cfg: TrainConfig):
    """``model`` trains under ``cfg`` (an attempt's epochs and learning rates) inside the block."""
    saved, model.train_cfg = model.train_cfg, cfg
    try:
        yield model
    finally:
        model.train_cfg = saved


def attempt_options(options: dict, index: int) -> dict:
    """A retry's training options: its own checkpoint folder (the first attempt's stays where it always was, so a
    resumed stage finds each attempt's checkpoint), and no tracker: a training stage is one tracker run, its first
    attempt's (every attempt's end is in its ``stability.json``)."""
    if index == 0:
        return options
    out = dict(options, trackers=())
    if options.get("checkpoint_dir") is not None:
        # "checkpoints-...": the store removes it with the stage's checkpoints, and a checkpoint-N folder beside it
        # never takes it for an old checkpoint of its own
        folder = Path(options["checkpoint_dir"]) / f"checkpoints-attempt-{index + 1}"
        folder.mkdir(exist_ok=True)
        out["checkpoint_dir"] = folder
    return out


def judged_attempt(model: RoleModel, result, cfg: TrainConfig, factor: float, rows: int, role: str,
                   probs: np.ndarray, labels: np.ndarray, *, split: str, final_loss: bool = True,
                   score: tuple[np.ndarray, np.ndarray] | None = None, judged: bool = True,
                   confidence: np.ndarray | None = None) -> Attempt:
    """An attempt judged by the results' rule (:func:`w2slab.results.convergence_problems`) on ``probs`` against
    ``labels`` (and the confidence of ``confidence``, where given); ``score``: (probabilities, labels) its validation
    score (accuracy) is measured on (default: those)."""
    reasons = convergence_problems(probs, labels, role=role, split=split, confidence=confidence,
                                   final_loss=result.stability.final_loss if final_loss else float("nan"))
    scored_probs, scored_labels = score if score is not None else (probs, labels)
    value = float((scored_probs.argmax(-1) == scored_labels).mean()) if len(scored_labels) else float("nan")
    return as_on_main_process(Attempt(
        epochs=cfg.epochs, lr_factor=factor, lr=model.lr, head_lr=model.head_lr, rows=rows,
        final_loss=result.stability.final_loss, score=value, converged=not reasons or not judged,
        judged=judged and bool(len(labels)), reasons=reasons, stable=stable(result.stability)))


def as_on_main_process(value: Any) -> Any:
    """``value`` as the main process has it, on every process of an ``accelerate launch`` (itself on one): each
    rank's training loss is that of its own shard of the rows, and every rank must take the same retry."""
    state = distributed_state()
    if state is None or state.num_processes <= 1:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def encode_unstored(model: RoleModel, name: str, rows: list[dict]) -> None:
    """Encode a split (and, in probe mode, extract its features) without adding to the example stores: a split
    the stage did not use before, whose features would otherwise change which texts a later stage's forward pass
    batches together."""
    saved, model.store_root = model.store_root, None
    try:
        model.encode(name, rows)
        if model.train_cfg.mode == "probe":
            model.set_features(name, model.frozen_features(name))
    finally:
        model.store_root = saved


def report_length(runtime: RuntimeConfig, role: str, record: dict[str, Any]) -> None:
    if note := length_note(role, record):
        runtime.echo(f"  {note}")


def example_versions() -> dict[str, str | None]:
    """What keys the example stores beside the model: the libraries' versions and the digest of the code that
    tokenises and extracts features (:func:`w2slab.fingerprint.example_code_digest`), not the whole package's."""
    from w2slab.fingerprint import example_code_digest

    return {**result_versions(), "w2slab_source": example_code_digest()}


def _role_model(stage: Stage, runtime: RuntimeConfig, role: str, splits: dict, names: tuple[str, ...],
                train: TrainConfig) -> RoleModel:
    spec = stage.spec.model
    resolved = resolve_model(spec.model, runtime.cache_dir(), revision=pinned_revision(spec.revision))
    split = stage.inputs.get("split")  # the dataset and its class names choose a label-token head's prompt
    model = RoleModel(role, resolved, train, spec.max_ctx, spec.truncation, num_labels=num_classes_of(splits),
                      pairwise=is_pair_split(splits), image_size=spec.image_size, store_root=runtime.example_dir(),
                      dataset=getattr(getattr(split, "spec", None), "dataset", ""),
                      class_names=tuple(splits.get("class_names") or ()) or None,
                      identity={"model": spec.model, "revision": spec.revision, "versions": example_versions()})
    truncated = {name: model.encode(name, splits[name]).n_truncated for name in names}
    if any(truncated.values()):
        runtime.echo(f"note: {spec.model}: texts truncated to {spec.max_ctx} tokens ({spec.truncation} side): "
                     + ", ".join(f"{k} {v}" for k, v in truncated.items() if v))
    return model


@dataclass
class FolderContext:
    """What a compute function of one argument is handed (:class:`~w2slab.methods.stage_api.StageContext`): the
    pipeline's folders, models and ground-truth bookkeeping, so that a method's own stage kind, in the method's
    file, needs nothing from the pipeline."""

    stage: Stage
    inputs: dict[str, Path]
    work: Path
    runtime: RuntimeConfig

    @property
    def spec(self) -> Any:
        return self.stage.spec

    @property
    def output(self) -> StageFolder:
        return StageFolder(self.work)

    def input(self, role: str) -> StageFolder:
        return StageFolder(self.inputs[role])

    def echo(self, message: str) -> None:
        self.runtime.echo(message)

    def role_model(self, role: str, splits: dict, names: Sequence[str], train: TrainConfig) -> RoleModel:
        return _role_model(self.stage, self.runtime, role, splits, tuple(names), train)

    def labelled_sample(self, n: int, count: int, seed: int, method: Any) -> tuple[np.ndarray, np.ndarray]:
        return labelled_sample(self.inputs["split"], n, count, seed, method)

    def record_ground_truth(self, role: str | None = None, count: int = 0,
                            rows: dict[str, np.ndarray] | None = None) -> None:
        record_ground_truth(self.work, self.stage, self.inputs, role, count, rows)


# --- stage kinds ------------------------------------------------------------------------------


def compute_split(stage: Stage, inputs: dict[str, Path], work: Path, runtime: RuntimeConfig) -> None:
    from w2slab.pipeline.graph import check_data_unchanged, check_model_unchanged

    spec = stage.spec
    # the rows (and the tokenizers that decide which rows drop) must be what the split's identity says
    check_data_unchanged(spec.dataset, spec.dataset_revision, spec.data_source, runtime.data_root)
    for model, revision in zip(spec.drop_for_models, spec.drop_model_revisions, strict=False):
        check_model_unchanged(model, revision)
    task = load_task(spec.dataset, data_root=runtime.data_root, seed=spec.data_seed, source=spec.data_source,
                     hub_revision=pinned_revision(spec.dataset_revision), **(spec.file_fields or {}))
    splits = make_splits(task, n_train=spec.n_train, n_test=spec.n_test, seed=spec.seed, data_seed=spec.data_seed,
                         n_val=spec.n_val)
    if spec.drop_longer_than is not None:
        splits = _drop_long(splits, spec.drop_for_models, spec.drop_model_revisions, spec.drop_longer_than, runtime)
    payload = {name: getattr(splits, name) for name in SPLIT_NAMES}
    payload["notes"] = list(splits.notes)
    if splits.num_classes != 2 or splits.class_names:  # binary split files stay as they were
        payload["num_classes"] = splits.num_classes
        payload["class_names"] = list(splits.class_names or ())
    for note in splits.notes:  # stand-in datasets, carved splits, dropped duplicates: said, not hidden
        runtime.echo(f"note: {note}")
    StageFolder(work).write_splits(payload)


def _drop_long(splits: Splits, models: tuple[str, ...], revisions: tuple[str, ...], max_ctx: int,
               runtime: RuntimeConfig) -> Splits:
    """``truncation=drop``: remove rows longer than max_ctx for any of the models, before any training (their
    tokenizers loaded at the revisions the split's identity holds)."""
    from w2slab.models.loading import load_tokenizer

    pinned = [pinned_revision(r) for r in revisions] if revisions else [None] * len(models)
    tokenizers = [load_tokenizer(resolve_model(m, runtime.cache_dir(), revision=rev))
                  for m, rev in zip(models, pinned, strict=True)]
    kept, notes = {}, list(splits.notes)
    for name in SPLIT_NAMES:
        rows = getattr(splits, name)
        too_long = np.zeros(len(rows), dtype=bool)
        for tokenizer in tokenizers:
            for field in ("text", PAIR_FIELD) if rows and is_pair(rows[0]) else ("text",):  # a pair: either text
                too_long |= np.array([len(ids) for ids in tokenizer([r[field] for r in rows])["input_ids"]]) > max_ctx
        kept[name] = [r for r, drop in zip(rows, too_long, strict=True) if not drop]
        if too_long.any():
            notes.append(f"{name}: dropped {int(too_long.sum())} of {len(rows)} texts longer than {max_ctx} tokens")
        if not kept[name] and rows:
            raise DataError(f"every {name} text is longer than max_ctx={max_ctx} tokens; raise --max-ctx or use "
                            "--truncation left")
    return Splits(kept["weak_train"], kept["transfer"], kept["test"], notes, validation=kept["validation"])


def compute_weak_train(stage: Stage, inputs: dict[str, Path], work: Path, runtime: RuntimeConfig) -> None:
    from safetensors.torch import save_file

    spec = stage.spec
    splits = StageFolder(inputs["split"]).splits()
    weak = _role_model(stage, runtime, "weak", splits, ("weak_train",), spec.train)
    rows = np.arange(len(splits["weak_train"]))
    if spec.bagged:  # a bootstrap resample: same size, drawn with replacement by the member's seed
        rows = np.random.default_rng([spec.seed, 7919]).integers(0, len(rows), len(rows))
    runtime.echo(f"  training weak {spec.model.model} ({spec.train.mode}, lr {weak.lr:g}) on {len(rows)} "
                 "ground-truth labels" + (f" (bootstrap resample, {len(np.unique(rows))} distinct)" if spec.bagged
                                          else ""))
    labels = one_hot(labels_of(splits, "weak_train"), weak.num_labels)[rows]
    options = training_options(stage, work, runtime)
    truth = labels_of(splits, "validation")

    def attempt(index: int, cfg: TrainConfig, factor: float):
        with trained_as(weak, cfg):
            model, result = weak.fit(weak.subset("weak_train", rows), labels, make_loss("xent"), seed=spec.seed,
                                     desc="weak", **attempt_options(options, index))
            if cfg.length == "fixed":
                return (model, result), None
            if "validation" not in weak.splits:
                encode_unstored(weak, "validation", splits["validation"])
            probs = softmax(weak.predict(model, "validation", "weak validation")) if len(truth) else \
                np.zeros((0, weak.num_labels))
            return (model, result), judged_attempt(weak, result, cfg, factor, len(rows), "weak", probs, truth,
                                                   split="validation")

    (model, result), length = search_length(spec.train, attempt, lr=weak.lr, head_lr=weak.head_lr,
                                            score_name="validation accuracy", role="weak", echo=runtime.echo)
    save_file(trainable_state(model), str(work / WEIGHTS))
    write_training(work, weak, result, length)
    report_length(runtime, "weak", length)
    record_ground_truth(work, stage, inputs, "weak", len(np.unique(rows)), rows={"weak_train": rows})
    runtime.echo(f"  stability: {result.stability.line()}")


def compute_weak_label(stage: Stage, inputs: dict[str, Path], work: Path, runtime: RuntimeConfig) -> None:
    from safetensors.torch import load_file

    splits = StageFolder(inputs["split"]).splits()
    train_stage = stage.inputs["weak_train"]
    weak = _role_model(train_stage, runtime, "weak", splits, PREDICTED, train_stage.spec.train)
    if weak.train_cfg.mode == "probe":
        for name in PREDICTED:
            weak.features(name)
    model = weak.new_model()
    missing, unexpected = model.load_state_dict(load_file(str(inputs["weak_train"] / WEIGHTS)),
                                                strict=False)
    if unexpected or any(p.requires_grad for n, p in model.named_parameters() if n in missing):
        raise RuntimeError(f"weak model state does not fit its model (unexpected={unexpected[:3]})")
    logits = weak.predict_splits(model, PREDICTED, "weak labels")
    for name in PREDICTED:
        StageFolder(work).write_predictions(name, [row["id"] for row in splits[name]], logits[name])
    record_ground_truth(work, stage, inputs)


def compute_features(stage: Stage, inputs: dict[str, Path], work: Path, runtime: RuntimeConfig) -> None:
    splits = StageFolder(inputs["split"]).splits()
    # the whole pool, weak_train included: another seed partitions the same pool differently, and its
    # transfer set then finds every feature in the example store
    strong = _role_model(stage, runtime, "strong", splits, SPLIT_NAMES,
                         TrainConfig(mode="probe", precision=stage.spec.precision))
    StageFolder(work).write_features({name: strong.features(name) for name in PREDICTED})
    StageFolder(work).write_resolved(strong.resolved_settings())
    record_ground_truth(work, stage, {})


def _strong_model(stage: Stage, inputs: dict[str, Path], runtime: RuntimeConfig, splits: dict) -> RoleModel:
    strong = _role_model(stage, runtime, "strong", splits, PREDICTED, stage.spec.train)
    if "features" in inputs:
        for name in PREDICTED:
            strong.set_features(name, StageFolder(inputs["features"]).features(name))
    return strong


def compute_ceiling(stage: Stage, inputs: dict[str, Path], work: Path, runtime: RuntimeConfig) -> None:
    spec = stage.spec
    splits = StageFolder(inputs["split"]).splits()
    strong = _strong_model(stage, inputs, runtime, splits)
    runtime.echo(f"  training ceiling {spec.model.model} ({spec.train.mode}, lr {strong.lr:g}) on "
                 f"{len(splits['transfer'])} ground-truth labels")
    options = training_options(stage, work, runtime)
    truth = labels_of(splits, "validation")

    def attempt(index: int, cfg: TrainConfig, factor: float):
        with trained_as(strong, cfg):
            model, result = strong.fit("transfer", one_hot(labels_of(splits, "transfer"), strong.num_labels),
                                       make_loss("xent"), seed=spec.seed, desc="ceiling",
                                       **attempt_options(options, index))
            # validation and test in one pass, as always: the test logits are kept unread, and only the kept
            # attempt's are written
            logits = strong.predict_splits(model, ("validation", "test"), "ceiling")
            if cfg.length == "fixed":
                return (model, result, logits), None
            return (model, result, logits), judged_attempt(strong, result, cfg, factor, len(splits["transfer"]),
                                                           "ceiling", softmax(logits["validation"]), truth,
                                                           split="validation")

    (model, result, logits), length = search_length(spec.train, attempt, lr=strong.lr, head_lr=strong.head_lr,
                                                    score_name="validation accuracy", role="ceiling",
                                                    echo=runtime.echo)
    for name in ("validation", "test"):
        StageFolder(work).write_predictions(name, [r["id"] for r in splits[name]], logits[name])
    keep_weights(work, model, spec.train)
    write_training(work, strong, result, length)
    report_length(runtime, "ceiling", length)
    record_ground_truth(work, stage, inputs, "ceiling", len(splits["transfer"]),
                        rows={"transfer": np.arange(len(splits["transfer"]))})
    runtime.echo(f"  stability: {result.stability.line()}")


def compute_student(stage: Stage, inputs: dict[str, Path], work: Path, runtime: RuntimeConfig) -> None:
    """Train the student on its ``labels`` input's transfer labels (rows of weight 0 left out), predict transfer
    and test. It is given the splits without their labels; only an oracle selection method reads ground truth,
    through :func:`oracle_truth`, which counts what it reads. A selection method trains on the rows it does not hold
    out; one that does not select (``subset``) keeps the final checkpoint and reads nothing of the held-out rows.

    ``length: auto`` judges the student by the results' rule on its own training rows' labels (its agreement with
    them) and how confident it is on the validation rows (whose labels it never reads); a retry holds
    :data:`LENGTH_HOLDOUT` of its rows out, trains every retry on the rest, and scores each on the held-out rows'
    labels (never ground truth)."""
    spec = stage.spec
    splits = StageFolder(inputs["split"]).splits(blind=True)
    strong = _strong_model(stage, inputs, runtime, splits)
    labels = StageFolder(inputs["labels"]).labels("transfer")
    rows = np.flatnonzero(labels.kept)
    method, truth_read, select_held = spec.method, 0, None
    if isinstance(method, SelectionMethod):
        rows, select_held = holdout_rows(rows, method.holdout_size(len(rows)), spec.seed)
        truth_read = len(select_held) if method.selects and method.oracle else 0
    note = f", {len(rows)} of {len(labels.probs)} rows" if len(rows) < len(labels.probs) else ""
    runtime.echo(f"  training {stage.label.split(' ', 1)[0]} {spec.model.model} on its labels, loss {spec.loss.label}"
                 + (f", {method.label}" if method is not None else "") + note)
    options = training_options(stage, work, runtime)
    weak_argmax = labels.probs.argmax(-1)
    # labels too unsure to be fitted confidently: a longer training cannot make the student surer than them (the
    # results skip such a student's confidence verdict by the same test, :func:`w2slab.results.labels_sure_enough`)
    judgeable = bool(len(rows)) and labels_sure_enough(labels.probs[rows])
    retry_rows: dict[str, np.ndarray] = {}

    def attempt(index: int, cfg: TrainConfig, factor: float):
        if index == 0:
            train_rows = rows
        else:  # retries train on the same rows less a held-out slice, which scores them
            if not retry_rows:
                retry_rows["train"], retry_rows["held"] = length_holdout(rows, spec.seed)
            train_rows = retry_rows["train"]
        callbacks = []
        if isinstance(method, SelectionMethod) and method.selects:
            callbacks.append(keep_best(strong, method, inputs["split"], labels.probs, train_rows, select_held, cfg))
        trace = None
        if cfg.trace_every:
            trace = RecordPredictions({name: strong.subset_examples(name, np.arange(len(splits[name])))
                                       for name in ("transfer", "test")}, cfg.trace_every,
                                      batch_size=cfg.eval_batch_size)
            callbacks.append(trace)
        attempt_opts = attempt_options(options, index)
        attempt_opts["callbacks"] = [*attempt_opts["callbacks"], *callbacks]
        loss = spec.loss.for_training(TrainingContext(warmup_frac=cfg.warmup_frac, batch_size=cfg.batch_size,
                                                      seed=spec.seed, labels=labels.probs[train_rows]))
        targets = labels.probs[train_rows]
        if "teachers" in spec.loss.needs:  # one soft label per teacher: [rows, M, K]
            targets = StageFolder(inputs["labels"]).teachers()[train_rows]
        with trained_as(strong, cfg):
            model, result = strong.fit(strong.subset("transfer", train_rows), targets, loss, seed=spec.seed,
                                       desc=f"student {spec.loss.label}", weights=labels.weights[train_rows],
                                       **attempt_opts)
            logits = strong.predict_splits(model, PREDICTED, "student")
            payload = (model, result, logits, loss, trace)
            if cfg.length == "fixed":
                return payload, None
            probs = softmax(logits["transfer"])
            held = retry_rows.get("held", rows[:0])
            # agreement with its labels on the rows it trained on, confidence on the validation rows (unlabelled
            # here, unseen in training, as the test rows the results judge)
            unseen = softmax(logits["validation"]) if len(logits["validation"]) else None
            return payload, judged_attempt(strong, result, cfg, factor, len(train_rows), "student",
                                           probs[train_rows], weak_argmax[train_rows],
                                           split="validation" if unseen is not None else "training",
                                           final_loss=False, score=(probs[held], weak_argmax[held]),
                                           judged=judgeable, confidence=unseen)

    (model, result, logits, loss, trace), length = search_length(
        spec.train, attempt, lr=strong.lr, head_lr=strong.head_lr, first_is_candidate=False,
        score_name="held-out agreement with its labels", role=f"student {spec.loss.label}", echo=runtime.echo)
    if (report := loss.report()) is not None:
        StageFolder(work).write_json(StageFolder.LOSS_REPORT, report)
    for name in PREDICTED:
        StageFolder(work).write_predictions(name, [r["id"] for r in splits[name]], logits[name])
    keep_weights(work, model, spec.train)
    write_training(work, strong, result, length)
    report_length(runtime, f"student {spec.loss.label}", length)
    StageFolder(work).file(StageFolder.EVALUATIONS).write_text(json.dumps(result.state.evaluations))
    if trace is not None:
        np.savez(StageFolder(work).file(StageFolder.TRACE), total_steps=result.state.total_steps, **trace.arrays())
    record_ground_truth(work, stage, inputs, "student", truth_read)
    runtime.echo(f"  stability: {result.stability.line()}")


#: ``length: auto``: the share of a student's training rows a retry holds out to score its attempts on.
LENGTH_HOLDOUT = 0.1
#: The random stream of that held-out slice (another than a selection method's, :func:`holdout_rows`).
LENGTH_STREAM = 15_485_863


def length_holdout(rows: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A student's ``rows`` split at random into (what its retries train on, the :data:`LENGTH_HOLDOUT` slice that
    scores them)."""
    rng = np.random.default_rng([seed, LENGTH_STREAM])
    size = max(1, min(round(LENGTH_HOLDOUT * len(rows)), len(rows) - 1))
    held = np.sort(rng.choice(rows, size=size, replace=False))
    return np.setdiff1d(rows, held), held


def keep_best(strong: RoleModel, method: SelectionMethod, split_folder: Path, probs: np.ndarray, rows: np.ndarray,
              held: np.ndarray, train: TrainConfig) -> KeepBest:
    """The callback that keeps the student's best checkpoint on the ``held`` rows, scored against the method's
    targets (their weak labels, or, for an oracle, their ground truth through :func:`oracle_truth`)."""
    truth = (lambda: oracle_truth(split_folder, "transfer", held, method)) if method.oracle else None
    targets = method.validation_targets(probs[held], truth)
    steps = max(1, int(np.ceil(len(rows) / train.batch_size * train.epochs)))
    return KeepBest(strong.subset_examples("transfer", held), targets, method.every or max(1, steps // 10),
                    metric=method.metric, patience=method.patience, batch_size=train.eval_batch_size)


def holdout_rows(rows: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` split at random (by ``seed``) into (kept for training, held out): ``size`` held out."""
    rng = np.random.default_rng([seed, 104_729])
    held = np.sort(rng.choice(rows, size=max(1, min(int(size), len(rows) - 1)), replace=False))
    return np.setdiff1d(rows, held), held


def oracle_truth(split_folder: Path, name: str, rows: np.ndarray, method: Method) -> np.ndarray:
    """Ground truth of ``rows`` of a split, for a named oracle method only (anything else is refused)."""
    if not method.oracle:
        raise LeakageError(f"{method.name!r} is not an oracle and may not read ground truth")
    return labels_of(StageFolder(split_folder).splits(), name)[rows]


def labelled_sample(split_folder: Path, n: int, count: int, seed: int, method: Method
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``count`` transfer rows drawn by ``seed`` (at most n - 1) and their ground truth, for an oracle ``method``
    that learns from a small labelled set (the same rows for every stage of one experiment seed)."""
    rows = np.sort(np.random.default_rng([seed, 7]).choice(n, min(count, n - 1), replace=False))
    return rows, oracle_truth(split_folder, "transfer", rows, method)


def oracle_label_sample(split_folder: Path, n: int, seed: int, method: LabelMethod
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The transfer rows an oracle label method reads the ground truth of, and that truth, drawn like the oracle it
    matches (:meth:`~w2slab.methods.LabelMethod.truth_sample`): the rows an oracle selection holds out
    (:func:`holdout_rows`, the same seed), or a labelled sample by :func:`labelled_sample` (trust's and selective's
    rows). Non-oracles are refused."""
    rule, count = method.truth_sample(n)
    if rule == "holdout":
        _, rows = holdout_rows(np.arange(n), count, seed)
        return rows, oracle_truth(split_folder, "transfer", rows, method)
    return labelled_sample(split_folder, n, count, seed, method)


def compute_relabel(stage: Stage, inputs: dict[str, Path], work: Path, runtime: RuntimeConfig) -> None:
    """A label method on the transfer labels of its ``labels`` input. Ground truth is within reach of an oracle
    label method only (``truth_swap``): its rows are drawn through the leakage guard, which refuses any other
    method, and counted."""
    spec = stage.spec
    splits = StageFolder(inputs["split"]).splits(blind=True)
    labels = StageFolder(inputs["labels"]).labels("transfer")
    features = (StageFolder(inputs["features"]).features("transfer", pair_difference=True) if "features" in inputs
                else None)
    truth_rows, truth = (oracle_label_sample(inputs["split"], len(labels.probs), spec.seed, spec.method)
                         if "ground_truth" in spec.method.reads else (None, None))
    context = RelabelContext(texts=[content(r) for r in splits["transfer"]], seed=spec.seed,
                             num_classes=labels.probs.shape[1], features=features, truth_rows=truth_rows, truth=truth)
    new = spec.method.transform(labels, context)
    changed = int((new.probs.argmax(-1) != labels.probs.argmax(-1))[new.kept].sum())
    runtime.echo(f"  {spec.method.label}: kept {int(new.kept.sum())} of {len(new.probs)} rows, "
                 f"{changed} kept rows change their label")
    StageFolder(work).write_labels("transfer", [r["id"] for r in splits["transfer"]], new)
    record_ground_truth(work, stage, inputs, "student", 0 if truth_rows is None else len(truth_rows))


def compute_supervise(stage: Stage, inputs: dict[str, Path], work: Path, runtime: RuntimeConfig) -> None:
    """A synthetic supervisor: the weak side of the experiment, so it reads ground truth (and counts it). It labels
    transfer and validation here; its test labels are made by the evaluate stage (:func:`supervisor_test_probs`),
    the one reader of the test labels."""
    spec = stage.spec
    splits = StageFolder(inputs["split"]).splits()
    names = ("transfer", "validation")
    probs = spec.method.supervise({n: [content(r) for r in splits[n]] for n in names},
                                  {n: labels_of(splits, n) for n in names}, spec.num_classes, spec.seed)
    for name in names:
        wrong = float((probs[name].argmax(-1) != labels_of(splits, name)).mean())
        runtime.echo(f"  {spec.method.label}: {name} labels {wrong:.1%} wrong")
        StageFolder(work).write_labels(name, [r["id"] for r in splits[name]], SoftLabels.of(probs[name]))
    record_ground_truth(work, stage, inputs, "supervisor", sum(len(splits[n]) for n in names))


def compute_ensemble(stage: Stage, inputs: dict[str, Path], work: Path, runtime: RuntimeConfig) -> None:
    """The (weighted) mean of the members' soft labels on transfer, validation and test."""
    splits = StageFolder(inputs["split"]).splits(blind=True)
    members = sorted((role for role in inputs if role.startswith("member_")), key=lambda r: int(r.split("_")[1]))
    weights = np.array(stage.spec.weights or [1.0] * len(members), dtype=np.float64)
    weights = weights / weights.sum()
    for name in shared_predictions([inputs[m] for m in members]):
        mean = sum(w * StageFolder(inputs[m]).probs(name) for w, m in zip(weights, members, strict=True))
        StageFolder(work).write_labels(name, [r["id"] for r in splits[name]], SoftLabels.of(mean))
    # each member's transfer labels, for losses that learn from several teachers (RAVEN, evidential, CSL)
    StageFolder(work).write_teachers(np.stack([StageFolder(inputs[m]).probs("transfer") for m in members], axis=1))
    record_ground_truth(work, stage, inputs)


def shared_predictions(folders: list[Path]) -> tuple[str, ...]:
    """The predicted splits every folder holds (validation is missing from a method stage that writes none)."""
    return tuple(name for name in PREDICTED if all(StageFolder(f).predictions_file(name).exists() for f in folders))


def read_trace(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def supervisor_test_probs(stage: Stage, splits: dict, test_labels: np.ndarray) -> np.ndarray:
    """A synthetic supervisor's labels of the test set, made here from the test labels the evaluate stage alone
    reads: the supervisor simulates a weak model whose test predictions are a function of ground truth."""
    spec = stage.inputs["supervisor"].spec
    texts = {"test": [content(r) for r in splits["test"]]}
    return spec.method.supervise(texts, {"test": test_labels}, spec.num_classes, spec.seed)["test"]


def validation_predictions(inputs: dict[str, Path], splits: dict) -> SplitPredictions | None:
    """The weak model's, ceiling's and student's validation probabilities and its ground truth, where all three
    predicted it (older stages and some method stages did not): what every tuning choice and every convergence
    verdict is made on."""
    truth = labels_of(splits, "validation")
    folders = {"weak": inputs["supervisor"], "ceiling": inputs["ceiling"], "student": inputs["student"]}
    if not len(truth) or not all(StageFolder(f).predictions_file("validation").exists() for f in folders.values()):
        return None
    return SplitPredictions({role: StageFolder(f).probs("validation") for role, f in folders.items()}, truth)


def compute_evaluate(stage: Stage, inputs: dict[str, Path], work: Path, runtime: RuntimeConfig) -> None:
    """The result: every model on the test set, whose labels only this stage reads (and on validation)."""
    config, method = stage.spec.config, stage.spec.method
    split = StageFolder(inputs["split"])
    splits = split.splits()
    test_labels = split.test_labels("evaluate")
    supervisor = StageFolder(inputs["supervisor"])
    weak_test = (supervisor_test_probs(stage, splits, test_labels) if isinstance(method, SupervisorMethod)
                 else supervisor.probs("test"))
    weak_resolved = (StageFolder(inputs["weak_train"]).resolved() if "weak_train" in inputs
                     else {"supervisor": method.label})
    stability_of = {"weak": "weak_train", "ceiling": "ceiling", "student": "student"}
    ground_truth = {}
    for key in ("supervisor", "ceiling", "student"):
        ground_truth.update(StageFolder(inputs[key]).ground_truth())
    evaluations_path = StageFolder(inputs["student"]).file(StageFolder.EVALUATIONS)
    trace_path = StageFolder(inputs["student"]).file(StageFolder.TRACE)
    result = ExperimentResult.compute(
        labels={"transfer": labels_of(splits, "transfer"), "test": test_labels},
        weak={"transfer": supervisor.probs("transfer"), "test": weak_test},
        ceiling=StageFolder(inputs["ceiling"]).probs("test"),
        student={name: StageFolder(inputs["student"]).probs(name) for name in ("transfer", "test")},
        config=config.to_dict(), label=method.student_label(stage.spec.loss.label), experiment_id=stage.id,
        seed=config.seed, resolved={"weak": weak_resolved, "strong": StageFolder(inputs["student"]).resolved(),
                                    "versions": result_versions(), "revisions": upstream_revisions(stage)},
        warn=runtime.echo,  # the trainings' stability reports, so the result carries their suspect reasons
        stability={role: StageFolder(inputs[key]).stability()
                   for role, key in stability_of.items() if key in inputs},
        method=method.label, oracle=method.oracle, ground_truth_labels=ground_truth_by_role(ground_truth),
        selection=json.loads(evaluations_path.read_text()) if evaluations_path.exists() else [],
        trace=read_trace(trace_path) if trace_path.exists() else None,
        validation=validation_predictions(inputs, splits))
    result.write(StageFolder(work).file(StageFolder.RESULT))
