"""The files stages hand each other, each named once and read back with its type.

A stage writes into its work folder and reads its inputs' folders; every such folder is a :class:`StageFolder`,
whose methods say what each file holds (splits as rows, predictions as logits with their probabilities and
per-example weights, labels as :class:`~w2slab.methods.base.SoftLabels`, frozen features, an ensemble's teachers,
a training's record). Stage code and plugins ask for ``folder.labels("transfer")``, never for ``"transfer.npz"``:
a file's name, shape and compatibility with older folders live here only. A method's own stage kind reads and
writes them through its context (``context.input(role)``, ``context.output``: the
:class:`~w2slab.methods.stage_api.StageFiles` a StageFolder implements).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from w2slab.methods.base import SoftLabels
from w2slab.methods.stage_api import PREDICTED, SPLIT_NAMES  # noqa: F401 - the pipeline's modules read them here
from w2slab.metrics import softmax

#: Who may read the test labels: the evaluate stage, and the experiment folder written from its results.
TEST_LABEL_READERS = ("evaluate", "experiment folder")


class HeldOutLabelsError(RuntimeError):
    """Something other than the evaluate stage asked for the test set's labels."""


@dataclass(frozen=True)
class StageFolder:
    """One stage's folder and the typed files in it."""

    path: Path

    SPLITS = "splits.json"
    TEST_LABELS = "test_labels.json"  # the test rows' labels, apart: only the evaluate stage reads them
    FEATURES = "features.npz"
    TEACHERS = "teachers.npz"  # an ensemble's per-member transfer labels [N, M, K]
    WEIGHTS = "trainable.safetensors"  # the trained parameters (the weak model always; others with keep_weights)
    LOG = "log.jsonl"
    STABILITY = "stability.json"
    RESOLVED = "resolved.json"
    GROUND_TRUTH = "ground_truth.json"
    LOSS_REPORT = "loss_report.json"
    EVALUATIONS = "evaluations.json"  # a student's checkpoint evaluations (selection methods)
    TRACE = "trace.npz"  # a student's predictions over training (trace_every)
    RESULT = "result.json"  # an evaluate stage's result

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def file(self, name: str) -> Path:
        return self.path / name

    # --- the split stage's rows ------------------------------------------------------------------------
    def splits(self, *, blind: bool = False) -> dict[str, Any]:
        """The rows of each split (and the notes, K and class names); the test rows never carry labels (see
        :meth:`test_labels`); ``blind``: no split does (what every student-side stage is given). A split folder
        of an older version without a validation split reads as an empty one."""
        splits = json.loads(self.file(self.SPLITS).read_text())
        splits.setdefault("validation", [])
        for name in SPLIT_NAMES:
            if blind or name == "test":
                splits[name] = [{k: v for k, v in row.items() if k != "label"} for row in splits[name]]
        return splits

    def write_splits(self, payload: dict[str, Any]) -> None:
        """``splits.json`` with the test rows unlabelled, and their labels apart in ``test_labels.json``."""
        test = payload["test"]
        self.file(self.TEST_LABELS).write_text(json.dumps({"ids": [row["id"] for row in test],
                                                           "labels": [row["label"] for row in test]}))
        payload = {**payload, "test": [{k: v for k, v in row.items() if k != "label"} for row in test]}
        self.file(self.SPLITS).write_text(json.dumps(payload))

    def test_labels(self, reader: str) -> np.ndarray:
        """The test set's labels, in the split's order, for the evaluate stage alone (and the experiment folder
        written from its results): the test set is read once, for the table, so no training, selection or tuning
        can have seen it. ``reader`` names who asks; anyone else is refused
        (``tests/unit/pipeline/test_leakage.py`` also checks that no other stage calls this)."""
        if reader not in TEST_LABEL_READERS:
            raise HeldOutLabelsError(f"{reader!r} asked for the test labels; only the evaluate stage reads them")
        return np.asarray(json.loads(self.file(self.TEST_LABELS).read_text())["labels"], dtype=np.int64)

    # --- predictions and labels of a split (transfer, test) -------------------------------------------------
    def predictions_file(self, split: str) -> Path:
        return self.file(f"{split}.npz")

    def write_predictions(self, split: str, ids: list[str], logits: np.ndarray,
                          weights: np.ndarray | None = None) -> None:
        """Logits (and their probabilities) of a split, never its labels (the experiment folder adds them for
        users); per-example ``weights`` from label methods (0: the row is filtered out)."""
        extra = {"weights": np.asarray(weights, dtype=np.float32)} if weights is not None else {}
        with open(self.predictions_file(split), "wb") as fh:  # np.savez on a handle: no ".npz" appended
            np.savez(fh, ids=np.array(ids), logits=logits, probs=softmax(logits), **extra)

    def write_labels(self, split: str, ids: list[str], labels: SoftLabels) -> None:
        """Soft labels as a predictions file (logits = log-probabilities) with their weights."""
        logits = np.log(np.clip(labels.probs, 1e-12, 1.0)).astype(np.float32)
        self.write_predictions(split, ids, logits, weights=labels.weights)

    def probs(self, split: str) -> np.ndarray:
        with np.load(self.predictions_file(split)) as data:
            return softmax(data["logits"])

    def ids(self, split: str) -> list[str]:
        with np.load(self.predictions_file(split)) as data:
            return [str(i) for i in data["ids"]]

    def labels(self, split: str) -> SoftLabels:
        """What a student learns from: a split's probabilities and weights (1 where the file has none)."""
        with np.load(self.predictions_file(split)) as data:
            probs = softmax(data["logits"])
            weights = data["weights"] if "weights" in data.files else np.ones(len(probs), dtype=np.float32)
        return SoftLabels(probs.astype(np.float32), weights.astype(np.float32))

    # --- frozen features, teachers -----------------------------------------------------------------------
    def write_features(self, arrays: dict[str, np.ndarray]) -> None:
        np.savez(self.file(self.FEATURES), **arrays)

    def features(self, split: str, *, pair_difference: bool = False) -> np.ndarray:
        """The strong model's frozen features of a split [N, H] ([N, 2, H] for preference pairs; with
        ``pair_difference`` the difference of the two texts', what a linear reward model's preference reads)."""
        with np.load(self.file(self.FEATURES)) as data:
            features = data[split]
        return features[:, 0] - features[:, 1] if pair_difference and features.ndim == 3 else features

    def write_teachers(self, probs: np.ndarray) -> None:
        np.savez(self.file(self.TEACHERS), probs=np.asarray(probs, dtype=np.float32))

    def teachers(self) -> np.ndarray:
        with np.load(self.file(self.TEACHERS)) as data:
            return data["probs"]

    # --- a training's record -------------------------------------------------------------------------
    def write_training(self, log: list[dict], stability: Any, resolved: dict[str, Any]) -> None:
        with open(self.file(self.LOG), "w") as fh:
            for row in log:
                fh.write(json.dumps(row) + "\n")
        self.file(self.STABILITY).write_text(json.dumps(asdict(stability), indent=2))
        self.write_resolved(resolved)

    def write_resolved(self, resolved: dict[str, Any]) -> None:
        self.file(self.RESOLVED).write_text(json.dumps(resolved, indent=2))

    def stability(self) -> dict[str, Any]:
        return json.loads(self.file(self.STABILITY).read_text())

    def resolved(self) -> dict[str, Any]:
        return json.loads(self.file(self.RESOLVED).read_text())

    def ground_truth(self) -> dict[str, dict]:
        """The ground-truth reads recorded by this stage and everything upstream (empty where none was written)."""
        path = self.file(self.GROUND_TRUTH)
        return json.loads(path.read_text()) if path.exists() else {}

    def write_ground_truth(self, records: dict[str, dict]) -> None:
        self.file(self.GROUND_TRUTH).write_text(json.dumps(records, indent=1))

    def write_json(self, name: str, value: Any) -> None:
        """A stage's own report (a method's rounds, a loss's learned weights): indented JSON."""
        self.file(name).write_text(json.dumps(value, indent=1, default=str))
